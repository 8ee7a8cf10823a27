"""The suite has no assert that cannot be false and no test without an assertion of its own
(tests/assertion_check.py), and the checker finds each kind it names."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHECK = Path(__file__).with_name("assertion_check.py")


def _check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_suite_has_no_assert_that_cannot_fail_and_no_test_without_one():
    done = _check()
    assert done.returncode == 0, done.stdout
    assert "every assert can fail, every test asserts" in done.stdout


def test_the_checker_finds_each_kind_it_names(tmp_path):
    bad = tmp_path / "test_bad.py"
    bad.write_text(
        textwrap.dedent("""
        import pytest

        def helper(x):
            return x + 1

        def checks(x):
            assert x > 1

        def test_tuple(x):
            assert (x == 2, "message inside the tuple")

        def test_nothing():
            helper(1)

        def test_or(r):
            assert r.ok or True

        def test_same(x):
            assert x == x

        def test_status(code):
            assert 400 <= code < 600

        def test_correlation(info):
            assert info.error < 20 and -1 <= info.rho <= 1

        def test_length(items):
            assert len(items) >= 0

        def test_through_a_helper():
            checks(3)

        def test_raises():
            with pytest.raises(ValueError):
                int("x")
    """)
    )
    done = _check(bad)
    assert done.returncode == 1
    flagged = {line.split(":")[1] for line in done.stdout.splitlines()}
    assert flagged == {"11", "13", "17", "20", "23", "26", "29"}, done.stdout
