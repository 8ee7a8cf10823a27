"""ParC-Net models, registered in the zoo (random weights, like every zoo model).

- ``parcnet_s`` / ``parcnet_xs``: ParC-Net-S / -XS (formerly EdgeFormer), a MobileViT-like net whose
  transformer stages are ParC meta-former stages; 256x256 input. Channel widths, depths and
  meta-kernel sizes from the authors' ``cvnets/models/classification/config/edgeformer.py``
  (scale_s / scale_xs, mode outer_frame_v1, kernel gcc_ca, concat fusion, bilinear instance
  kernel, position embeddings on).
- ``parc_convnext_xt``: ConvNeXt-XT (depths 3-3-9-3, widths 48-96-192-384) with the depthwise 7x7
  of the last third of stage 3 and the last block of stage 4 replaced by ParC (split H/W), as in
  the authors' ``ParC_ConvNets/ParC_convnext.py``; 224x224 input. The ConvNeXt body is timm's.
"""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Interval, Len
from pydantic import StringConstraints
from timm.layers import ClassifierHead, ConvNormAct
from timm.models._efficientnet_blocks import InvertedResidual
from timm.models.convnext import ConvNeXt
from torch import nn

from exporters.errors import SpecError
from exporters.zoo.native.parc import ParCForm, set_parc_form
from exporters.zoo.native.parc_blocks import ParCMixer, ParCStage
from exporters.zoo.registry import register_model

PAPER = "Zhang et al., ParC-Net, ECCV 2022 (arXiv:2203.03952)"
LayerName = Annotated[str, StringConstraints(max_length=128, pattern=r"^[A-Za-z0-9_.]+$")]
# One form for every ParC layer, or one per layer (what form selection records, see parc_select).
FormKnob = ParCForm | Annotated[dict[LayerName, ParCForm], Len(1, 512)]
KNOBS: dict[str, Any] = {
    "num_classes": Annotated[int, Interval(ge=1, le=100_000)],
    "parc_form": FormKnob,
}


def _with_forms(model: nn.Module, parc_form: str | dict[str, str]) -> nn.Module:
    try:
        set_parc_form(model, parc_form)
    except SpecError as exc:
        raise SpecError(str(exc).removeprefix("parc_form: "), field="overrides.parc_form") from exc
    return model


# scale -> ParC stages as (out channels, ParC dim, FFN dim, blocks, meta-kernel size at 256 px)
PARCNET_STAGES = {
    "s": ((96, 192, 384, 2, 32), (128, 256, 512, 4, 16), (160, 320, 640, 3, 8)),
    "xs": ((96, 96, 192, 2, 32), (128, 128, 256, 3, 16), (160, 160, 320, 2, 8)),
}


class ParCNet(nn.Module):
    """Stem, two MobileNetV2 layers, three (MV2 downsample + ParC stage) layers, 1x1 expansion."""

    def __init__(self, scale: str, num_classes: int = 1000, drop_rate: float = 0.2) -> None:
        super().__init__()
        act = nn.SiLU
        layers: list[nn.Module] = [
            ConvNormAct(3, 16, 3, stride=2, act_layer=act),
            InvertedResidual(16, 32, exp_ratio=4, act_layer=act),
            InvertedResidual(32, 64, stride=2, exp_ratio=4, act_layer=act),
            InvertedResidual(64, 64, exp_ratio=4, act_layer=act),
            InvertedResidual(64, 64, exp_ratio=4, act_layer=act),
        ]
        channels = 64
        for out, dim, ffn, depth, size in PARCNET_STAGES[scale]:
            layers.append(InvertedResidual(channels, out, stride=2, exp_ratio=4, act_layer=act))
            layers.append(ParCStage(out, dim, ffn, depth, size, act))
            channels = out
        self.features = nn.Sequential(*layers)
        self.num_features = min(4 * channels, 960)
        self.conv_head = ConvNormAct(channels, self.num_features, 1, act_layer=act)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)

    def forward(self, x):
        return self.head(self.conv_head(self.features(x)))


def _parcnet(scale: str, num_classes: int, parc_form: FormKnob) -> nn.Module:
    return _with_forms(ParCNet(scale, num_classes=num_classes), parc_form)


@register_model(
    "parcnet_s",
    family="parcnet",
    input_size=(3, 256, 256),
    knobs=KNOBS,
    source=f"{PAPER}; config scale_s of hkzhang91/ParC-Net cvnets/.../config/edgeformer.py",
)
def parcnet_s(num_classes: int = 1000, parc_form: FormKnob = "spatial") -> nn.Module:
    return _parcnet("s", num_classes, parc_form)


@register_model(
    "parcnet_xs",
    family="parcnet",
    input_size=(3, 256, 256),
    knobs=KNOBS,
    source=f"{PAPER}; config scale_xs of hkzhang91/ParC-Net cvnets/.../config/edgeformer.py",
)
def parcnet_xs(num_classes: int = 1000, parc_form: FormKnob = "spatial") -> nn.Module:
    return _parcnet("xs", num_classes, parc_form)


# ConvNeXt-XT: (first ParC block index per stage, feature size at 224 px) for the 4 stages
CONVNEXT_XT_PARC = ((3, 56), (3, 28), (6, 14), (2, 7))


@register_model(
    "parc_convnext_xt",
    family="parcnet",
    input_size=(3, 224, 224),
    knobs=KNOBS,
    source=f"{PAPER}; parc_convnext_xt of hkzhang91/ParC-Net ParC_ConvNets/ParC_convnext.py; "
    f"ConvNeXt body from timm",
)
def parc_convnext_xt(num_classes: int = 1000, parc_form: FormKnob = "spatial") -> nn.Module:
    model = ConvNeXt(depths=(3, 3, 9, 3), dims=(48, 96, 192, 384), num_classes=num_classes)
    for stage, (first, size) in zip(model.stages, CONVNEXT_XT_PARC, strict=True):
        for block in list(stage.blocks)[first:]:
            block.conv_dw = ParCMixer(block.conv_dw.in_channels, size, cross=False)
    return _with_forms(model, parc_form)
