"""ParC operator: the spatial and FFT forms compute the circular convolution they claim, agree
with each other at every size and orientation, interpolate as the paper does, and export."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from exporters.errors import SpecError
from exporters.exporter import get_exporter, relative_error
from exporters.formats import ExportFormat, Precision
from exporters.zoo.native.parc import ParCConv, parc_layers, resize_along, set_parc_form

TOLERANCE = 1e-5  # fp32 FFT round-off measured here stays below ~3e-6


def _layer(channels, size, orientation, *, use_pe=True, seed=0):
    torch.manual_seed(seed)
    layer = ParCConv(channels, size, orientation, use_pe=use_pe).eval()
    with torch.no_grad():  # a pe of std 0.02 would hide a misplaced embedding
        if layer.pe is not None:
            layer.pe.normal_()
    return layer


def _both_forms(layer, x):
    with torch.no_grad():
        set_parc_form(layer, "spatial")
        spatial = layer(x)
        set_parc_form(layer, "fft")
        fft = layer(x)
    return spatial, fft


def _reference(layer, x):
    """The definition, looped in numpy: y[i] = b + Σ_k w[k]·(x+pe)[(i+k) mod n] along the axis."""
    axis = layer.axis
    n = x.shape[axis]
    xs = x.numpy().astype(np.float64)
    if layer.pe is not None:
        pe = resize_along(layer.pe.detach(), n).numpy()
        xs = xs + (pe[:, :, None] if axis == 2 else pe[:, None, :])
    w = resize_along(layer.weight.detach(), n).numpy()
    out = np.zeros_like(xs)
    for k in range(n):
        rolled = np.roll(xs, -k, axis=axis)  # rolled[i] = x[(i+k) mod n]
        out += w[:, k, None, None] * rolled
    return out + layer.bias.detach().numpy()[:, None, None]


@pytest.mark.parametrize("orientation", ["h", "w"])
@pytest.mark.parametrize(
    "size, height, width",
    [
        (7, 7, 7),
        (8, 8, 8),
        (14, 14, 14),
        (15, 15, 15),
        (14, 14, 9),
        (14, 20, 20),
        (14, 9, 11),
        (32, 32, 32),
        (56, 56, 56),
    ],
)
def test_spatial_and_fft_forms_agree(orientation, size, height, width):
    """Odd and even sizes, both orientations, and inputs off the build size (interpolation)."""
    layer = _layer(6, size, orientation)
    x = torch.randn(2, 6, height, width)
    spatial, fft = _both_forms(layer, x)
    assert spatial.shape == fft.shape == x.shape
    assert relative_error(spatial, fft) < TOLERANCE


@pytest.mark.parametrize("orientation", ["h", "w"])
@pytest.mark.parametrize("size, height, width", [(5, 5, 6), (6, 6, 5), (6, 9, 7)])
def test_both_forms_compute_the_circular_convolution_of_the_definition(
    orientation, size, height, width
):
    layer = _layer(3, size, orientation, seed=1)
    x = torch.randn(1, 3, height, width)
    want = _reference(layer, x)
    for got in _both_forms(layer, x):
        assert relative_error(want, got) < TOLERANCE


@pytest.mark.parametrize("orientation, dim", [("h", 2), ("w", 3)])
def test_circular_without_pe_and_position_aware_with_it(orientation, dim):
    """Without the embedding ParC is shift-equivariant along its axis (circular); the embedding
    is what makes it position-aware."""
    x = torch.randn(1, 4, 10, 10)
    plain = _layer(4, 10, orientation, use_pe=False)
    with torch.no_grad():
        assert torch.allclose(plain(torch.roll(x, 3, dim)), torch.roll(plain(x), 3, dim), atol=1e-5)
        aware = _layer(4, 10, orientation)
        assert not torch.allclose(
            aware(torch.roll(x, 3, dim)), torch.roll(aware(x), 3, dim), atol=1e-3
        )


def test_kernel_interpolation_is_the_papers_bilinear_resize():
    values = torch.randn(5, 14)
    paper = F.interpolate(
        values[:, None, :, None], size=(20, 1), mode="bilinear", align_corners=True
    )[:, 0, :, 0]
    assert torch.allclose(resize_along(values, 20), paper, atol=1e-6)
    assert resize_along(values, 14) is values  # the build size is used untouched


@pytest.mark.parametrize("use_pe", [True, False])
@pytest.mark.parametrize("height", [12, 17])  # the build size and an interpolated one
def test_a_preceding_affine_map_folds_into_the_layer_exactly(use_pe, height):
    layer = _layer(5, 12, "h", use_pe=use_pe)
    scale, shift = torch.rand(5) + 0.5, torch.randn(5)
    x = torch.randn(2, 5, height, 9)
    with torch.no_grad():
        want = layer(x * scale[:, None, None] + shift[:, None, None])
        layer.absorb_affine(scale, shift)
        for got in _both_forms(layer, x):
            assert relative_error(want, got) < TOLERANCE
    with pytest.raises(ValueError, match="zero scale"):
        layer.absorb_affine(torch.zeros(5), shift)


def test_set_parc_form_reports_changes_and_is_idempotent():
    model = torch.nn.Sequential(ParCConv(4, 8, "h"), ParCConv(4, 8, "w"))
    assert set_parc_form(model, "fft") == ["0", "1"]
    assert set_parc_form(model, "fft") == []
    assert set_parc_form(model, {"1": "spatial"}) == ["1"]
    assert [layer.form for layer in parc_layers(model).values()] == ["fft", "spatial"]


def test_bad_forms_and_layer_names_are_refused_with_the_field():
    model = torch.nn.Sequential(ParCConv(4, 8, "h"))
    with pytest.raises(SpecError, match="parc_form: unknown ParC form 'dft'"):
        set_parc_form(model, "dft")
    with pytest.raises(SpecError, match="no ParC layer named nope"):
        set_parc_form(model, {"nope": "fft"})
    with pytest.raises(ValueError, match="orientation"):
        ParCConv(4, 8, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["spatial", "fft"])
@pytest.mark.parametrize("orientation", ["h", "w"])
def test_both_forms_export_to_onnx_with_onnxruntime_parity(form, orientation, tmp_path):
    layer = _layer(8, 14, orientation)
    set_parc_form(layer, form)
    x = torch.randn(1, 8, 14, 11)
    result = get_exporter(ExportFormat.ONNX)(layer, x, Precision.FP32, tmp_path / "parc.onnx")
    assert result.parity["ok"] and result.parity["rel_error"] < 1e-4
    ops = result.checks["op_histogram"]
    assert ("DFT" in ops) == (form == "fft") and ("Conv" in ops) == (form == "spatial")


@pytest.mark.coreml
@pytest.mark.parametrize("form", ["spatial", "fft"])
@pytest.mark.parametrize("orientation", ["h", "w"])
def test_both_forms_convert_to_coreml(form, orientation, tmp_path):
    """The FFT form converts because it has no complex conjugate: coremltools lowers the real
    FFT calls to real matrix products (prediction itself needs macOS)."""
    layer = _layer(8, 14, orientation)
    set_parc_form(layer, form)
    x = torch.randn(1, 8, 14, 14)
    result = get_exporter(ExportFormat.COREML)(layer, x, Precision.FP32, tmp_path / "p.mlpackage")
    assert result.path.exists()
    ops = result.checks["op_histogram"]
    assert ("conv" in ops) == (form == "spatial") and ("matmul" in ops) == (form == "fft")
