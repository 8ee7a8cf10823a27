"""Published reference figures (top-1, params, MACs, latency) keyed by timm model name.

They ship with the package (``service/data/published_reference.csv``, every row with its source)
and are read through ``importlib.resources``, so a fresh clone or an installed wheel has them;
``LATBENCH_REFERENCE_CSV`` names another file with the same columns instead. An override that
does not exist gives empty tables: the service still runs and the dashboard says why nothing is
plotted.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

PACKAGED = "published_reference.csv"


@dataclass(frozen=True)
class Reference:
    top1: float
    source: str  # "<repository> <file or table>", cited wherever the figure is shown
    params_m: float | None
    gmacs: float | None
    resolution: int | None = None  # the input side the top-1 was measured at
    family: str | None = None  # as the zoo spells it, so one filter covers both


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class PublishedLatency:
    latency_ms: float
    device: str  # as the source names it, e.g. "Intel Core i9-9900X CPU (single thread)"
    source: str


# The published devices that stand for each device class: same class of hardware, so the
# measured and published rankings can be set side by side (absolute values differ by device).
PUBLISHED_DEVICES = {
    "cpu-x86_64": ("Intel Core i9-9900X CPU (single thread)",),
    "cpu-arm64": ("ARM Cortex-A72 CPU (single thread)",),
    "iphone12-class": (
        "iPhone 12 (iOS 16)",
        "iPhone 12 Pro",
        "iPhone 12",
        "iPhone 12 Pro Max (iOS 16.0)",  # same A14 SoC as the iPhone 12
    ),
    "gpu-cuda": ("NVIDIA GeForce RTX 2080Ti",),  # throughput only (batch 32): no latency rows
}


def rows(path: Path | None = None) -> list[dict[str, str]]:
    """Every row of the reference CSV as the file spells it (``None``: the packaged file)."""
    if path is None:
        text = resources.files("service.data").joinpath(PACKAGED).read_text(encoding="utf-8")
    elif path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        return []
    return list(csv.DictReader(io.StringIO(text)))


def _source(row: dict[str, str]) -> str:
    return f"{row.get('source_repo', '')} {row.get('source_file_or_table', '')}".strip()


@lru_cache(maxsize=4)
def load_latency(path: Path | None = None) -> dict[tuple[str, str], PublishedLatency]:
    """(timm name, device class) -> the first published latency on a device of that class."""
    table: dict[tuple[str, str], PublishedLatency] = {}
    for row in rows(path):
        name, latency = row.get("timm_name", "").strip(), _number(row.get("latency_ms"))
        if not name or latency is None:
            continue
        for device_class, devices in PUBLISHED_DEVICES.items():
            if row.get("device") in devices:
                table.setdefault(
                    (name, device_class), PublishedLatency(latency, row["device"], _source(row))
                )
    return table


@lru_cache(maxsize=4)
def load(path: Path | None = None) -> dict[str, Reference]:
    """First row with a top-1 per timm name (the file lists each model's own repository first);
    ``None`` reads the packaged file."""
    table: dict[str, Reference] = {}
    for row in rows(path):
        name, top1 = row.get("timm_name", "").strip(), _number(row.get("top1"))
        if not name or top1 is None or name in table:
            continue
        resolution = _number(row.get("resolution"))
        table[name] = Reference(
            top1=top1,
            source=_source(row),
            params_m=_number(row.get("params_m")),
            gmacs=_number(row.get("gmacs")),
            resolution=int(resolution) if resolution else None,
            family=row.get("family", "").lower()
            or None,  # the zoo's spelling: "FastViT" -> "fastvit"
        )
    return table
