"""The CLI's int8 options: a calibration set only with an int8 side, validated before any
build, and refused with one line naming the field (exit 2)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from service.cli import app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["profile", "mobileone_s0"],
            "--calibration: a calibration set applies to an int8 side only",
        ),
        (
            ["compare", "mobileone_s0", "mobileone_s0"],
            "--calibration: a calibration set applies to an int8 side only",
        ),
        (["profile", "mobileone_s0", "--precision", "int8"], "shape [2, 3, 8, 8] given"),
    ],
)
def test_calibration_is_checked_before_anything_is_built(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("LATBENCH_DATA_DIR", str(tmp_path / "data"))
    np.save(tmp_path / "small.npy", np.zeros((2, 3, 8, 8), np.float32))
    result = CliRunner().invoke(app, [*args, "--calibration", str(tmp_path / "small.npy")])
    assert result.exit_code == 2, result.output
    assert "calibration" in result.output and message in result.output
    assert not (tmp_path / "data" / "artifacts").exists()
