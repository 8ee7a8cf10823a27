"""``python:package.module:factory``: the user's own model code, imported and called in the
caller's environment (the CLI only: this runs their code), then exported like a zoo model.

The artifacts are keyed by what the factory builds, never by its name: the hash covers the traced
program of the train form (``torch.export``, TorchScript as fallback), the names, shapes and dtypes
of its weights and buffers, the input shape and the library versions. The same name at two commits
that build different graphs is two models; a cache hit never hides a change.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from exporters.errors import SpecError
from exporters.export import Buildable
from exporters.formats import ExportFormat, Precision
from exporters.keys import validation_error
from exporters.spec import PYTHON_REFERENCE as _REFERENCE
from exporters.spec import PYTHON_SOURCE, InputSpec, library_versions


class PythonSpec(BaseModel):
    """``{"model": "python:pkg.mod:factory", "kwargs": {...}, "input": {...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(..., pattern=_REFERENCE.pattern, max_length=256)
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=64)
    input: InputSpec = InputSpec(height=224, width=224)
    precision: Precision | None = None
    formats: tuple[ExportFormat, ...] = (ExportFormat.ONNX,)

    @property
    def label(self) -> str:
        return self.model.removeprefix(PYTHON_SOURCE)


def parse_python_spec(data: Any) -> PythonSpec:
    if isinstance(data, str):
        data = {"model": data}
    try:
        return PythonSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, PythonSpec) from exc


def _factory(spec: PythonSpec) -> Any:
    module_name, name = _REFERENCE.match(spec.model).groups()  # type: ignore[union-attr]
    if os.getcwd() not in sys.path:  # as `python -m` would: the caller's own packages import
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(
            f"cannot import {module_name!r} ({exc}); run from the directory that contains the "
            "package or install it",
            field="model",
        ) from exc
    factory = getattr(module, name, None)
    if not callable(factory):
        raise SpecError(f"{module_name!r} has no callable {name!r}", field="model")
    return factory


def build_user_model(spec: PythonSpec) -> nn.Module:
    """Call the factory; wrap its module so that a deploy switch on the model itself
    (``reparameterize``, ``switch_to_deploy``, ``fuse``) is found by the same walk that finds
    those of its submodules (timm's walker visits children only)."""
    try:
        model = _factory(spec)(**spec.kwargs)
    except TypeError as exc:
        raise SpecError(f"{spec.label} rejected its arguments: {exc}", field="kwargs") from exc
    if not isinstance(model, nn.Module):
        raise SpecError(
            f"{spec.label} returned {type(model).__name__}, not a torch.nn.Module", field="model"
        )
    return _Root(model).eval()


def program_hash(model: nn.Module, shape: tuple[int, ...]) -> str:
    """Hash of what ``model`` computes at ``shape``: traced graph code plus weights' shapes."""
    example = torch.zeros(*shape)
    try:
        program = torch.export.export(model, (example,))
        code = program.graph_module.code
        state = {**program.state_dict, **program.constants}
    except Exception:  # noqa: BLE001 - torch.export refuses many models; tracing is the fallback
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        code = traced.inlined_graph.str(False)  # without source locations: paths differ
        state = dict(traced.state_dict())
    tensors = sorted(
        (name, list(value.shape), str(value.dtype))
        for name, value in state.items()
        if isinstance(value, torch.Tensor)
    )
    payload = {"code": code, "state": tensors, "input": list(shape), **library_versions()}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def python_buildable(spec: PythonSpec) -> Buildable:
    model = build_user_model(spec)
    shape = spec.input.shape
    return Buildable(
        model=spec.label,
        family="python",
        content_hash=program_hash(model, shape),
        input_shape=shape,
        build=lambda: model,
        description=spec.model_dump(mode="json"),
        formats=spec.formats,
        precision=spec.precision,
    )


class _Root(nn.Module):
    """The user's module as the single child of a plain container."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Any) -> Any:
        return self.model(x)
