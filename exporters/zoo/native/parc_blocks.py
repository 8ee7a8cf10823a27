"""ParC-Net blocks built around ``ParCConv``; every non-ParC layer is a timm building block.

- ``ParCMixer``: the spatial token mixer. Channels are split in two; ``cross=True`` (the ParC-Net
  block) sends one half through ParC-H then ParC-W and the other through ParC-W then ParC-H, so each
  half gets a global receptive field over the whole map; ``cross=False`` (ParC-ConvNeXt) gives one
  half ParC-H and the other ParC-W.
- ``ParCMetaFormerBlock``: ParC-Net's meta-former block: pre-norm, mixer, residual, then the
  channel mixer (1x1 FFN) gated by channel attention (timm ``SEModule``), residual.
- ``ParCStage``: ParC-Net's MobileViT-like "outer frame": local 3x3 representation, ParC blocks,
  projection back and concat-fusion with the input, channel attention.
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
