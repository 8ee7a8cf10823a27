"""Pick the faster ParC form per layer by measuring both on the target runner.

Spatial ParC costs O(n²) per row, Fast-ParC O(n log n) plus two FFTs, and which wins depends on
the feature size and the runtime's kernels: a latency service should measure, not guess. For each
distinct layer shape of a model, one ParC layer in each form is exported (the same exporter as the
model's artifact) and the two artifacts are timed side by side by an injected ``compare`` callable:
``devices``' ``Runner.compare`` (interleaved ABBA, ratio CI across session reloads), bound to its
settings. Injecting it keeps ``exporters`` free of ``devices`` (dependencies point one way).

A layer gets the FFT form only when FFT is faster with the whole 95% CI below 1; a tie keeps the
spatial form, which every runtime runs without DFT support.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from exporters.errors import ExportError
from exporters.exporter import get_exporter
from exporters.formats import ExportFormat, Precision
from exporters.zoo.native.parc import (
    Orientation,
    ParCConv,
    ParCForm,
    parc_layers,
    set_parc_form,
)

# (artifact A, artifact B) -> an object with .a.median, .b.median (ms) and .estimate.ratio /
# .estimate.ci95 (B/A): the shape of devices.results.Comparison.
CompareArtifacts = Callable[[Path, Path], Any]


@dataclass(frozen=True)
class LayerShape:
    """What a ParC layer's cost depends on: its input shape and orientation (not its weights)."""

    orientation: Orientation
    batch: int
    channels: int
    height: int
    width: int

    @property
    def size(self) -> int:
        """Feature length along the ParC axis: the kernel length."""
        return self.height if self.orientation == "h" else self.width


@dataclass(frozen=True)
class FormTiming:
    shape: LayerShape
    spatial_ms: float
    fft_ms: float
    ratio: float  # fft / spatial latency; < 1: FFT faster
    ci95: tuple[float, float]
    fft_error: str | None = None  # why the FFT form could not be measured, when it could not

    @property
    def faster(self) -> ParCForm:
        return "fft" if self.ci95[1] < 1.0 else "spatial"


@dataclass
class FormPlan:
    """Which form each layer got and the timings behind it (stored with the export)."""

    forms: dict[str, ParCForm]
    timings: list[FormTiming]
    crossover: int | None
    export_format: str
    notes: list[str] = field(default_factory=list)

    def overrides(self) -> dict[str, Any]:
        """The spec override that builds this plan (``parc_form``), so the chosen forms are part
        of the spec: its hash, hence the artifact key, changes with them. All-spatial is every
        ParC model's default (no override, so the default artifact is reused); one form for
        every layer collapses to that form's name."""
        chosen = set(self.forms.values())
        if chosen <= {"spatial"}:
            return {}
        return {"parc_form": chosen.pop() if len(chosen) == 1 else dict(self.forms)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "forms": dict(self.forms),
            "timings": [
                _finite({**asdict(t), "size": t.shape.size, "faster": t.faster})
                for t in self.timings
            ],
            "crossover": self.crossover,
            "export_format": self.export_format,
            "notes": list(self.notes),
        }


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    """JSON has no inf/nan: an unmeasurable FFT time is stored as null."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, tuple | list):
            return [clean(v) for v in value]
        return value

    return {key: clean(value) for key, value in record.items()}


@torch.no_grad()
def layer_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, LayerShape]:
    """Each ParC layer's input shape at this example input (one forward pass with hooks)."""
    shapes: dict[str, LayerShape] = {}
    hooks = []
    for name, layer in parc_layers(model).items():

        def record(module: nn.Module, args: tuple, _out: object, name: str = name) -> None:
            b, c, h, w = args[0].shape
            shapes[name] = LayerShape(module.orientation, b, c, h, w)

        hooks.append(layer.register_forward_hook(record))
    try:
        model.eval()(example)
    finally:
        for handle in hooks:
            handle.remove()
    return shapes


def probe_layer(shape: LayerShape, form: ParCForm) -> nn.Module:
    """A lone ParC layer of this shape: what the model's layer costs, measured in isolation."""
    return ParCConv(shape.channels, shape.size, shape.orientation, form=form).eval()


def export_probe(
    shape: LayerShape, form: ParCForm, workdir: Path, fmt: ExportFormat, precision: Precision
) -> Path:
    example = torch.randn(shape.batch, shape.channels, shape.height, shape.width)
    tag = f"{shape.orientation}{shape.channels}x{shape.height}x{shape.width}-{form}"
    dest = workdir / f"parc-{tag}{fmt.suffix}"
    return get_exporter(fmt)(probe_layer(shape, form), example, precision, dest).path


def time_forms(
    shape: LayerShape,
    compare: CompareArtifacts,
    workdir: Path,
    fmt: ExportFormat = ExportFormat.ONNX,
    precision: Precision = Precision.FP32,
) -> FormTiming:
    """Export the layer in both forms and time them side by side (A = spatial, B = fft).

    When the FFT form does not export to ``fmt`` the spatial form is the only choice: the timing
    says why (``fft_error``) and ranks FFT infinitely slow, instead of failing the whole model."""
    spatial = export_probe(shape, "spatial", workdir, fmt, precision)
    try:
        fft = export_probe(shape, "fft", workdir, fmt, precision)
    except ExportError as exc:
        reason = f"FFT form does not export to {fmt.value} ({exc}); falling back to spatial"
        return FormTiming(shape, math.nan, math.inf, math.inf, (math.inf, math.inf), reason)
    result = compare(spatial, fft)
    return FormTiming(
        shape=shape,
        spatial_ms=float(result.a.median),
        fft_ms=float(result.b.median),
        ratio=float(result.estimate.ratio),
        ci95=(float(result.estimate.ci95[0]), float(result.estimate.ci95[1])),
    )


def crossover(timings: Iterable[FormTiming]) -> int | None:
    """The smallest feature size from which FFT wins at every larger measured size (None: FFT
    never wins for the largest size, so there is no crossover in the measured range)."""
    by_size: dict[int, list[FormTiming]] = {}
    for timing in timings:
        by_size.setdefault(timing.shape.size, []).append(timing)
    found = None
    for size in sorted(by_size, reverse=True):
        if all(t.faster == "fft" for t in by_size[size]):
            found = size
        else:
            break
    return found


def sweep(
    sizes: Sequence[int],
    channels: int,
    compare: CompareArtifacts,
    *,
    orientation: Orientation = "h",
    fmt: ExportFormat = ExportFormat.ONNX,
    precision: Precision = Precision.FP32,
) -> list[FormTiming]:
    """Spatial vs FFT for square n x n feature maps: the crossover curve of one device."""
    with tempfile.TemporaryDirectory(prefix="parc-sweep-") as scratch:
        return [
            time_forms(
                LayerShape(orientation, 1, channels, n, n), compare, Path(scratch), fmt, precision
            )
            for n in sizes
        ]


def choose_forms(
    model: nn.Module,
    example: torch.Tensor,
    compare: CompareArtifacts,
    *,
    fmt: ExportFormat = ExportFormat.ONNX,
    precision: Precision = Precision.FP32,
) -> FormPlan:
    """Measure both forms for every distinct ParC layer shape, set each layer to the faster form
    (in place) and return the plan. Layers of the same shape share one measurement."""
    shapes = layer_shapes(model, example)
    with tempfile.TemporaryDirectory(prefix="parc-forms-") as scratch:
        timings = {
            shape: time_forms(shape, compare, Path(scratch), fmt, precision)
            for shape in dict.fromkeys(shapes.values())
        }
    forms: dict[str, ParCForm] = {name: timings[shape].faster for name, shape in shapes.items()}
    set_parc_form(model, dict(forms))
    return FormPlan(
        forms=forms,
        timings=list(timings.values()),
        crossover=crossover(timings.values()),
        export_format=fmt.value,
        notes=sorted({t.fft_error for t in timings.values() if t.fft_error}),
    )
