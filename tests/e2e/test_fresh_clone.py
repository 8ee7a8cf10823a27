"""A clone with nothing beside it (no sibling data folder, no other checkout) serves published top-1 with
its sources: the reference data ships inside the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, copy_checkout, service_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_fresh_copy_serves_published_top1_and_sources(tmp_path):
    clone = tmp_path / "alone" / "latbench"
    copy_checkout(REPO, clone)
    assert not (clone.parent / "shared").exists()
    env = service_env(tmp_path) | {"PYTHONPATH": str(clone)}
    imported = subprocess.run(
        [sys.executable, "-c", "import service; print(service.__file__)"],
        env=env,
        cwd=clone,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert imported.startswith(str(clone))  # the copy's code, not this checkout's

    server = Server(env, tmp_path / "server.log", "--no-local-runner")
    try:
        data = server.http.get("/dashboard/data.json", params={"device": "iphone12-class"}).json()
        fastvit = next(p for p in data["points"] if p["model"] == "fastvit_t8")
        assert fastvit["kind"] == "published" and fastvit["top1"] == 76.2
        assert fastvit["top1_source"].startswith("apple/ml-fastvit")
        assert any(s.startswith("apple/ml-fastvit") for s in data["sources"])
        model = server.http.get("/models", params={"pattern": "fastvit_t8"}).json()["data"][0]
        assert model["reference_top1"] == 76.2
        assert "published" in server.http.get("/dashboard").text
    finally:
        server.stop()
