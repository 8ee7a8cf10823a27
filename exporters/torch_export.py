"""``torch.export`` program (.pt2): the artifact of the PyTorch runner, the runtime behind timm's
benchmark and FasterNet's published tables, so measured numbers can sit beside published ones."""

from __future__ import annotations

from pathlib import Path

import torch

from exporters.errors import ExportError
from exporters.exporter import ExportResult, register_exporter, relative_error
from exporters.formats import ExportFormat, Precision

PARITY_TOLERANCE = 1e-5


@register_exporter(ExportFormat.TORCH_EXPORT)
def export_torch_program(
    model: torch.nn.Module, example: torch.Tensor, precision: Precision, dest: Path
) -> ExportResult:
    try:
        program = torch.export.export(model, (example,))
        torch.export.save(program, str(dest))
    except Exception as exc:
        raise ExportError("pt2", str(exc).splitlines()[0][:500]) from exc
    with torch.no_grad():
        want = model(example)
        got = torch.export.load(str(dest)).module()(example)
    rel = relative_error(want.numpy(), got.numpy())
    return ExportResult(
        path=dest,
        export_path="torch.export",
        parity={
            "runtime": f"torch {torch.__version__}",
            "max_abs_error": float((want - got).abs().max()),
            "rel_error": rel,
            "tolerance": PARITY_TOLERANCE,
            "ok": rel <= PARITY_TOLERANCE,
        },
        checks={"graph_nodes": len(program.graph.nodes)},
    )
