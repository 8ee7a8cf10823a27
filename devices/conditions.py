"""The state of the machine around a number: CPU frequency and governor, thermal state, power
source, runtime versions. Every item says where it was read from, or why it could not be read;
nothing is guessed (a VM without cpufreq records ``unavailable``, not a nominal clock).
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

CPUFREQ = Path("/sys/devices/system/cpu")
THERMAL = Path("/sys/class/thermal")
RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "coremltools", "torch", "numpy")
Reading = dict[str, Any]  # {"value": ..., "source": ...} or {"value": None, "unavailable": why}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _unavailable(why: str) -> Reading:
    return {"value": None, "unavailable": why}


def _sysctl(name: str) -> str | None:
    """macOS sysctl value, None when the key does not exist on this machine."""
    try:
        out = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def cpu_frequency() -> Reading:
    """Current clock per logical CPU in MHz (cpufreq ``scaling_cur_freq``), with min/max."""
    cpus = sorted(CPUFREQ.glob("cpu[0-9]*/cpufreq"))
    current = [_read(cpu / "scaling_cur_freq") for cpu in cpus]
    if current and all(current):
        limits = [_read(cpus[0] / f"cpuinfo_{edge}_freq") for edge in ("min", "max")]
        return {
            "value": [int(khz) / 1e3 for khz in current],  # type: ignore[arg-type]
            "min_mhz": int(limits[0]) / 1e3 if limits[0] else None,
            "max_mhz": int(limits[1]) / 1e3 if limits[1] else None,
            "source": "cpufreq scaling_cur_freq",
        }
    if platform.system() == "Darwin":
        hz = _sysctl("hw.cpufrequency")  # Intel Macs; Apple silicon does not expose a clock
        if hz:
            return {"value": [int(hz) / 1e6], "source": "sysctl hw.cpufrequency (nominal)"}
        return _unavailable("macOS on Apple silicon exposes no CPU clock without root")
    return _unavailable(f"no cpufreq under {CPUFREQ} (virtual machine or driver absent)")


def cpu_governor() -> Reading:
    governors = {_read(cpu / "scaling_governor") for cpu in CPUFREQ.glob("cpu[0-9]*/cpufreq")}
    governors.discard(None)
    if governors:
        return {"value": ",".join(sorted(governors)), "source": "cpufreq scaling_governor"}  # type: ignore[arg-type]
    return _unavailable("no cpufreq governor exposed (virtual machine, or not Linux)")


def thermal() -> Reading:
    """Linux: thermal zones (°C) and throttling cooling devices; macOS: the thermal level."""
    zones = {
        _read(zone / "type") or zone.name: int(temp) / 1e3
        for zone in sorted(THERMAL.glob("thermal_zone*"))
        if (temp := _read(zone / "temp")) and temp.lstrip("-").isdigit()
    }
    if zones:
        return {"value": zones, "unit": "celsius", "source": "sysfs thermal_zone"}
    if platform.system() == "Darwin":
        level = _sysctl("machdep.xcpm.cpu_thermal_level") or _sysctl("kern.thermal_pressure")
        if level is not None:
            return {"value": level, "source": "sysctl thermal level"}
        return _unavailable("macOS reports no thermal level through sysctl on this machine")
    return _unavailable("no thermal zones reported by the OS")


def power_source() -> Reading:
    try:
        battery = psutil.sensors_battery()
    except (AttributeError, NotImplementedError, OSError):
        battery = None
    if battery is None:
        return _unavailable("no battery reported (desktop, server or VM)")
    return {
        "value": "ac" if battery.power_plugged else "battery",
        "battery_percent": round(battery.percent, 1),
        "source": "psutil.sensors_battery",
    }


def runtime_versions() -> dict[str, str]:
    """Installed versions of the runtimes a number can depend on (metadata only, no import)."""
    found = {"python": platform.python_version()}
    for package in RUNTIME_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


# CPU features that decide int8 speed: dot-product instructions multiply 4 bytes and
# accumulate into 32 bits in one step; without them int8 GEMMs go through 16-bit sequences
# (x86 VPMADDUBSW, which can saturate) or widening multiplies (Armv8.0), often no faster than fp32
X86_INT8 = ("avx_vnni", "avx512_vnni", "amx_int8")
ARM_INT8 = ("asimddp", "i8mm")  # dot product (Armv8.2+), int8 matmul (v8.6+)
MAC_INT8 = ("hw.optional.arm.FEAT_DotProd", "hw.optional.arm.FEAT_I8MM")
CPUINFO = Path("/proc/cpuinfo")


def int8_capability() -> Reading:
    """The int8 dot-product features of this CPU (``value``: the names found, possibly none)
    and whether any is present (``dot_product``), read from /proc/cpuinfo or sysctl."""
    text = _read(CPUINFO)
    if text is not None:
        flags: set[str] = set()
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key.strip() in {"flags", "Features"}:
                flags.update(rest.split())
        wanted = ARM_INT8 if platform.machine().lower() in {"aarch64", "arm64"} else X86_INT8
        found = [name for name in wanted if name in flags]
        return {"value": found, "dot_product": bool(found), "source": "/proc/cpuinfo flags"}
    if platform.system() == "Darwin":
        found = [name.rsplit("_", 1)[-1].lower() for name in MAC_INT8 if _sysctl(name) == "1"]
        return {"value": found, "dot_product": bool(found), "source": "sysctl hw.optional.arm"}
    return _unavailable("no /proc/cpuinfo and not macOS: CPU features unknown")


def int8_note(capability: Reading) -> str | None:
    """The caveat a quantized result carries where the CPU has no int8 dot product."""
    if capability.get("dot_product") is not False:
        return None
    return (
        "int8 measured on a CPU without int8 dot-product instructions (no VNNI / AMX on x86, "
        "no asimddp / i8mm on ARM): its int8 kernels use slower 16-bit sequences, so this "
        "int8/fp32 ratio understates what VNNI or Armv8.2+ CPUs gain"
    )


READERS: dict[str, Callable[[], Reading]] = {
    "cpu_frequency_mhz": cpu_frequency,
    "cpu_governor": cpu_governor,
    "thermal": thermal,
    "power_source": power_source,
}


def snapshot() -> dict[str, Reading]:
    """Every reading now; a reader that fails records why instead of failing the measurement."""
    out: dict[str, Reading] = {}
    for name, read in READERS.items():
        try:
            out[name] = read()
        except Exception as exc:  # noqa: BLE001 - a sysfs quirk must not cost the number
            out[name] = _unavailable(f"{type(exc).__name__}: {exc}")
    return out


def conditions(start: dict[str, Reading], end: dict[str, Reading]) -> dict[str, Any]:
    """What a result carries: readings at the start and at the end, the runtime versions and
    the CPU's int8 capability."""
    return {
        "start": start,
        "end": end,
        "versions": runtime_versions(),
        "int8_capability": int8_capability(),
    }
