"""Published reference figures (top-1, params, MACs) keyed by timm model name, read from the CSV
that ``LATBENCH_REFERENCE_CSV`` names. The service works without it: every lookup is then empty."""

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


@lru_cache(maxsize=4)
def load(path: Path) -> dict[str, Reference]:
    """First row with a top-1 per timm name (the file lists each model's own repository first)."""
    if not path.is_file():
        return {}
    table: dict[str, Reference] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            name, top1 = row.get("timm_name", "").strip(), _number(row.get("top1"))
            if not name or top1 is None or name in table:
                continue
            source = f"{row.get('source_repo', '')} {row.get('source_file_or_table', '')}".strip()
            table[name] = Reference(
                top1=top1,
                source=source,
                params_m=_number(row.get("params_m")),
                gmacs=_number(row.get("gmacs")),
            )
    return table
