"""CoreML exporter: real coremltools conversions, checked from the saved package's spec.

Prediction needs the Core ML runtime (macOS); that test is skipped elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="CoreML conversion needs the [export] extra (torch)")
pytest.importorskip("coremltools", reason="CoreML conversion needs the [export] extra")

from exporters import coreml
from exporters.errors import ExportError
from exporters.exporter import get_exporter
from exporters.formats import ExportFormat, Precision
from exporters.zoo.seeds import FAMILY_PATTERNS, SMALLEST

pytestmark = pytest.mark.coreml


def _deploy(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """Deploy form of a zoo model (random weights) and an input of its default shape."""
    from timm.utils import reparameterize_model

    from exporters.spec import parse_spec
    from exporters.zoo import build, resolve

    resolved = resolve(parse_spec(name))
    model = reparameterize_model(build(resolved)).eval()
    return model, torch.randn(*resolved.input.shape, generator=torch.Generator().manual_seed(0))


def _all_seed_variants() -> list[str]:
    from exporters.zoo import list_models

    return [name for pattern in FAMILY_PATTERNS for name in list_models(pattern)]


class LgammaHead(torch.nn.Module):
    """lgamma has no converter in coremltools on either capture path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.lgamma(self.conv(x).abs() + 1.0)


class DataDependentBranch(torch.nn.Module):
    """torch.export refuses a branch on a tensor value; jit.trace records the branch taken."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 if x.sum() > 0 else x - 1.0


class FullSliceCrop(torch.nn.Module):
    """timm's efficientvit_m* crop ``x[:, :H, :W]`` with H, W the full size: torch.export records
    the no-op slice as ``aten.alias``, which coremltools has no converter for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y[:, :, : y.shape[2], : y.shape[3]].contiguous() * 2.0


class UnfoldAndBicubic(torch.nn.Module):
    """``Tensor.unfold`` (sliding windows) and bicubic resize: neither has a converter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.interpolate(self.conv(x), scale_factor=2, mode="bicubic")
        return y.unfold(3, 4, 2).mean(-1)


def _export(model: torch.nn.Module, example: torch.Tensor, precision: Precision, tmp: Path):
    return get_exporter(ExportFormat.COREML)(model, example, precision, tmp / "model.mlpackage")


def _assert_package(result, model: torch.nn.Module, example: torch.Tensor, precision: Precision):
    checks = result.checks
    assert result.path.is_dir() and (result.path / "Manifest.json").is_file()
    with torch.no_grad():
        out_shape = list(model(example).shape)
    assert [(f["name"], f["shape"]) for f in checks["inputs"]] == [("input", list(example.shape))]
    assert [(f["name"], f["shape"]) for f in checks["outputs"]] == [("output", out_shape)]
    assert checks["deployment_target"] == "iOS16"
    assert checks["compute_precision"] == precision.value
    assert checks["op_histogram"]["conv"] >= 1
    assert checks["ops"] == sum(n for op, n in checks["op_histogram"].items() if op != "const")
    if sys.platform != "darwin":
        assert result.parity is None and "macOS" in checks["parity"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SMALLEST)
def test_smallest_of_each_family_converts_with_torch_export(name: str, tmp_path: Path) -> None:
    from exporters.spec import parse_spec

    precision = parse_spec(name).precision_for(ExportFormat.COREML)  # the spec's default
    model, example = _deploy(name)
    result = _export(model, example, precision, tmp_path)
    assert result.export_path == "torch.export"
    assert result.checks["fallback_reasons"] == []
    _assert_package(result, model, example, Precision.FP16)
    # fp16 programs on iOS16 take and return fp16 tensors: no cast ops at the edges
    assert result.checks["inputs"][0]["dtype"] == "float16"
    assert "float32" not in result.checks["compute_dtypes"]


def test_fp32_on_request_is_visible_in_the_spec_and_checked(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.GELU()).eval()
    example = torch.randn(1, 3, 32, 32)
    result = _export(model, example, Precision.FP32, tmp_path)
    _assert_package(result, model, example, Precision.FP32)
    assert result.checks["inputs"][0]["dtype"] == "float32"
    assert "float16" not in result.checks["compute_dtypes"]
    # the same package offered as an answer to other requests is refused
    with torch.no_grad():
        want = model(example).numpy()
    with pytest.raises(ExportError, match="compute_precision"):
        coreml._verify(result.checks, example, want, Precision.FP16)
    with pytest.raises(ExportError, match="inputs"):
        coreml._verify(result.checks, torch.randn(1, 3, 64, 64), want, Precision.FP32)


def test_fallback_to_jit_trace_records_why(tmp_path: Path) -> None:
    example = torch.ones(1, 3, 16, 16)
    result = _export(DataDependentBranch().eval(), example, Precision.FP32, tmp_path)
    assert result.export_path == "jit.trace"
    [reason] = result.checks["fallback_reasons"]
    assert reason.startswith("torch.export: ") and "data-dependent" in reason
    assert result.checks["op_histogram"].get("mul") == 1  # the branch taken for this input


def test_unconvertible_op_raises_export_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as caught:
        _export(LgammaHead().eval(), torch.randn(1, 3, 16, 16), Precision.FP16, tmp_path)
    assert caught.value.exporter == "coreml" and caught.value.op == "lgamma"
    message = str(caught.value)
    assert "'lgamma'" in message and "torch.export:" in message and "jit.trace:" in message
    assert "Traceback" not in message and "\n" not in message


def test_alias_no_op_is_stripped_and_the_graph_converts(tmp_path: Path) -> None:
    from exporters.coreml_prep import strip_aliases

    model, example = FullSliceCrop().eval(), torch.randn(1, 3, 16, 16)
    program = torch.export.export(model, (example,)).run_decompositions({})
    assert strip_aliases(program) == 1
    assert torch.equal(program.module()(example), model(example))
    result = _export(model, example, Precision.FP32, tmp_path)
    assert result.export_path == "torch.export" and result.checks["fallback_reasons"] == []
    _assert_package(result, model, example, Precision.FP32)


def test_unfold_and_bicubic_resize_are_lowered_and_convert(tmp_path: Path) -> None:
    from exporters.coreml_prep import coreml_ready, unfold_by_gather

    x = torch.randn(2, 3, 9, 8)
    for args in [(2, 2, 2), (3, 3, 2), (-1, 4, 1), (1, 3, 3)]:
        assert torch.equal(unfold_by_gather(x, *args), x.unfold(*args))
    model, example = UnfoldAndBicubic().eval(), torch.randn(1, 3, 8, 8)
    program = coreml_ready(model, example)
    targets = {str(node.target) for node in program.graph.nodes}
    assert not {"aten.unfold.default", "aten.upsample_bicubic2d.vec"} & targets
    assert torch.allclose(program.module()(example), model(example), atol=1e-5)
    result = _export(model, example, Precision.FP32, tmp_path)
    assert result.export_path == "torch.export" and result.checks["fallback_reasons"] == []
    _assert_package(result, model, example, Precision.FP32)


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("ERROR - converting 'int' op (located at: 'stages/2/1/318'):", "int"),
        ("PyTorch convert function for op 'grid_sampler_3d' not implemented.", "grid_sampler_3d"),
        ("Unsupported fx node lgamma, kind lgamma", "lgamma"),
        ("Could not run 'aten::_fft_r2c' with arguments from the 'CPU' backend", "_fft_r2c"),
        ("only 0-dimensional arrays can be converted to Python scalars", None),
    ],
)
def test_failing_op_is_read_from_converter_messages(text: str, op: str | None) -> None:
    assert coreml.failing_op(text) == op


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction requires macOS")
@pytest.mark.parametrize("precision", [Precision.FP32, Precision.FP16])
def test_parity_with_pytorch_on_macos(precision: Precision, tmp_path: Path) -> None:
    model, example = _deploy("repvit_m0_9")  # activations stay far inside the fp16 range
    result = _export(model, example, precision, tmp_path)
    assert result.parity is not None and result.parity["ok"], result.parity
    assert "note" not in result.parity
    assert result.parity["rel_error"] <= coreml.PARITY_TOLERANCE[precision]


@pytest.mark.full
@pytest.mark.parametrize("name", _all_seed_variants())
def test_every_seed_variant_converts(name: str, tmp_path: Path) -> None:
    model, example = _deploy(name)
    result = _export(model, example, Precision.FP16, tmp_path)
    _assert_package(result, model, example, Precision.FP16)
