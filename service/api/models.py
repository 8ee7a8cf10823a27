"""GET /models: the zoo with family, params, MACs (measured at export where known, else
published) and the published top-1 with its source."""

from __future__ import annotations

import fnmatch
from functools import cache

from fastapi import APIRouter, Query
from sqlalchemy import select

from exporters.zoo.registry import ModelEntry, get_model, list_models
from service import reference
from service.api.deps import ReadSessionDep, SettingsDep, UserDep
from service.api.schemas import ModelPublic, ModelsPublic, Offset
from service.db.tables import SpecRow

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
    page = entries[offset : offset + limit]
    measured = {
        row.model: row
        for row in session.scalars(
            select(SpecRow).where(
                SpecRow.model.in_([e.name for e in page]), SpecRow.params.is_not(None)
            )
        )
    }
    data = []
    for entry in page:
        ref, spec = refs.get(entry.name), measured.get(entry.name)
        params = spec.params if spec else _scaled(ref and ref.params_m, 1e6)
        macs = spec.macs if spec else _scaled(ref and ref.gmacs, 1e9)
        data.append(
            ModelPublic(
                name=entry.name,
                family=entry.family,
                params=params,
                macs=macs,
                input_size=list(entry.input_size),
                reference_top1=ref.top1 if ref else None,
                reference_source=ref.source if ref else None,
            )
        )
    return ModelsPublic(data=data, count=len(entries))


@cache
def _zoo() -> tuple[ModelEntry, ...]:
    """The zoo is fixed for the life of the process; resolving every entry takes seconds."""
    return tuple(get_model(name) for name in list_models())


def _scaled(value: float | None, factor: float) -> int | None:
    return round(value * factor) if value else None
