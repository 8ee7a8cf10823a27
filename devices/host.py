"""What the host is (CPU model, cores, OS) and how busy the rest of it was while we measured."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Self

import psutil


@cache
def cpu_model() -> str:
    """Marketing name of the CPU (Linux /proc/cpuinfo, macOS sysctl), else the ISA."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in {"model name", "Model", "Hardware"} and value.strip():
                return value.strip()
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except OSError:
            pass
    return platform.processor() or platform.machine()


def host_facts() -> dict[str, object]:
    return {
        "cpu_model": cpu_model(),
        "cores_physical": psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        "cores_logical": psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "host_name": socket.gethostname(),
    }


def default_threads() -> int:
    """ONNX Runtime's own default: one intra-op thread per physical core."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@dataclass
class HostLoad:
    """CPU use of everything but this process while a measurement ran, so a noisy neighbour is
    visible next to the number it disturbed."""

    loadavg_1m_start: float
    loadavg_1m_end: float
    cpu_busy_pct: float  # whole host, % of all logical cores
    own_cpu_pct: float  # this process, same scale
    others_cpu_pct: float  # the difference: what other processes took
    wall_s: float

    def to_dict(self) -> dict[str, float]:
        return {key: round(value, 3) for key, value in self.__dict__.items()}

    def busy_note(self, threshold_pct: float = 20.0) -> str | None:
        """A warning for the result when other processes competed for the CPU."""
        if self.others_cpu_pct <= threshold_pct:
            return None
        return (
            f"other processes used {self.others_cpu_pct:.0f}% of the CPU during the measurement: "
            "latencies are inflated and noisier than on an idle host"
        )


class HostLoadMonitor:
    """Context manager: snapshot CPU times on entry and exit."""

    def __enter__(self) -> Self:
        self._proc = psutil.Process()
        self._load0 = os.getloadavg()[0]
        self._sys0 = psutil.cpu_times()
        self._own0 = self._proc.cpu_times()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        sys1, own1 = psutil.cpu_times(), self._proc.cpu_times()
        capacity = wall * (psutil.cpu_count(logical=True) or 1)
        busy = (_busy(sys1) - _busy(self._sys0)) / capacity * 100
        own = ((own1.user + own1.system) - (self._own0.user + self._own0.system)) / capacity * 100
        self.result = HostLoad(
            loadavg_1m_start=self._load0,
            loadavg_1m_end=os.getloadavg()[0],
            cpu_busy_pct=min(busy, 100.0),
            own_cpu_pct=min(own, 100.0),
            others_cpu_pct=max(0.0, min(busy, 100.0) - own),
            wall_s=wall,
        )


def _busy(times: object) -> float:
    idle = getattr(times, "idle", 0.0) + getattr(times, "iowait", 0.0)
    return sum(times) - idle  # type: ignore[arg-type]


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20
