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


def test_runner_command_and_a_profile_job_need_no_torch_fastapi_or_sqlalchemy(tmp_path):
    model = tmp_path / "model.onnx"
    _tiny_onnx(model)
    script = BLOCKER + textwrap.dedent(f"""
        import json
        from pathlib import Path
        import service.cli, devices.jobs.agent
        from devices.jobs.execute import run_task
        from devices.jobs.port import Host, JobTask
        from exporters.formats import DeviceClass

        class Port:  # what the HTTP port does, minus the server
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
        run_task(port, task, Host(lock_path=Path({str(tmp_path / "lock")!r})))
        m = port.result
        heavy = [name for name in ("torch", "fastapi", "sqlalchemy") if name in sys.modules]
        print(json.dumps({{"n": m.latency_ms.n, "runtime": m.device["runtime"],
                          "heavy": heavy}}))
    """)
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


def test_the_runner_image_copies_enough_for_a_profile_job(tmp_path):
    """Only what docker/Dockerfile.runner copies, on the path: the runner imports and its job
    kind loads (the tree itself is not importable in the child)."""
    repo = Path(__file__).resolve().parents[2]
    stage = tmp_path / "app"
    for line in (repo / "docker" / "Dockerfile.runner").read_text().splitlines():
        if not line.startswith("COPY "):
            continue
        *sources, dest = line.split()[1:]
        for source in sources:
            target = stage / dest / Path(source).name if dest.endswith("/") else stage / dest
            copy = shutil.copytree if (repo / source).is_dir() else shutil.copy
            target.parent.mkdir(parents=True, exist_ok=True)
            copy(repo / source, target)
    script = BLOCKER + textwrap.dedent("""
        import devices.jobs.agent, service.cli
        from devices.jobs.kinds import get_kind
        print(get_kind("profile").name, devices.jobs.agent.__file__)
    """)
    env = {**os.environ, "PYTHONPATH": str(stage)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["profile", str(stage / "devices" / "jobs" / "agent.py")]
