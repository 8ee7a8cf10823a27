"""ParC-Net models in the zoo: registered with their source, built through the same path as timm
models, equivalent in both ParC forms at the build size and off it, and exported."""

import pytest
import torch

from exporters.errors import SpecError
from exporters.export import export_model
from exporters.exporter import relative_error
from exporters.formats import ExportFormat
from exporters.reparam import deploy_form, randomize_batchnorm
from exporters.spec import parse_spec
from exporters.zoo import build, get_model, list_models, resolve
from exporters.zoo.native.parc import parc_layers, set_parc_form
from exporters.zoo.native.parc_blocks import fold_affine_into_pointwise
from exporters.zoo.native.parc_select import layer_shapes

PARC_MODELS = ["parcnet_s", "parcnet_xs", "parc_convnext_xt"]
# Published parameter counts (hkzhang91/ParC-Net README; service/data/published_reference.csv), millions.
PUBLISHED_PARAMS_M = {"parcnet_s": 5.0, "parc_convnext_xt": 7.4}


def _nontrivial(model, input_shape):
    """Random BatchNorm statistics and unit layer scale: ConvNeXt's 1e-6 layer scale would make
    every ParC block's contribution invisible to a relative-error check."""
    randomize_batchnorm(model, input_shape)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gamma"):
                param.fill_(1.0)
    return model


def test_parc_models_are_registered_with_their_source():
    assert set(PARC_MODELS) <= set(list_models("parc*"))
    for name in PARC_MODELS:
        entry = get_model(name)
        assert entry.family == "parcnet"
        assert "ParC-Net" in entry.source and "hkzhang91/ParC-Net" in entry.source


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_M))
def test_parameter_count_matches_the_published_configuration(name):
    model = get_model(name).builder()
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    assert params_m == pytest.approx(PUBLISHED_PARAMS_M[name], rel=0.03)


def test_form_is_an_override_checked_at_the_edge():
    resolved = resolve(parse_spec({"model": "parcnet_xs", "overrides": {"parc_form": "fft"}}))
    model = build(resolved)
    assert {layer.form for layer in parc_layers(model).values()} == {"fft"}
    with pytest.raises(SpecError) as info:
        resolve(parse_spec({"model": "parcnet_xs", "overrides": {"parc_form": "complex"}}))
    assert info.value.field == "overrides.parc_form"


@pytest.mark.parametrize(
    "name, side",
    [
        ("parcnet_xs", 256),
        ("parcnet_xs", 224),
        ("parc_convnext_xt", 224),
        ("parc_convnext_xt", 160),
    ],
)
def test_whole_model_is_equivalent_in_both_forms(name, side):
    """At the build size and at another one, where kernels and embeddings are interpolated."""
    x = torch.randn(1, 3, side, side)
    model = _nontrivial(get_model(name).builder().eval(), tuple(x.shape))
    with torch.no_grad():
        spatial = model(x)
        assert len(set_parc_form(model, "fft")) == len(parc_layers(model)) > 0
        fft = model(x)
    assert relative_error(spatial, fft) < 1e-5


@pytest.mark.parametrize("form", ["spatial", "fft"])
def test_deploy_form_folds_every_batchnorm_of_parcnet_and_is_proven(form):
    """ParC blocks fold the norms that precede a ParC layer or a 1x1 conv; latbench's generic
    fold takes the rest. At 224 px the absorbed embeddings are interpolated too."""
    model = get_model("parcnet_xs").builder(parc_form=form).eval()
    deploy, report = deploy_form(model, (1, 3, 224, 224))
    assert report.ok and report.train.batchnorms > 0 and report.deploy.batchnorms == 0
    assert {layer.form for layer in parc_layers(deploy).values()} == {form}


@pytest.mark.parametrize("groups, bias", [(1, True), (2, False), (4, True)])
def test_an_affine_map_folds_into_a_following_grouped_pointwise_conv(groups, bias):
    conv = torch.nn.Conv2d(8, 12, 1, groups=groups, bias=bias)
    scale, shift = torch.rand(8) + 0.5, torch.randn(8)
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        want = conv(x * scale[:, None, None] + shift[:, None, None])
        fold_affine_into_pointwise(scale, shift, conv)
        assert relative_error(want, conv(x)) < 1e-6
    with pytest.raises(ValueError, match="only 1x1"):
        fold_affine_into_pointwise(scale, shift, torch.nn.Conv2d(8, 8, 3))


def test_layer_shapes_follow_the_input_size():
    model = get_model("parcnet_xs").builder().eval()
    at_256 = {s.size for s in layer_shapes(model, torch.randn(1, 3, 256, 256)).values()}
    at_224 = {s.size for s in layer_shapes(model, torch.randn(1, 3, 224, 224)).values()}
    assert at_256 == {32, 16, 8} and at_224 == {28, 14, 7}


@pytest.mark.slow
def test_parcnet_in_fft_form_goes_through_the_export_path(session_store):
    """The spatial form is ordinary Conv graphs (and test_parc_cli exports the chosen form)."""
    spec = parse_spec({"model": "parcnet_xs", "overrides": {"parc_form": "fft"}})
    report = export_model(spec, store=session_store, formats=(ExportFormat.ONNX,))
    art = report.artifact(ExportFormat.ONNX)
    assert art.ok, art.error
    assert art.parity["ok"] and report.reparam["ok"] and report.weights == "random"
    assert "DFT" in art.checks["op_histogram"]
