"""Model registry keyed by name: one decorator to add a builder, one factory to build from a spec.

Natively written models (ParC-Net) register with ``@register_model``; every timm model name is
resolved on demand through ``exporters.zoo.timm_models`` so the zoo never copies timm's list.
Builders always produce randomly initialised weights: no download is possible here and latency does
not depend on weight values. Results carry ``weights="random"`` so nobody mistakes them.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exporters.errors import SpecError, UnknownModelError
from exporters.spec import InputSpec, ModelSpec
from exporters.zoo.entry import Builder, ModelEntry

WEIGHTS = "random"

_NATIVE: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    family: str,
    input_size: tuple[int, int, int] = (3, 224, 224),
    knobs: Mapping[str, Any] | None = None,
    source: str = "",
    img_size_arg: bool = False,
) -> Callable[[Builder], Builder]:
    """Register a native builder under ``name``; a duplicate name is a programming error."""

    def decorate(builder: Builder) -> Builder:
        if name in _NATIVE:
            raise ValueError(f"model {name!r} is already registered")
        _NATIVE[name] = ModelEntry(
            name=name,
            family=family,
            builder=builder,
            input_size=input_size,
            knobs=dict(knobs or {}),
            source=source,
            img_size_arg=img_size_arg,
        )
        return builder

    return decorate


def _load_native_model(name: str) -> None:
    """Import the module of ``exporters.zoo.native`` registering ``name``, if one does (only
    then: they import torch)."""
    import importlib

    from exporters.zoo import native

    if name in native.MODULE_OF:
        importlib.import_module(f"{native.__name__}.{native.MODULE_OF[name]}")


def list_models(pattern: str = "*") -> list[str]:
    from exporters.zoo import native, timm_models

    names = set(native.MODULE_OF) | set(timm_models.list_names())
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def get_model(name: str) -> ModelEntry:
    from exporters.zoo import timm_models

    _load_native_model(name)
    if name in _NATIVE:
        return _NATIVE[name]
    entry = timm_models.entry_for(name)
    if entry is not None:
        return entry
    close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.6)
    raise UnknownModelError(name, close)


@dataclass(frozen=True)
class ResolvedSpec:
    """A spec checked against its zoo entry: overrides validated, input defaulted."""

    spec: ModelSpec
    entry: ModelEntry
    overrides: dict[str, Any]
    input: InputSpec


def resolve(spec: ModelSpec) -> ResolvedSpec:
    """Everything that can be checked without building: fails before any torch work starts."""
    entry = get_model(spec.model)
    overrides = entry.validate_overrides(spec.overrides)
    default = entry.default_input()
    input_spec = spec.input or default
    if input_spec.channels != default.channels:
        raise SpecError(
            f"{entry.name} takes {default.channels} input channels, not {input_spec.channels}",
            field="input.channels",
        )
    return ResolvedSpec(spec=spec, entry=entry, overrides=overrides, input=input_spec)


def build(resolved: ResolvedSpec) -> Any:
    """The train-form ``nn.Module`` (eval mode, random weights)."""
    kwargs = dict(resolved.overrides)
    default = resolved.entry.default_input()
    if resolved.entry.img_size_arg and (resolved.input.height, resolved.input.width) != (
        default.height,
        default.width,
    ):
        kwargs["img_size"] = (resolved.input.height, resolved.input.width)
    try:
        model = resolved.entry.builder(**kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise SpecError(
            f"{resolved.entry.name} cannot be built with these overrides: {exc}", field="overrides"
        ) from exc
    return model.eval()
