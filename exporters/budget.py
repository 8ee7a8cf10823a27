"""Work budgets, checked before anything is built: what a spec would cost, estimated without
allocating it, against configurable limits.

Each override is bounded alone, but nothing else bounds the model they add up to (``fastvit_t8``
with 32 layers per stage and 2048-wide embeddings has ~8.6e9 parameters), nor a large zoo model or
a large input: exporting those would take tens of GB in the process that does it. The estimate
builds the model with every parameter and buffer on PyTorch's meta device (shapes, no storage:
each is moved there as its module registers it, so only the largest single tensor is ever
allocated, and never initialised) and runs one forward pass on a meta input, counting MACs with
torch's FLOP counter and the bytes of every tensor the pass produces (what an export trace holds).

An uploaded ONNX model is held to the same budget (``check_onnx``): its declared inputs, the
bytes of every tensor ONNX shape inference can size, and its parameters. Both estimates are
untrusted work: the service runs them in a bounded child (``admit_upload``, ``estimate_spec``)
and keeps the estimate here (``remember``), so the request's own check is a cache hit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from exporters.errors import SpecError
from exporters.spec import ModelSpec
from exporters.zoo.registry import ResolvedSpec, build, resolve

if TYPE_CHECKING:
    from exporters.sources.ready import Ingested


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


def cached(key: str) -> WorkEstimate | None:
    """The estimate of the spec with content hash ``key``, if this process has it."""
    with _CACHE_LOCK:
        return _CACHE.get(key)


def remember(key: str, cost: WorkEstimate) -> None:
    """Keep ``cost`` as the estimate of the spec with content hash ``key`` (one made elsewhere)."""
    with _CACHE_LOCK:
        _CACHE[key] = cost
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def estimate_spec(spec: ModelSpec) -> WorkEstimate:
    """``estimate`` of a spec not yet resolved: the work of a bounded child."""
    return estimate(resolve(spec))


def estimate(resolved: ResolvedSpec) -> WorkEstimate:
    """Parameters, MACs and activation bytes of one forward pass of ``resolved``, allocating
    nothing of the model's size; cached per spec hash."""
    key = resolved.spec.content_hash()
    if (hit := cached(key)) is not None:
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
    remember(key, result)
    return result


def check(resolved: ResolvedSpec, budget: WorkBudget) -> WorkEstimate:
    """The estimate, or a SpecError naming the budget the spec exceeds (a 422 in the API)."""
    cost = estimate(resolved)
    what = f"{resolved.entry.name} at input {list(resolved.input.shape)}"
    _refuse_over(
        cost, budget, what, field="model", remedy="use a smaller model, overrides or input"
    )
    return cost


def _refuse_over(
    cost: WorkEstimate, budget: WorkBudget, subject: str, *, field: str, remedy: str
) -> None:
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
                f"{subject} needs {value:.3g} {what}, over the work budget {name}={limit:.3g} "
                f"(LATBENCH_{name.upper()}); {remedy}",
                field=field,
            )


_ONNX_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def _elements(value_info: Any) -> int | None:
    """Elements of a tensor whose every dimension is known; None otherwise."""
    dims = value_info.type.tensor_type.shape.dim
    if not value_info.type.tensor_type.HasField("shape"):
        return None
    count = 1
    for dim in dims:
        if not dim.HasField("dim_value"):
            return None
        count *= dim.dim_value
    return count


def _bytes(value_info: Any) -> int | None:
    count = _elements(value_info)
    size = _ONNX_BYTES.get(value_info.type.tensor_type.elem_type, 4)
    return None if count is None else count * size


def check_onnx(path: Path, budget: WorkBudget) -> WorkEstimate:
    """An ONNX model's estimate, or a SpecError naming the budget it exceeds: each declared input
    (symbolic dimensions count 1, as a runner feeds them), then the parameters (initializers) and
    the bytes of every tensor whose shape inference sizes (MACs are not estimated)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        elements = 1
        for dim in dims:
            elements *= dim.dim_value if dim.HasField("dim_value") else 1
        size = elements * _ONNX_BYTES.get(graph_input.type.tensor_type.elem_type, 4)
        if size > budget.max_activation_bytes:
            raise SpecError(
                f"declared input {graph_input.name!r} {[d.dim_value or d.dim_param for d in dims]}"
                f" needs {size:.3g} bytes, over the work budget max_activation_bytes="
                f"{budget.max_activation_bytes:.3g} (LATBENCH_MAX_ACTIVATION_BYTES); "
                "export the model at a smaller input",
                field="artifact",
            )
    params = sum(numpy_helper.to_array(t).size for t in model.graph.initializer)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    tensors = [*inferred.input, *inferred.value_info, *inferred.output]
    activations = sum(size for info in tensors if (size := _bytes(info)) is not None)
    cost = WorkEstimate(params, None, activations)
    _refuse_over(cost, budget, f"the uploaded model {path.name}", field="artifact",
                 remedy="upload a smaller model or input")  # fmt: skip
    return cost


def admit_upload(
    store_root: Path, path: Path, *, label: str, max_bytes: int, budget: WorkBudget
) -> Ingested:
    """An uploaded ONNX file checked against ``budget`` and then validated and stored (what
    ``POST /artifacts`` runs in a bounded child)."""
    from exporters.artifacts import ArtifactStore
    from exporters.formats import ExportFormat
    from exporters.sources.ready import ingest, validate_onnx

    validate_onnx(path)  # a readable, checked graph before shape inference looks at it
    check_onnx(path, budget)
    store = ArtifactStore(store_root)
    return ingest(store, path, fmt=ExportFormat.ONNX, label=label, max_bytes=max_bytes)
