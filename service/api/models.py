"""GET /models: the zoo with family, params, MACs (measured at export where known, else
published) and the published top-1 with its source."""

from __future__ import annotations

import fnmatch
from functools import cache

from fastapi import APIRouter, Query

from exporters.zoo.registry import ModelEntry, get_model, list_models
from service import reference
from service.api.deps import ReadSessionDep, SettingsDep, UserDep
from service.api.present import models_public
from service.api.schemas import ModelsPublic, Offset

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelsPublic)
def read_models(
    session: ReadSessionDep,
    settings: SettingsDep,
    _user: UserDep,
    pattern: str = Query("*", max_length=128, description="shell-style, e.g. fastvit*"),
    family: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=2000),
    offset: Offset = 0,
) -> ModelsPublic:
    refs = reference.load(settings.reference_csv)
    entries = [entry for entry in _zoo() if fnmatch.fnmatch(entry.name, pattern)]
    if family:
        entries = [e for e in entries if e.family == family]
    return models_public(session, refs, entries[offset : offset + limit], len(entries))


@cache
def _zoo() -> tuple[ModelEntry, ...]:
    """The zoo is fixed for the life of the process; resolving every entry takes seconds."""
    return tuple(get_model(name) for name in list_models())
