"""A user's `pip install .`: the wheel this checkout builds, installed non-editable with the
checkout out of reach, runs the CLI and the server (package data: migrations, dashboard
templates and static files, the timm index, the reference CSV, the shipped predictors and
features). The development environment installs latbench editable, so every other test finds
the checkout's files whether or not the wheel ships them.

Out of reach: a fresh venv (no pip) holds the wheel; the development environment's
site-packages, for the dependencies only, is a plain path line in a .pth file, so that
directory's own .pth files are never processed and the editable install's finder (which would
load any module missing from the wheel from the checkout) is never installed. The working
directory is elsewhere and no PYTHON* variable is passed. The test proves it: a module deleted
from the installed copy then fails to import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from exporters.formats import DeviceClass
from tests.e2e.conftest import FAST, SMALL, Server, copy_checkout, service_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "exporters", "devices")

PROBE = """
import json, sys
import service, exporters, devices
print(json.dumps({
    "files": [m.__file__ for m in (service, exporters, devices)],
    "finders": [getattr(f, "__module__", type(f).__module__) for f in sys.meta_path],
    "editable": [m for m in sys.modules if m.startswith("__editable__")],
}))
"""


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of this working tree (the build writes build/ and *.egg-info into the
    source tree, and a stale build/lib there would leak into the wheel)."""
    source, out = tmp_path / "source", tmp_path / "wheel"
    copy_checkout(REPO, source)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = out.glob("latbench-*.whl")
    return wheel


def install_out_of_reach(wheel: Path, venv: Path) -> Path:
    """Install WHEEL (no dependencies) into a fresh venv at VENV; the dependencies come from this
    environment's site-packages through a path-only .pth. Returns the venv's site-packages."""
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--no-deps", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    (site,) = venv.glob("lib/python*/site-packages")
    deps = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))
    (site / "zz_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    return site


def test_the_wheel_installed_out_of_reach_of_the_checkout_runs_the_cli_and_the_server(tmp_path):
    wheel = build_wheel(tmp_path)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", *PACKAGES],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert sorted(set(listed) - shipped) == []  # every file of the packages ships

    venv, work = tmp_path / "venv", tmp_path / "work"
    site = install_out_of_reach(wheel, venv)
    work.mkdir()
    env = service_env(tmp_path)
    env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    latbench = str(venv / "bin" / "latbench")

    def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"
        return done

    probe = json.loads(run(str(venv / "bin" / "python"), "-c", PROBE).stdout)
    assert all(f.startswith(str(site)) for f in probe["files"]), probe["files"]
    assert probe["editable"] == [] and not any("editable" in f for f in probe["finders"]), probe

    assert "serve" in run(latbench, "--help").stdout
    models = json.loads(run(latbench, "models", "mobileone*", "--json").stdout)["data"]
    s0 = next(m for m in models if m["name"] == "mobileone_s0")
    assert s0["reference_top1"] == 71.4 and s0["reference_source"].startswith("apple/ml-mobileone")
    schema = json.loads(run(latbench, "schema", "profile").stdout)
    assert "latency_ms" in schema["properties"]
    predicted = json.loads(run(latbench, "predict", "mobileone_s0", "--json").stdout)
    assert predicted["kind"] == "predicted" and predicted["latency_ms"]["median"] > 0

    server = Server(env, tmp_path / "server.log", latbench=latbench)
    try:
        page = server.http.get("/dashboard")
        assert page.status_code == 200 and "/static/dashboard.js" in page.text
        for asset in ("/static/dashboard.js", "/static/style.css"):
            assert server.http.get(asset).status_code == 200, asset
        devices = server.http.get("/devices").json()
        offered = {p["device_class"] for p in devices["predictors"]}  # the shipped predictors
        assert offered == {"cpu-arm64", "cpu-x86_64", "gpu-cuda", "iphone12-class"}, offered
        accepted = server.http.post(
            "/profile",
            json={"model": SMALL, "devices": [DeviceClass.of_this_cpu().value], "formats": ["onnx"],
                  "settings": FAST},
        )  # fmt: skip
        assert accepted.status_code == 202, accepted.text
        job = server.wait_job(accepted.json()["jobs"][0]["id"])
        assert job["state"] == "done", job["error"]
        assert job["result"]["latency_ms"]["n"] >= 10
        assert "mobileone_s0" in server.http.get("/dashboard").text
    finally:
        server.stop()

    # The proof the checkout is out of reach: a module missing from the install fails to import
    # (with the development environment's editable finder installed it would load from there).
    os.remove(site / "service" / "reference.py")
    missing = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import service.reference"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "No module named 'service.reference'" in missing.stderr
