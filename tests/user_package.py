"""A user's own model code, as a repository would hold it: a package with a factory, a block of
its own with a deploy switch (``reparameterize``), and a knob that adds blocks."""

from __future__ import annotations

from pathlib import Path

NETS = '''
import torch
from torch import nn


class RepBlock(nn.Module):
    """3x3 conv+BN with a 1x1 conv+BN branch; reparameterize() merges them into one conv."""

    def __init__(self, width):
        super().__init__()
        self.conv3 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(width))
        self.conv1 = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width))
        self.fused = None

    def forward(self, x):
        if self.fused is not None:
            return ACTIVATION(self.fused(x))
        return ACTIVATION(self.conv3(x) + self.conv1(x))

    @staticmethod
    def _fold(branch):
        conv, bn = branch
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return conv.weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale

    @torch.no_grad()
    def reparameterize(self):
        w3, b3 = self._fold(self.conv3)
        w1, b1 = self._fold(self.conv1)
        fused = nn.Conv2d(w3.shape[1], w3.shape[0], 3, padding=1)
        fused.weight.copy_(w3 + nn.functional.pad(w1, [1, 1, 1, 1]))
        fused.bias.copy_(b3 + b1)
        self.fused = fused
        del self.conv3, self.conv1


class Net(nn.Module):
    def __init__(self, width=8, blocks=BLOCKS):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width))
        self.body = nn.Sequential(*[RepBlock(width) for _ in range(blocks)])
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


def build(**kwargs):
    return Net(**kwargs)
'''


def write_user_package(
    root: Path, *, blocks: int = 2, name: str = "usernets", activation: str = "torch.relu"
) -> str:
    """Write package ``name`` under ``root``; returns its ``python:`` reference."""
    package = root / name
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(
        NETS.replace("BLOCKS", str(blocks)).replace("ACTIVATION", activation)
    )
    return f"python:{name}.nets:build"


def write_sides(root: Path, **blocks: int) -> None:
    """A spec file per side (``base=1, cand=6``: base.json, cand.json) building the package's
    factory with that many blocks at 32x32, for the gate and compare."""
    import json

    ref = write_user_package(root)
    for name, count in blocks.items():
        doc = {"model": ref, "kwargs": {"blocks": count, "width": 16},
               "input": {"height": 32, "width": 32}}  # fmt: skip
        (root / f"{name}.json").write_text(json.dumps(doc))
