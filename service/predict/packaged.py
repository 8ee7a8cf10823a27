"""The predictor's package data (``service/predict/data``): where a file lies in this install, and
one warning per process and file where the install lacks it. A missing file is a broken install,
not a setting, and would otherwise only show as predictions that abstain or as slow exports."""

from __future__ import annotations

import logging
from functools import cache
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)


@cache
def data_path(name: str) -> Path:
    return Path(str(resources.files("service.predict").joinpath("data", name)))


@cache
def report_missing(path: Path, consequence: str) -> None:
    log.warning(
        "%s is missing from this install of latbench (reinstall the package): %s", path, consequence
    )
