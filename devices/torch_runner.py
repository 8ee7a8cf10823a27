"""PyTorch runner: the deploy-form model from a ``torch.export`` program (``.pt2``), run eagerly
(or through ``torch.compile`` when ``settings.torch_compile``). It is the runtime behind timm's
benchmark script and FasterNet's published tables, so its numbers can stand beside theirs.

torch is imported only inside sessions: listing runners on a host without torch never loads it.
"""

from __future__ import annotations

import importlib.util
import time
from itertools import cycle
from pathlib import Path
from typing import Any

from devices.host import default_threads
from devices.inputs import random_inputs
from devices.ort import gpu_facts
from devices.runner import Runner, Session, register_runner
from devices.settings import MeasureSettings
from exporters.errors import RunnerError
from exporters.formats import DeviceClass, ExportFormat

TORCH_MISSING = "torch is not installed (pip install 'latbench[export]')"


def _placeholder_specs(program: Any) -> list[tuple[str, tuple[int, ...], Any]]:
    """(name, shape, numpy dtype) of the program's user inputs; symbolic sizes become 1."""
    import torch

    user_inputs = set(program.graph_signature.user_inputs)
    specs = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            value = node.meta["val"]
            if not value.dtype.is_floating_point:
                raise RunnerError(
                    f"input {node.name!r} is {value.dtype}; only float inputs are run"
                )
            shape = tuple(int(d) if isinstance(d, int) else 1 for d in value.shape)
            dtype = torch.empty((), dtype=value.dtype).numpy().dtype
            specs.append((node.name, shape, dtype))
    return specs


class TorchSession(Session):
    def __init__(self, artifact: Path, settings: MeasureSettings, device: str) -> None:
        import torch

        self.torch, self.device = torch, device
        torch.set_num_threads(settings.threads or default_threads())
        start = time.perf_counter()
        try:
            program = torch.export.load(str(artifact))
        except Exception as exc:  # torch raises a variety of errors for a bad archive
            raise RunnerError(f"torch cannot load {artifact.name!r}: {exc}") from exc
        module = program.module().to(device)
        host = random_inputs(_placeholder_specs(program), settings.input_pool, settings.seed)
        self._inputs = cycle(
            [[torch.from_numpy(a).to(device) for a in feed.values()] for feed in host]
        )
        self.module = torch.compile(module) if settings.torch_compile else module
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        if settings.torch_compile:
            self.run()  # compilation happens on the first call: count it as load, not warm-up
        self.load_ms = (time.perf_counter() - start) * 1e3
        self.options = {
            "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "torch_mode": "compile" if settings.torch_compile else "eager",
            "torch_device": device,
            "inference_mode": True,
        }

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)

    def run(self) -> float:
        args = next(self._inputs)
        with self.torch.inference_mode():
            self._sync()
            start = time.perf_counter_ns()
            self.module(*args)
            self._sync()
        return (time.perf_counter_ns() - start) / 1e6

    def peak_memory_mb(self) -> float | None:
        if self.device.startswith("cuda"):
            return self.torch.cuda.max_memory_allocated(self.device) / 2**20
        return None

    def close(self) -> None:
        del self.module, self._inputs


def _torch_version() -> str:
    from importlib.metadata import version

    return version("torch")


@register_runner
class TorchCpuRunner(Runner):
    name = "torch-cpu"
    device_class = DeviceClass.of_this_cpu()
    formats = (ExportFormat.TORCH_EXPORT,)
    runtime = "torch"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return TORCH_MISSING if importlib.util.find_spec("torch") is None else None

    def runtime_facts(self, settings: MeasureSettings) -> dict[str, Any]:
        mode = "torch.compile" if settings.torch_compile else "eager"
        return {"runtime_version": _torch_version(), "execution_provider": f"cpu ({mode})",
                "threads": settings.threads or default_threads(), "label": "CPU"}  # fmt: skip

    def open(self, artifact: Path, settings: MeasureSettings) -> Session:
        return TorchSession(artifact, settings, "cpu")


@register_runner
class TorchCudaRunner(TorchCpuRunner):
    name = "torch-cuda"
    device_class = DeviceClass.GPU_CUDA

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return TORCH_MISSING
        import torch

        return None if torch.cuda.is_available() else "torch sees no CUDA device"

    @property
    def device(self) -> str:
        return f"cuda:{int(self.options.get('device_id', 0))}"

    def runtime_facts(self, settings: MeasureSettings) -> dict[str, Any]:
        gpu = gpu_facts(int(self.options.get("device_id", 0)))
        mode = "torch.compile" if settings.torch_compile else "eager"
        return {"runtime_version": _torch_version(), "execution_provider": f"cuda ({mode})",
                "label": gpu["gpu_name"] or "CUDA GPU", **gpu}  # fmt: skip

    def open(self, artifact: Path, settings: MeasureSettings) -> Session:
        return TorchSession(artifact, settings, self.device)
