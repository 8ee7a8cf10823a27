"""ParC, the position-aware circular convolution of ParC-Net (Zhang et al., ECCV 2022,
arXiv:2203.03952), in two forms that compute the same function:

- ``spatial``: wrap the axis circularly, then a depthwise convolution whose kernel spans the whole
  axis: O(n²) per row, one ordinary Conv op that every runtime has.
- ``fft``: Fast-ParC (Yang et al., arXiv:2210.04020): circular cross-correlation through the real
  FFT, O(n log n). The spectrum product is written with real and imaginary parts (no complex
  conjugate) and every FFT call names ``n`` and ``norm``, so both torch.onnx (ONNX DFT) and
  coremltools (which lowers the FFT to real matrix products) convert it.

Which form is faster depends on the feature size and the device, so the form is a switch of the
module (``set_parc_form``) that latbench measures and picks per layer (``parc_select``).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from exporters.errors import SpecError

ParCForm = Literal["spatial", "fft"]
Orientation = Literal["h", "w"]
FORMS: tuple[str, ...] = get_args(ParCForm)


def check_form(form: str) -> ParCForm:
    if form not in FORMS:
        raise SpecError(
            f"unknown ParC form {form!r}; expected one of {', '.join(FORMS)}", field="parc_form"
        )
    return form  # type: ignore[return-value]


def resize_along(values: torch.Tensor, size: int) -> torch.Tensor:
    """(C, n) -> (C, size) by linear interpolation with aligned corners: the paper's bilinear
    resize of an (n, 1) kernel, so a model built for 224 px runs at any input size."""
    if values.shape[-1] == size:
        return values
    return F.interpolate(values[None], size=size, mode="linear", align_corners=True)[0]


def _along(values: torch.Tensor, axis: int) -> torch.Tensor:
    """(C, n) -> broadcastable over (B, C, H, W) along ``axis`` (2 or 3)."""
    return values[:, :, None] if axis == 2 else values[:, None, :]


def circular_conv_spatial(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, axis: int
) -> torch.Tensor:
    """y[i] = b + Σ_k w[k]·x[(i+k) mod n] along ``axis``, per channel, as one depthwise Conv."""
    n = x.shape[axis]
    wrapped = torch.cat((x, x.narrow(axis, 0, n - 1)), dim=axis)
    kernel = weight[:, None, :, None] if axis == 2 else weight[:, None, None, :]
    return F.conv2d(wrapped, kernel, bias, groups=x.shape[1])


def circular_conv_fft(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, axis: int
) -> torch.Tensor:
    """The same function through the FFT: Y = X · conj(W) (cross-correlation theorem)."""
    n = int(x.shape[axis])
    spec_x = torch.fft.rfft(x, n=n, dim=axis, norm="backward")
    spec_w = torch.fft.rfft(weight, n=n, dim=1, norm="backward")
    wr, wi = _along(spec_w.real, axis), _along(spec_w.imag, axis)
    xr, xi = spec_x.real, spec_x.imag
    spec_y = torch.complex(xr * wr + xi * wi, xi * wr - xr * wi)
    y = torch.fft.irfft(spec_y, n=n, dim=axis, norm="backward")
    return y + bias[:, None, None]


_FORWARDS = {"spatial": circular_conv_spatial, "fft": circular_conv_fft}


class ParCConv(nn.Module):
    """ParC-H (``orientation="h"``) or ParC-W: position embedding added, then a depthwise circular
    convolution with bias whose kernel is as long as the feature map along that axis.

    ``size`` is the feature size the model is built for; at another input size kernel and position
    embedding are interpolated to the actual size (ParC-Net's multi-scale rule).
    """

    def __init__(
        self,
        channels: int,
        size: int,
        orientation: Orientation,
        *,
        use_pe: bool = True,
        form: ParCForm = "spatial",
    ) -> None:
        super().__init__()
        if orientation not in ("h", "w"):
            raise ValueError(f"orientation must be 'h' or 'w', not {orientation!r}")
        if channels < 1 or size < 1:
            raise ValueError(f"channels and size must be positive, got {channels}, {size}")
        self.channels, self.size, self.orientation = channels, size, orientation
        self.form: ParCForm = check_form(form)
        bound = 1.0 / math.sqrt(size)  # nn.Conv2d's default init for a fan-in of ``size``
        self.weight = nn.Parameter(torch.empty(channels, size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels).uniform_(-bound, bound))
        self.pe = (
            nn.Parameter(nn.init.trunc_normal_(torch.empty(channels, size), std=0.02))
            if use_pe
            else None
        )

    @property
    def axis(self) -> int:
        return 2 if self.orientation == "h" else 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[self.axis]
        if self.pe is not None:
            x = x + _along(resize_along(self.pe, n), self.axis)
        return _FORWARDS[self.form](x, resize_along(self.weight, n), self.bias, self.axis)

    @torch.no_grad()
    def absorb_affine(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        """Fold a per-channel ``x -> scale·x + shift`` applied before this layer (an eval-mode
        BatchNorm) into it: weight·scale and pe' = (pe + shift)/scale. Exact at every input
        size, because linear resizing commutes with scaling and maps constants to themselves."""
        if bool((scale == 0).any()):
            raise ValueError("cannot absorb a zero scale: the channel would be lost")
        pe = self.pe if self.pe is not None else torch.zeros_like(self.weight)
        self.pe = nn.Parameter((pe + shift[:, None]) / scale[:, None])
        self.weight.mul_(scale[:, None])

    def extra_repr(self) -> str:
        pe = "" if self.pe is not None else ", use_pe=False"
        return (
            f"{self.channels}, size={self.size}, orientation={self.orientation!r}{pe}, "
            f"form={self.form!r}"
        )


def parc_layers(model: nn.Module) -> dict[str, ParCConv]:
    """Every ParC layer of ``model`` by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ParCConv)}


def set_parc_form(model: nn.Module, form: str | dict[str, str]) -> list[str]:
    """Switch ParC layers to ``form`` (one for all, or per layer name); return the names changed.

    Both forms share the same parameters, so switching is exact and reversible: this is the deploy
    step that turns one form into the other.
    """
    layers = parc_layers(model)
    wanted = {name: form for name in layers} if isinstance(form, str) else dict(form)
    unknown = sorted(set(wanted) - set(layers))
    if unknown:
        raise SpecError(f"no ParC layer named {', '.join(unknown)}", field="parc_form")
    changed = []
    for name, new in wanted.items():
        if layers[name].form != check_form(new):
            layers[name].form = new  # type: ignore[assignment]
            changed.append(name)
    return changed
