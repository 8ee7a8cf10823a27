"""Rewrites of an exported ATen program that coremltools 9.0 cannot convert as it stands.

Each rewrite keeps the computation and changes only its spelling into ops the converter has:

* ``aten.alias`` (timm's efficientvit_m*, cpubone_*): a no-op view, removed from the graph
  ("Unsupported fx node alias"; coremltools registers no converter for it).
* ``aten.upsample_bicubic2d``: torch's own decomposition (index, arithmetic, clamp), all of
  which convert; coremltools has no bicubic resize.
* ``aten.unfold`` (``Tensor.unfold``, sliding windows): torch's decomposition is ``as_strided``,
  which coremltools rejects too, so windows are gathered with ``index_select`` instead.
"""

from __future__ import annotations

from typing import Any

import torch


def unfold_by_gather(x: torch.Tensor, dimension: int, size: int, step: int) -> torch.Tensor:
    """``x.unfold(dimension, size, step)`` with a static gather: window ``i`` takes indices
    ``i*step .. i*step+size-1`` along ``dimension``, and the window axis is appended last."""
    dim = dimension % max(x.dim(), 1)
    count = (x.shape[dim] - size) // step + 1
    index = (torch.arange(count) * step).unsqueeze(1) + torch.arange(size)
    windows = torch.index_select(x, dim, index.reshape(-1).to(x.device))
    shape = (*x.shape[:dim], count, size, *x.shape[dim + 1 :])
    return windows.reshape(shape).movedim(dim + 1, -1)


def decompositions() -> dict[Any, Any]:
    """The decomposition table handed to ``run_decompositions`` before conversion."""
    from torch._decomp import get_decompositions

    table = get_decompositions([torch.ops.aten.upsample_bicubic2d])
    table[torch.ops.aten.unfold.default] = unfold_by_gather
    return table


def strip_aliases(program: torch.export.ExportedProgram) -> int:
    """Remove ``aten.alias`` nodes (each returns its input as a view); returns how many. An alias
    that is itself a graph output is kept: the program's signature names it."""
    graph = program.graph_module.graph
    output = next(node for node in graph.nodes if node.op == "output")
    removed = 0
    for node in list(graph.nodes):
        if node.target is torch.ops.aten.alias.default and output not in node.users:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
            removed += 1
    if removed:
        program.graph_module.recompile()
    return removed


def coreml_ready(model: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` capture lowered to the ATen ops coremltools converts."""
    program = torch.export.export(model, (example,)).run_decompositions(decompositions())
    strip_aliases(program)
    return program
