"""ONNX Runtime runners: CPU (default on x86_64 and aarch64 alike), CUDA and TensorRT.

On a GPU the inputs are copied to the device once, before timing, and bound with I/O binding; the
outputs stay on the device; each timed run is bracketed by stream synchronisation, so neither host
copies nor queued-but-unfinished work are timed by accident.
"""

from __future__ import annotations

import importlib.util
import subprocess
import tempfile
import time
from itertools import cycle
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from devices.host import default_threads
from devices.inputs import random_inputs
from devices.layers import breakdown_from_ort_profile
from devices.runner import Runner, Session, register_runner
from devices.settings import MeasureSettings, parse_settings
from exporters.errors import RunnerError
from exporters.formats import QUANTIZATION_METADATA_KEY, DeviceClass, ExportFormat

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}  # fmt: skip
PROFILE_RUNS = 20


SPINNING = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")
_COMPARED = ("intra_op_num_threads", "inter_op_num_threads", "execution_mode",
             "graph_optimization_level", "enable_cpu_mem_arena", "enable_mem_pattern")  # fmt: skip


def session_options(settings: MeasureSettings, *, profile_dir: Path | None = None) -> Any:
    """ORT session options: the runtime's defaults, changed only where a setting asks."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if settings.threads is not None:
        opts.intra_op_num_threads = settings.threads
    opts.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _OPT_LEVELS[settings.graph_optimization]
    )
    if settings.intra_op_spinning is not None:
        for key in SPINNING:
            opts.add_session_config_entry(key, "1" if settings.intra_op_spinning else "0")
    if profile_dir is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_dir / "ort")
    return opts


def _config_entry(opts: Any, key: str) -> str | None:
    try:
        return opts.get_session_config_entry(key)
    except Exception:  # noqa: BLE001 - onnxruntime raises a bare Fail for an unset key
        return None


def options_record(session: Any) -> dict[str, Any]:
    """The effective options, read back from the loaded session, and which of them differ from a
    fresh ``SessionOptions()`` (``deviations``). ``0`` threads is onnxruntime's "default": one
    intra-op thread per physical core; unset spinning is onnxruntime's default, on."""
    import onnxruntime as ort

    opts, default = session.get_session_options(), ort.SessionOptions()
    spinning = _config_entry(opts, SPINNING[0])
    deviations = [key for key in _COMPARED if getattr(opts, key) != getattr(default, key)]
    return {
        "intra_op_num_threads": opts.intra_op_num_threads or default_threads(),
        "intra_op_num_threads_set": opts.intra_op_num_threads,
        "inter_op_num_threads": opts.inter_op_num_threads,
        "execution_mode": opts.execution_mode.name.removeprefix("ORT_").lower(),
        "graph_optimization_level": opts.graph_optimization_level.name,
        "intra_op_spinning": spinning != "0",
        "deviations": deviations + ([SPINNING[0]] if spinning is not None else []),
        "providers": session.get_providers(),
    }


def input_specs(session: Any) -> list[tuple[str, tuple[int, ...], Any]]:
    """(name, shape, dtype) per graph input; symbolic dimensions (dynamic batch) become 1."""
    specs = []
    for node in session.get_inputs():
        if node.type not in _DTYPES:
            raise RunnerError(
                f"input {node.name!r} has type {node.type}; only float inputs are run"
            )
        shape = tuple(dim if isinstance(dim, int) and dim > 0 else 1 for dim in node.shape)
        specs.append((node.name, shape, _DTYPES[node.type]))
    return specs


def _create(artifact: Path, opts: Any, providers: list[Any]) -> tuple[Any, float]:
    import onnxruntime as ort

    start = time.perf_counter()
    try:
        session = ort.InferenceSession(str(artifact), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
        raise RunnerError(f"onnxruntime cannot load {artifact.name!r}: {exc}") from exc
    return session, (time.perf_counter() - start) * 1e3


class _OrtSession(Session):
    session: Any  # onnxruntime.InferenceSession

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)


class OrtCpuSession(_OrtSession):
    def __init__(self, artifact: Path, settings: MeasureSettings, providers: list[str]) -> None:
        threads_before = psutil.Process().num_threads()
        self.session, self.load_ms = _create(artifact, session_options(settings), providers)
        self.options = options_record(self.session)
        # the pool's workers start with the session; the calling thread is the pool's last one
        self.options["intra_op_threads_started"] = (
            psutil.Process().num_threads() - threads_before + 1
        )
        self._inputs = cycle(
            random_inputs(input_specs(self.session), settings.input_pool, settings.seed)
        )

    def run(self) -> float:
        feed = next(self._inputs)
        start = time.perf_counter_ns()
        self.session.run(None, feed)
        return (time.perf_counter_ns() - start) / 1e6

    def close(self) -> None:
        del self.session


class OrtDeviceSession(_OrtSession):
    """CUDA / TensorRT: inputs pre-copied to the device, outputs bound on the device."""

    def __init__(
        self, artifact: Path, settings: MeasureSettings, providers: list[Any], device_id: int
    ) -> None:
        import onnxruntime as ort

        self.session, self.load_ms = _create(artifact, session_options(settings), providers)
        self.options = options_record(self.session)
        self.options["io_binding"] = True
        host = random_inputs(input_specs(self.session), settings.input_pool, settings.seed)
        self._inputs = cycle(
            [
                {k: ort.OrtValue.ortvalue_from_numpy(v, "cuda", device_id) for k, v in feed.items()}
                for feed in host
            ]
        )
        self.binding = self.session.io_binding()
        for output in self.session.get_outputs():
            self.binding.bind_output(output.name, "cuda", device_id)

    def run(self) -> float:
        for name, value in next(self._inputs).items():
            self.binding.bind_ortvalue_input(name, value)
        self.binding.synchronize_inputs()
        start = time.perf_counter_ns()
        self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()
        return (time.perf_counter_ns() - start) / 1e6

    def close(self) -> None:
        del self.binding, self.session


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def _provider_missing(provider: str) -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu for CUDA)"
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        present = ", ".join(ort.get_available_providers())
        return f"{provider} is not in this onnxruntime build ({present})"
    return None


def gpu_facts(device_id: int) -> dict[str, str | None]:
    """GPU name and driver from nvidia-smi (None when it is absent)."""
    query = [
        "nvidia-smi",
        "--query-gpu=name,driver_version",
        "--format=csv,noheader",
        "-i",
        str(device_id),
    ]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"gpu_name": None, "gpu_driver": None}
    name, _, driver = out.strip().partition(", ")
    return {"gpu_name": name or None, "gpu_driver": driver or None}


class _OrtRunner(Runner):
    formats = (ExportFormat.ONNX,)
    runtime = "onnxruntime"
    provider: str

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _provider_missing(cls.provider)

    def layers(self, artifact: Path, settings: MeasureSettings | None = None) -> dict[str, Any]:
        """Per-node times from onnxruntime's profiler (a separate session: profiling slows runs)."""
        settings = parse_settings(settings)
        artifact = self.check_artifact(artifact)
        with tempfile.TemporaryDirectory(prefix="latbench-prof-") as tmp:
            opts = session_options(settings, profile_dir=Path(tmp))
            session, _ = _create(artifact, opts, [self.provider])
            feeds = random_inputs(input_specs(session), settings.input_pool, settings.seed)
            for i in range(5 + PROFILE_RUNS):  # the first 5 are warm-up, dropped by the parser
                session.run(None, feeds[i % len(feeds)])
            trace = Path(session.end_profiling())
            return breakdown_from_ort_profile(trace, skip_runs=5, model_path=artifact)


@register_runner
class OrtCpuRunner(_OrtRunner):
    name = "ort-cpu"
    device_class = DeviceClass.of_this_cpu()
    provider = "CPUExecutionProvider"

    def runtime_facts(self, settings: MeasureSettings) -> dict[str, Any]:
        return {
            "runtime_version": _ort_version(),
            "execution_provider": self.provider,
            "threads": settings.threads or default_threads(),
            "label": "CPU",
        }

    def open(self, artifact: Path, settings: MeasureSettings) -> Session:
        return OrtCpuSession(artifact, settings, [self.provider])


@register_runner
class OrtCudaRunner(_OrtRunner):
    name = "ort-cuda"
    device_class = DeviceClass.GPU_CUDA
    provider = "CUDAExecutionProvider"

    @property
    def device_id(self) -> int:
        return int(self.options.get("device_id", 0))

    def providers(self, *, int8: bool = False) -> list[tuple[str, dict[str, Any]]]:
        return [(self.provider, {"device_id": self.device_id})]

    def runtime_facts(self, settings: MeasureSettings) -> dict[str, Any]:
        gpu = gpu_facts(self.device_id)
        return {"runtime_version": _ort_version(), "execution_provider": self.provider,
                "label": gpu["gpu_name"] or "CUDA GPU", **gpu}  # fmt: skip

    def open(self, artifact: Path, settings: MeasureSettings) -> Session:
        int8 = QUANTIZATION_METADATA_KEY in artifact_metadata(artifact)
        if int8 and self.provider == "CUDAExecutionProvider":
            raise RunnerError(
                f"{artifact.name!r} is an int8 (QDQ) graph: the CUDA execution provider has no "
                "int8 convolution kernels and would time its float fallback; int8 on gpu-cuda "
                "is measured by the ort-tensorrt runner (TensorRT's explicit int8 path)"
            )
        return OrtDeviceSession(artifact, settings, self.providers(int8=int8), self.device_id)


def artifact_metadata(artifact: Path) -> dict[str, str]:
    """An ONNX model's metadata, read through an unoptimised CPU session (no device memory)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session, _ = _create(artifact, options, ["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


@register_runner
class OrtTensorrtRunner(OrtCudaRunner):
    """TensorRT engines built on first load (cached per artifact in ``engine_cache``); falls back
    to CUDA for nodes TensorRT does not take. ``fp16=True`` lets TensorRT pick half precision;
    an int8 (QDQ) artifact enables int8, which TensorRT takes from the graph's own scales
    (explicit quantization: no calibration table)."""

    name = "ort-tensorrt"
    provider = "TensorrtExecutionProvider"

    def providers(self, *, int8: bool = False) -> list[tuple[str, dict[str, Any]]]:
        cache = self.options.get("engine_cache") or tempfile.gettempdir()
        trt = {"device_id": self.device_id, "trt_fp16_enable": bool(self.options.get("fp16", False)),
               "trt_int8_enable": int8, "trt_engine_cache_enable": True,
               "trt_engine_cache_path": str(cache)}  # fmt: skip
        return [(self.provider, trt), ("CUDAExecutionProvider", {"device_id": self.device_id})]
