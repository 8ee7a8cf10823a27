"""Every REF a command was given, checked before the first build: a missing file, a misspelt
spec key, an unknown model or override fails in well under a second, naming the side it came
from (``a`` / ``b``, ``baseline`` / ``candidate``) instead of after building the other side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporters.errors import SpecError
from exporters.formats import ExportFormat

ARTIFACT_SUFFIXES = tuple(fmt.suffix for fmt in ExportFormat)


def check_ref(ref: str | dict[str, Any], *, side: str | None = None) -> None:
    """Raise the SpecError building ``ref`` would raise first, without importing torch or the
    user's code; ``side`` prefixes the field so the message says which REF it is about."""
    try:
        _check(ref)
    except SpecError as error:
        if side is None:
            raise
        raise SpecError(str(error), field=side) from error


def _check(ref: str | dict[str, Any]) -> None:
    from exporters.spec import (
        PYTHON_REFERENCE,
        PYTHON_SOURCE,
        SPEC_SUFFIXES,
        parse_spec,
        read_spec_file,
    )
    from exporters.zoo import resolve

    data: Any = ref
    if isinstance(ref, str) and Path(ref).suffix in ARTIFACT_SUFFIXES:
        if not Path(ref).exists():
            raise SpecError(f"artifact {ref!r} does not exist", field="artifact")
        return
    if isinstance(ref, str) and Path(ref).suffix in SPEC_SUFFIXES:
        if not Path(ref).is_file():
            raise SpecError(f"spec file {ref!r} does not exist", field="spec")
        data = read_spec_file(Path(ref))
    model = data if isinstance(data, str) else (data or {}).get("model", "")
    if isinstance(model, str) and model.startswith(PYTHON_SOURCE):
        if not PYTHON_REFERENCE.match(model):
            raise SpecError(f"{model!r} is not python:package.module:factory", field="model")
        return
    resolve(parse_spec(data))
