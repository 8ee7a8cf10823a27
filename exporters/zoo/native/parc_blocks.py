"""ParC-Net blocks built around ``ParCConv``; every non-ParC layer is a timm building block.

- ``ParCMixer``: the spatial token mixer. Channels are split in two; ``cross=True`` (the ParC-Net
  block) sends one half through ParC-H then ParC-W and the other through ParC-W then ParC-H, so each
  half gets a global receptive field over the whole map; ``cross=False`` (ParC-ConvNeXt) gives one
  half ParC-H and the other ParC-W.
- ``ParCMetaFormerBlock``: ParC-Net's meta-former block: pre-norm, mixer, residual, then the
  channel mixer (1x1 FFN) gated by channel attention (timm ``SEModule``), residual.
- ``ParCStage``: ParC-Net's MobileViT-like "outer frame": local 3x3 representation, ParC blocks,
  projection back and concat-fusion with the input, channel attention.

Deploy form (``reparameterize()``, called by timm's ``reparameterize_model``): the BatchNorms that
sit *before* a ParC layer or a 1x1 conv are folded into it (latbench's generic fold only handles a
BatchNorm *after* a conv), so the deploy graph has no BatchNorm left in the ParC stages.
"""

from __future__ import annotations

import math

import torch
from timm.layers import ConvNormAct, SEModule
from torch import nn

from exporters.zoo.native.parc import ParCConv


class ParCMixer(nn.Module):
    def __init__(self, dim: int, size: int, *, cross: bool, use_pe: bool = True) -> None:
        super().__init__()
        self.split = dim // 2
        first, second = self.split, dim - self.split
        self.first = nn.Sequential(ParCConv(first, size, "h", use_pe=use_pe))
        self.second = nn.Sequential(ParCConv(second, size, "w", use_pe=use_pe))
        if cross:
            self.first.append(ParCConv(first, size, "w", use_pe=use_pe))
            self.second.append(ParCConv(second, size, "h", use_pe=use_pe))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[:, : self.split], x[:, self.split :]
        return torch.cat((self.first(a), self.second(b)), dim=1)


class ParCMetaFormerBlock(nn.Module):
    """One BatchNorm over all channels equals the paper's two per-half pre-norms (BN is
    per-channel), so the split happens inside the mixer."""

    def __init__(self, dim: int, ffn_dim: int, size: int, *, use_pe: bool = True) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.mixer = ParCMixer(dim, size, cross=True, use_pe=use_pe)
        self.ffn = nn.Sequential(
            nn.BatchNorm2d(dim),
            nn.Conv2d(dim, ffn_dim, 1),
            nn.Hardswish(),
            nn.Conv2d(ffn_dim, dim, 1),
        )
        self.attn = channel_attention(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm(x))
        return x + self.attn(self.ffn(x))

    def reparameterize(self) -> None:
        """Pre-norm into the first ParC layer of each half, FFN norm into its first 1x1 conv."""
        if isinstance(self.norm, nn.BatchNorm2d):
            scale, shift = bn_affine(self.norm)
            split = self.mixer.split
            self.mixer.first[0].absorb_affine(scale[:split], shift[:split])
            self.mixer.second[0].absorb_affine(scale[split:], shift[split:])
            self.norm = nn.Identity()
        if isinstance(self.ffn[0], nn.BatchNorm2d):
            fold_affine_into_pointwise(*bn_affine(self.ffn[0]), self.ffn[1])
            self.ffn[0] = nn.Identity()


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode BatchNorm as ``x -> scale·x + shift`` per channel."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale + (bn.bias if bn.affine else 0.0)
    return scale.detach(), shift.detach()


@torch.no_grad()
def fold_affine_into_pointwise(scale: torch.Tensor, shift: torch.Tensor, conv: nn.Conv2d) -> None:
    """``conv(scale·x + shift)`` as one 1x1 conv, in place (grouped convs included). Only 1x1:
    a kxk conv's zero padding would not see the shift at the borders."""
    if conv.kernel_size != (1, 1):
        raise ValueError(f"only 1x1 convs absorb a preceding affine map, not {conv.kernel_size}")
    out_channels, per_group = conv.weight.shape[:2]
    group = torch.arange(out_channels) // (out_channels // conv.groups)
    source = (
        group[:, None] * per_group + torch.arange(per_group)[None, :]
    )  # input channel per weight
    weight = conv.weight[:, :, 0, 0]
    bias = conv.bias if conv.bias is not None else torch.zeros(out_channels)
    conv.bias = nn.Parameter(bias + (weight * shift[source]).sum(1))
    conv.weight.mul_(scale[source][:, :, None, None])


def channel_attention(channels: int) -> nn.Module:
    """ParC-Net's CA layer: squeeze-excite with BatchNorm, hard-swish and a hard-sigmoid gate."""
    return SEModule(
        channels,
        rd_ratio=1 / 16,
        rd_divisor=1,
        bias=False,
        act_layer=nn.Hardswish,
        norm_layer=nn.BatchNorm2d,
        gate_layer="hard_sigmoid",
    )


class ParCStage(nn.Module):
    def __init__(
        self, channels: int, dim: int, ffn_dim: int, depth: int, size: int, act: type[nn.Module]
    ) -> None:
        super().__init__()
        self.local = nn.Sequential(
            ConvNormAct(channels, dim, 3, groups=math.gcd(channels, dim), act_layer=act),
            nn.Conv2d(dim, dim, 1, bias=False),
        )
        # As in ParC-Net, only the first block of a stage carries position embeddings.
        self.blocks = nn.Sequential(
            *(ParCMetaFormerBlock(dim, ffn_dim, size, use_pe=i == 0) for i in range(depth)),
            nn.BatchNorm2d(dim),
        )
        self.proj = ConvNormAct(dim, channels, 1, groups=min(dim, channels), act_layer=act)
        self.fusion = ConvNormAct(2 * channels, channels, 3, act_layer=act)
        self.attn = channel_attention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(self.blocks(self.local(x)))
        return self.attn(self.fusion(torch.cat((y, x), dim=1)))

    def reparameterize(self) -> None:
        """The stage's closing BatchNorm into the (grouped 1x1) projection conv."""
        if isinstance(self.blocks[-1], nn.BatchNorm2d):
            fold_affine_into_pointwise(*bn_affine(self.blocks[-1]), self.proj.conv)
            self.blocks[-1] = nn.Identity()
