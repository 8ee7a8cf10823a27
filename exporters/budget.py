"""Work budgets, checked before anything is built: what a spec would cost, estimated without
allocating it, against configurable limits.

Each override is bounded alone, but nothing else bounds the model they add up to (``fastvit_t8``
with 32 layers per stage and 2048-wide embeddings has ~8.6e9 parameters), nor a large zoo model or
a large input: exporting those would take tens of GB in the process that does it. The estimate
builds the model with every parameter and buffer on PyTorch's meta device (shapes, no storage:
each is moved there as its module registers it, so only the largest single tensor is ever
allocated, and never initialised) and runs one forward pass on a meta input, counting MACs with
torch's FLOP counter and the bytes of every tensor the pass produces (what an export trace holds).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from threading import Lock

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from exporters.errors import SpecError
from exporters.zoo.registry import ResolvedSpec, build


@dataclass(frozen=True)
class WorkBudget:
    """Limits of one spec's work; ``LATBENCH_MAX_*`` settings in the service."""

    max_params: int = 1_000_000_000
    max_macs: int = 1_000_000_000_000
    max_activation_bytes: int = 16 * 2**30


@dataclass(frozen=True)
class WorkEstimate:
    params: int
    macs: int | None  # None: the forward pass could not run on meta tensors
    activation_bytes: int | None


@contextmanager
def _on_meta() -> Iterator[None]:
    """Every parameter and buffer a module registers goes to the meta device at once."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer(module: nn.Module, name: str, tensor: torch.Tensor | None, **kwargs) -> None:
        register_buffer(module, name, None if tensor is None else tensor.to("meta"), **kwargs)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = (
            register_parameter,
            register_buffer,
        )


class _ActivationBytes(TorchDispatchMode):
    """Bytes of every tensor an operator returns during the pass."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.total += leaf.numel() * leaf.element_size()
        return out


_BUILD_LOCK = Lock()  # the meta patch is process-wide: one build at a time
_CACHE_LOCK = Lock()
_CACHE: OrderedDict[str, WorkEstimate] = OrderedDict()
_CACHE_SIZE = 512


def estimate(resolved: ResolvedSpec) -> WorkEstimate:
    """Parameters, MACs and activation bytes of one forward pass of ``resolved``, allocating
    nothing of the model's size; cached per spec hash."""
    key = resolved.spec.content_hash()
    with _CACHE_LOCK:
        if (hit := _CACHE.get(key)) is not None:
            return hit
    with _BUILD_LOCK, _on_meta():
        model = build(resolved)
    params = sum(p.numel() for p in model.parameters())
    example = torch.empty(resolved.input.shape, device="meta")
    counter, activations = FlopCounterMode(display=False), _ActivationBytes()
    try:
        with torch.no_grad(), counter, activations:
            model(example)
        result = WorkEstimate(params, counter.get_total_flops() // 2, activations.total)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        result = WorkEstimate(params, None, None)  # data-dependent forward: parameters only
    with _CACHE_LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def check(resolved: ResolvedSpec, budget: WorkBudget) -> WorkEstimate:
    """The estimate, or a SpecError naming the budget the spec exceeds (a 422 in the API)."""
    cost = estimate(resolved)
    over = [
        ("max_params", "parameters", cost.params, budget.max_params),
        ("max_macs", "MACs per forward pass", cost.macs, budget.max_macs),
        (
            "max_activation_bytes",
            "bytes of activations",
            cost.activation_bytes,
            budget.max_activation_bytes,
        ),
    ]
    for name, what, value, limit in over:
        if value is not None and value > limit:
            raise SpecError(
                f"{resolved.entry.name} at input {list(resolved.input.shape)} needs {value:.3g} "
                f"{what}, over the work budget {name}={limit:.3g} "
                f"(LATBENCH_{name.upper()}); use a smaller model, overrides or input",
                field="model",
            )
    return cost
