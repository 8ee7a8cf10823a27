"""A device host installs `latbench[runner]`: no torch, no SQLAlchemy, no FastAPI. The runner
command and the measure path must import and work without them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCKER = textwrap.dedent("""
    import sys
    BLOCKED = ("torch", "timm", "sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn",
               "pydantic_settings", "coremltools")
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not installed on a device host")
    sys.meta_path.insert(0, Block())
""")


def _tiny_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 16])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _profile_job(model: Path, lock: Path) -> str:
    """A script that runs one profile job through `run_task` on MODEL with a port that does what
    the HTTP port does, minus the server, and prints what it measured and where it was loaded from."""
    return textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        import service.cli, devices.jobs.agent, devices.jobs.execute
        from devices.jobs.execute import run_task
        from devices.jobs.port import Host, JobTask
        from exporters.formats import DeviceClass

        class Port:
            def claim(self, task):
                return True
            def fetch_artifact(self, task, key):
                return Path({str(model)!r})
            def post_result(self, task, result):
                self.result = result
            def post_failure(self, task, error):
                raise AssertionError(error)

        port = Port()
        task = JobTask(job_id="j", attempt=1, device_class=DeviceClass.of_this_cpu().value,
                       format="onnx", artifact_key="k",
                       settings={{"threads": 1, "max_seconds": 0.5, "warmup_max_seconds": 0.2}})
        run_task(port, task, Host(lock_path=Path({str(lock)!r})))
        m = port.result
        heavy = [name for name in ("torch", "fastapi", "sqlalchemy") if name in sys.modules]
        print(json.dumps({{"n": m.latency_ms.n, "runtime": m.device["runtime"], "heavy": heavy,
                          "from": devices.jobs.execute.__file__}}))
    """)


def test_runner_command_and_a_profile_job_need_no_torch_fastapi_or_sqlalchemy(tmp_path):
    model = tmp_path / "model.onnx"
    _tiny_onnx(model)
    script = BLOCKER + _profile_job(model, tmp_path / "lock")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["runtime"] == "onnxruntime" and report["n"] >= 20 and report["heavy"] == []


def test_runner_help_needs_no_server_packages():
    script = BLOCKER + textwrap.dedent("""
        sys.argv = ["latbench", "runner", "--help"]
        from service.cli import main
        main()
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--device-class" in done.stdout and "--server" in done.stdout


def _image_files(repo: Path, stage: Path) -> None:
    """Copy what docker/Dockerfile.runner's COPY lines copy (the one list of files) into STAGE."""
    for line in (repo / "docker" / "Dockerfile.runner").read_text().splitlines():
        if not line.startswith("COPY "):
            continue
        *sources, dest = line.split()[1:]
        for source in sources:
            target = stage / dest / Path(source).name if dest.endswith("/") else stage / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if (repo / source).is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(repo / source, target, ignore=ignore)
            else:
                shutil.copy(repo / source, target)


@pytest.mark.slow
def test_the_runner_image_installs_and_runs_a_profile_job_from_a_fresh_venv(tmp_path):
    """Exactly the files the runner image copies, installed non-editable with `[runner]` into a
    fresh venv (dependencies from the package index, through pip's cache), with the checkout out
    of reach: no PYTHONPATH, the working directory elsewhere. `latbench runner --help` starts and
    a profile job runs on onnxruntime."""
    repo = Path(__file__).resolve().parents[2]
    stage, venv, work = tmp_path / "app", tmp_path / "venv", tmp_path / "work"
    _image_files(repo, stage)
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    made = run(sys.executable, "-m", "venv", str(venv))
    assert made.returncode == 0, made.stderr
    installed = run(str(venv / "bin" / "pip"), "install", "-q", f"{stage}[runner]", timeout=540)
    assert installed.returncode == 0, installed.stderr[-3000:]

    helped = run(str(venv / "bin" / "latbench"), "runner", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--device-class" in helped.stdout and "--server" in helped.stdout

    model = tmp_path / "model.onnx"
    _tiny_onnx(model)
    job = run(str(venv / "bin" / "python"), "-c", _profile_job(model, tmp_path / "lock"))
    assert job.returncode == 0, job.stderr
    report = json.loads(job.stdout.strip().splitlines()[-1])
    assert report["runtime"] == "onnxruntime" and report["n"] >= 20 and report["heavy"] == []
    assert report["from"].startswith(str(venv)), report["from"]
