"""Cost figures of the deploy form: what is measured is what the device runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters without ``requires_grad`` for the duration. Under ``no_grad`` a view of a
    grad-requiring parameter (SigLIP's attention-pool ``latent.expand``) requires grad yet has no
    grad function, and the FLOP counter's module hooks then assert ("Expected gradient function
    to be set"); counting needs no gradients at all."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """MACs from torch's own FLOP counter (it counts a multiply-add as 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with frozen_parameters(model), counter:
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
