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

import copy
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from exporters.exporter import get_exporter
from exporters.formats import ExportFormat, Precision
from exporters.zoo.native.parc import ParCConv, ParCForm, parc_layers, set_parc_form

# (artifact A, artifact B) -> an object with .a.median, .b.median (ms) and .estimate.ratio /
# .estimate.ci95 (B/A): the shape of devices.results.Comparison.
CompareArtifacts = Callable[[Path, Path], Any]


@dataclass(frozen=True)
class LayerShape:
    """What a ParC layer's cost depends on: its input shape and orientation (not its weights)."""

    orientation: str
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "forms": dict(self.forms),
            "timings": [{**asdict(t), "size": t.shape.size, "faster": t.faster}
                        for t in self.timings],
            "crossover": self.crossover,
            "export_format": self.export_format,
            "notes": list(self.notes),
        }


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
    return ParCConv(shape.channels, shape.size, shape.orientation, form=form).eval()  # type: ignore[arg-type]


def time_forms(
    shape: LayerShape,
    compare: CompareArtifacts,
    workdir: Path,
    fmt: ExportFormat = ExportFormat.ONNX,
) -> FormTiming:
    """Export the layer in both forms and time them side by side (A = spatial, B = fft)."""
    export = get_exporter(fmt)
    example = torch.randn(shape.batch, shape.channels, shape.height, shape.width)
    paths = []
    for form in ("spatial", "fft"):
        tag = f"{shape.orientation}{shape.channels}x{shape.height}x{shape.width}-{form}"
        dest = workdir / f"parc-{tag}{fmt.suffix}"
        paths.append(export(probe_layer(shape, form), example, Precision.FP32, dest).path)
    result = compare(paths[0], paths[1])
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
    orientation: str = "h",
    workdir: Path | None = None,
) -> list[FormTiming]:
    """Spatial vs FFT for square n x n feature maps: the crossover curve of one device."""
    with tempfile.TemporaryDirectory(prefix="parc-sweep-") as scratch:
        where = workdir or Path(scratch)
        return [time_forms(LayerShape(orientation, 1, channels, n, n), compare, where)
                for n in sizes]


def choose_forms(
    model: nn.Module,
    example: torch.Tensor,
    compare: CompareArtifacts,
    *,
    fmt: ExportFormat = ExportFormat.ONNX,
) -> FormPlan:
    """Measure both forms for every distinct ParC layer shape, set each layer to the faster form
    (in place) and return the plan. Layers of the same shape share one measurement."""
    shapes = layer_shapes(model, example)
    with tempfile.TemporaryDirectory(prefix="parc-forms-") as scratch:
        timings = {s: time_forms(s, compare, Path(scratch), fmt) for s in dict.fromkeys(shapes.values())}
    forms: dict[str, ParCForm] = {name: timings[s].faster for name, s in shapes.items()}
    set_parc_form(model, forms)  # type: ignore[arg-type]
    return FormPlan(
        forms=forms,
        timings=list(timings.values()),
        crossover=crossover(timings.values()),
        export_format=fmt.value,
    )


def apply_plan(model: nn.Module, plan: FormPlan | dict[str, Any]) -> list[str]:
    """Re-apply a recorded plan (e.g. from a stored result) to a fresh build of the same model."""
    forms = plan.forms if isinstance(plan, FormPlan) else plan["forms"]
    return set_parc_form(model, forms)


def with_forms(model: nn.Module, form: ParCForm) -> nn.Module:
    """A copy of ``model`` with every ParC layer in ``form`` (the original is left as it is)."""
    clone = copy.deepcopy(model)
    set_parc_form(clone, form)
    return clone
