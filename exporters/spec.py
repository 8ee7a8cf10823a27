"""What a user sends: a model by name (plus allow-listed architecture overrides), its input and the
export options. Specs arrive from the network, so nothing here can name a file or make a library
load weights: unknown keys are refused by the schema and overrides are checked against a per-family
allow-list before anything is built (``timm_models.FAMILIES``, native models' own ``knobs``).

The content hash keys the artifact cache and the service's stored spec rows: canonical JSON of
everything that changes what is built (the graph and the precision asked for), plus the versions of
the libraries that produce it. ``formats`` is not in it (each artifact key adds its format), and a
stored spec keeps exactly the hashed fields (``identity()``), so no request can leave a field in a
row that another request with the same hash would then inherit.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporters.errors import SpecError
from exporters.formats import ExportFormat, Precision
from exporters.keys import validation_error

MAX_SIDE = 2048
MAX_BATCH = 64
MAX_PIXELS_PER_BATCH = (
    64 * 1024 * 1024
)  # batch*height*width; beyond this no phone model makes sense

HASHED_LIBRARIES = ("torch", "timm", "onnx", "coremltools")
PYTHON_SOURCE = "python:"  # a user's own factory: runs their code, so only the CLI accepts it
PYTHON_REFERENCE = re.compile(r"^python:([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)$")
SPEC_SUFFIXES = (".json", ".yaml", ".yml")


class InputSpec(BaseModel):
    """NCHW input of the exported graph. Omitted fields default to the model's own config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: int = Field(1, ge=1, le=MAX_BATCH)
    channels: int = Field(3, ge=1, le=16)
    height: int = Field(..., ge=16, le=MAX_SIDE)
    width: int = Field(..., ge=16, le=MAX_SIDE)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.channels, self.height, self.width)

    @model_validator(mode="after")
    def _bounded_size(self) -> InputSpec:
        pixels = self.batch * self.height * self.width
        if pixels > MAX_PIXELS_PER_BATCH:
            raise ValueError(f"batch*height*width = {pixels} exceeds {MAX_PIXELS_PER_BATCH}")
        return self


class ModelSpec(BaseModel):
    """A model to build: ``{"model": "fastvit_t8"}`` or with ``overrides`` of architecture knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    overrides: dict[str, Any] = Field(default_factory=dict, max_length=32)
    input: InputSpec | None = None
    precision: Precision | None = Field(
        None, description="None: each format's deployed default (CoreML fp16, others fp32)"
    )
    formats: tuple[ExportFormat, ...] = (ExportFormat.ONNX, ExportFormat.COREML)
    calibration: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}$",
        description="id of a stored calibration set (int8 only); None: synthetic inputs",
    )

    @field_validator("calibration")
    @classmethod
    def _calibration_needs_int8(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("precision") is not Precision.INT8:
            raise ValueError("calibration applies to precision int8 only")
        return value

    @field_validator("formats")
    @classmethod
    def _formats_nonempty_unique(cls, value: tuple[ExportFormat, ...]) -> tuple[ExportFormat, ...]:
        if not value:
            raise ValueError("at least one format is required")
        return tuple(dict.fromkeys(value))

    def precision_for(self, fmt: ExportFormat) -> Precision:
        return fmt.default_precision(self.precision)

    def precision_error(self, fmt: ExportFormat) -> SpecError | None:
        """Why ``fmt`` cannot be exported at this spec's precision, or None when it can."""
        return fmt.precision_error(self.precision)

    def require_precision(self, fmt: ExportFormat) -> Precision:
        """The precision ``fmt`` is built at; SpecError (field ``precision``) if impossible."""
        if (error := self.precision_error(fmt)) is not None:
            raise error
        return self.precision_for(fmt)

    def graph_identity(self) -> dict[str, Any]:
        """The fields that change the computed graph (not its numeric precision)."""
        return {
            "model": self.model,
            "overrides": self.overrides,
            "input": self.input.model_dump() if self.input else None,
        }

    def identity(self) -> dict[str, Any]:
        """Every field that changes what is built, in canonical form: what the hash covers and
        all that a stored spec keeps."""
        identity = {
            **self.graph_identity(),
            "precision": self.precision.value if self.precision else None,
        }
        if self.calibration is not None:  # absent when unset: earlier hashes stay valid
            identity["calibration"] = self.calibration
        return identity

    def content_hash(self) -> str:
        payload = {"spec": self.identity(), "versions": library_versions()}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@cache
def library_versions() -> dict[str, str]:
    """Versions of the libraries whose output the artifact depends on (no import needed)."""
    versions = {}
    for name in HASHED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def parse_spec(data: Any) -> ModelSpec:
    """Validate untrusted input; a bare string is a model name. Errors name the field."""
    if isinstance(data, str):
        data = {"model": data}
    if isinstance(data, ModelSpec):
        return data
    if isinstance(data, dict) and str(data.get("model", "")).startswith(PYTHON_SOURCE):
        raise SpecError(
            "a python: source runs your code, so only the CLI builds it; build and upload the "
            "artifact (`latbench upload`, POST /artifacts) and send its id instead",
            field="model",
        )
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, ModelSpec) from exc


def read_spec_file(path: Path) -> Any:
    """The document of a local JSON or YAML spec file (CLI only; the API never takes a path)."""
    text = path.read_text()
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot parse {path.name}: {exc}", field="spec") from exc


def load_spec_file(path: Path) -> ModelSpec:
    return parse_spec(read_spec_file(path))


def resolve_spec_argument(argument: str) -> ModelSpec:
    """CLI argument: a spec file if it names an existing .json/.yaml file, else a model name."""
    path = Path(argument)
    if path.suffix in SPEC_SUFFIXES:
        if not path.is_file():
            raise SpecError(f"spec file {argument!r} does not exist", field="spec")
        return load_spec_file(path)
    return parse_spec(argument)
