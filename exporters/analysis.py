"""Cost figures of the deploy form: what is measured is what the device runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelCost:
    params: int
    macs: int  # multiply-accumulates of one forward pass at the spec's input shape
    module_histogram: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """MACs from torch's own FLOP counter (it counts a multiply-add as 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(example)
    return counter.get_total_flops() // 2


def module_histogram(model: nn.Module) -> dict[str, int]:
    kinds = Counter(
        type(m).__name__
        for m in model.modules()
        if not list(m.children()) and not isinstance(m, nn.Identity)
    )
    return dict(kinds.most_common())


def analyse(model: nn.Module, example: torch.Tensor) -> ModelCost:
    return ModelCost(
        params=sum(p.numel() for p in model.parameters()),
        macs=count_macs(model, example),
        module_histogram=module_histogram(model),
    )
