"""Published reference figures (top-1, params, MACs, latency) keyed by timm model name, read from
the CSV that ``LATBENCH_REFERENCE_CSV`` names. The service works without it: every lookup is then
empty."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class Reference:
    top1: float
    source: str  # "<repository> <file or table>", cited wherever the figure is shown
    params_m: float | None
    gmacs: float | None


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
    "iphone12-class": ("iPhone 12 (iOS 16)", "iPhone 12 Pro", "iPhone 12"),
    "gpu-cuda": ("NVIDIA GeForce RTX 2080Ti",),  # throughput only (batch 32): no latency rows
}


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _source(row: dict[str, str]) -> str:
    return f"{row.get('source_repo', '')} {row.get('source_file_or_table', '')}".strip()


@lru_cache(maxsize=4)
def load_latency(path: Path) -> dict[tuple[str, str], PublishedLatency]:
    """(timm name, device class) -> the first published latency on a device of that class."""
    table: dict[tuple[str, str], PublishedLatency] = {}
    for row in _rows(path):
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
def load(path: Path) -> dict[str, Reference]:
    """First row with a top-1 per timm name (the file lists each model's own repository first)."""
    table: dict[str, Reference] = {}
    for row in _rows(path):
        name, top1 = row.get("timm_name", "").strip(), _number(row.get("top1"))
        if not name or top1 is None or name in table:
            continue
        table[name] = Reference(
            top1=top1,
            source=_source(row),
            params_m=_number(row.get("params_m")),
            gmacs=_number(row.get("gmacs")),
        )
    return table
