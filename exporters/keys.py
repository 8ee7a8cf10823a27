"""One wording for a key the user wrote that a schema does not have: the key as written, where it
sits, the close match ("did you mean") and the keys allowed there. A misspelt key (``heigth``)
makes pydantic report both the unknown key and the missing one (``height``); the user wrote the
first, so it is the one named."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from exporters.errors import SpecError, spec_error_from


def did_you_mean(word: str, names: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``names``, or an empty string."""
    close = difflib.get_close_matches(word, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``X | None``, ``list[X]``, ``Annotated[X, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _nested_model(arg)) is not None:
            return found
    return None


def keys_at(model: type[BaseModel], path: Iterable[Any]) -> list[str]:
    """The keys the schema allows at ``path`` (list indexes skipped) below ``model``."""
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            continue  # a list index or a dict key
        nested = _nested_model(field.annotation)
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)


def validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    prefix: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    default: str = "spec",
) -> SpecError:
    """A SpecError for ``exc``: an unknown key first (as written, with its close match), else
    the first error naming its dotted field."""
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if not unknown:
        return spec_error_from(errors, prefix=prefix, skip=skip, default=default)
    loc = [part for part in unknown[0]["loc"] if part not in skip]
    key, allowed = str(loc[-1]), keys_at(model, loc[:-1])
    listed = f"; allowed: {', '.join(allowed)}" if allowed else ""
    return SpecError(
        f"unknown key {key!r}{did_you_mean(key, allowed)}{listed}",
        field=".".join([*prefix, *(str(part) for part in loc)]),
    )
