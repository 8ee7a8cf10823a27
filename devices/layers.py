"""Per-layer breakdown from an onnxruntime profile: time per node, summed by op type, by stage and
by block, with node names mapped back to the PyTorch module paths they came from.

ORT renames nodes it rewrites (``<name>_nchwc``, fused nodes named after their output), so a
profiled name is looked up among both the node names and the output names of the exported graph.
Module paths come from the exporter's metadata (``pkg.torch.onnx.name_scopes`` of the dynamo
exporter) or, for TorchScript-exported graphs, from the ``/a/b.0/Conv`` node naming. Reading the
metadata needs the ``onnx`` package; without it (a bare device host) only op types are reported.
"""

from __future__ import annotations

import ast
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

_SUFFIXES = re.compile(r"(_kernel_time)$")
_ORT_REWRITES = re.compile(r"(_output_0)?(_nchwc|_token_\d+)*$")
UNMAPPED = "(unmapped)"


def module_scopes(model_path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Node name and output names -> (module path scopes, module classes); empty without onnx."""
    try:
        import onnx
    except ImportError:
        return {}
    graph = onnx.load(str(model_path), load_external_data=False).graph
    found: dict[str, tuple[list[str], list[str]]] = {}
    for node in graph.node:
        meta = {prop.key: prop.value for prop in node.metadata_props}
        if "pkg.torch.onnx.name_scopes" in meta:
            # both lists: root module, nested modules..., the op itself; keep the nested modules
            scopes = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])[1:-1]
            classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))[1:-1]
        elif node.name.startswith("/"):
            scopes, classes = _slash_scopes(node.name), []
        else:
            continue
        for key in [node.name, *node.output]:
            found.setdefault(key, (scopes, classes))
    return found


def _slash_scopes(name: str) -> list[str]:
    """'/stages.3/blocks/blocks.1/mixer/Add' -> ['stages.3', 'stages.3.blocks.1', ...]."""
    parts = [p for p in name.split("/")[:-1] if p]
    parts = [
        p
        for i, p in enumerate(parts)
        if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))
    ]
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def stage_and_block(scopes: list[str], classes: list[str]) -> tuple[str, str, str]:
    """Stage: the path up to its first numeric component; block: up to its second (the unit a
    network repeats, e.g. ``stages.2.blocks.1``), with that module's class name when known."""
    if not scopes:
        return UNMAPPED, UNMAPPED, ""
    path = scopes[-1].split(".")
    numeric = [i for i, part in enumerate(path) if part.isdigit()]
    stage_end = numeric[0] + 1 if numeric else 1
    block_end = numeric[1] + 1 if len(numeric) > 1 else stage_end
    block = ".".join(path[:block_end])
    cls = ""
    if block in scopes and len(classes) == len(scopes):
        cls = classes[scopes.index(block)].rsplit(".", 1)[-1]
    return ".".join(path[:stage_end]), block, cls


def _run_windows(events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    return sorted((e["ts"], e["ts"] + e["dur"]) for e in runs)


def breakdown_from_ort_profile(trace: Path, *, skip_runs: int, model_path: Path) -> dict[str, Any]:
    """Aggregate a profile written by ``InferenceSession.end_profiling`` (times in ms per run)."""
    events = json.loads(Path(trace).read_text())
    windows = _run_windows(events)[skip_runs:]
    if not windows:
        raise ValueError("the profile holds no model runs after warm-up")
    start = windows[0][0]
    scopes = module_scopes(model_path)
    by_op: dict[str, float] = defaultdict(float)
    by_stage: dict[str, float] = defaultdict(float)
    by_block: dict[tuple[str, str], float] = defaultdict(float)
    by_node: dict[tuple[str, str], float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or event["ts"] < start:
            continue
        name = _ORT_REWRITES.sub("", _SUFFIXES.sub("", event["name"]))
        op = event.get("args", {}).get("op_name", "?")
        stage, block, cls = stage_and_block(*scopes.get(name, ([], [])))
        ms = event["dur"] / 1e3
        by_op[op] += ms
        by_stage[stage] += ms
        by_block[(block, cls)] += ms
        by_node[(name, op)] += ms
    runs = len(windows)
    total = sum(by_op.values()) / runs
    run_ms = sorted((end - begin) / 1e3 for begin, end in windows)

    def table(values: dict[Any, float], key: Any) -> list[dict[str, Any]]:
        rows = [
            {**key(k), "ms": v / runs, "share": v / runs / total if total else 0.0}
            for k, v in values.items()
        ]
        return sorted(rows, key=lambda row: -row["ms"])

    return {
        "runs": runs,
        "total_ms": total,
        "run_ms_median": float(statistics.median(run_ms)),  # whole runs, profiler on
        "run_ms_mean": float(statistics.fmean(run_ms)),  # what total_ms, a mean, is a part of
        "mapped": bool(scopes),
        "by_op": table(by_op, lambda k: {"op": k}),
        "by_stage": table(by_stage, lambda k: {"stage": k}),
        "by_block": table(by_block, lambda k: {"block": k[0], "module": k[1]}),
        "top_nodes": table(by_node, lambda k: {"node": k[0], "op": k[1]})[:15],
    }
