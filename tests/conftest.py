import os
import random
import time

import pytest

# TestClient sends Host: testserver, refused by a loopback server (DNS rebinding) unless allowed
os.environ.setdefault("LATBENCH_ALLOWED_HOSTS", '["testserver"]')


@pytest.fixture(scope="session", autouse=True)
def _quiet_single_thread_torch():
    """Tests share 2 cores with other jobs; one torch thread keeps them predictable."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch
    except ImportError:  # a runner-only install has no torch
        return
    torch.set_num_threads(1)


# Skips that say only "this is not that platform": every other skip backs a documented promise
# (a server, a client, a capability the CI machine has), so CI fails it instead of passing by it.
PLATFORM_SKIPS = ("requires macOS", "non-macOS behaviour")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under LATBENCH_REQUIRE_SERVICES=1 (set by .ci/run) a skipped test is a failure, with its
    reason, unless the reason is one of PLATFORM_SKIPS."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("LATBENCH_REQUIRE_SERVICES") != "1" or not report.skipped:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(platform in reason for platform in PLATFORM_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under LATBENCH_REQUIRE_SERVICES=1, which fails every skip: {reason}"


def pytest_collection_modifyitems(config, items):
    """LATBENCH_FULL_SLICE=K keeps one K-th of the `full` sweep: a shuffle seeded by
    LATBENCH_FULL_SEED (default: the day number, so the slice rotates daily and CI covers the
    whole sweep every K days), cut into K parts, the part ``seed % K`` kept. Other items stay."""
    parts = int(os.environ.get("LATBENCH_FULL_SLICE", "0") or 0)
    if parts <= 1:
        return
    seed = int(os.environ.get("LATBENCH_FULL_SEED") or time.time() // 86400)
    full = sorted(item.nodeid for item in items if item.get_closest_marker("full"))
    random.Random(seed).shuffle(full)
    kept = set(full[seed % parts :: parts])
    dropped = [i for i in items if i.get_closest_marker("full") and i.nodeid not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(
            f"full sweep: {len(kept)} of {len(full)} items, LATBENCH_FULL_SEED={seed}"
        )
