"""The packages' import graph, read from the sources (AST, nothing imported): no cycle inside
``exporters/``, ``devices/`` or ``service/``; no import from a lower layer up (devices never
import the service, nor torch at import time; exporters neither the service nor devices; the
gate and the remote client never the CLI above them); and the server (``service.app`` and all it
imports) never reaches the client side (the CLI, the gate, the remote client).

Every import counts, also one inside a function: a lazy import still ties the modules together,
it only hides the tie until the line runs."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("exporters", "devices", "service")
CLIENT = ("service.cli", "service.gate", "service.remote")
SERVER_ENTRY = ("service.app",)


@cache
def modules() -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its ``__init__``)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imported(module: str, path: Path) -> set[str]:
    """The package modules ``module`` imports: ``from a import b`` is ``a.b`` where that is a
    module, ``a`` otherwise; relative imports resolved; outside names dropped."""
    known = modules()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in known else base)
    resolved = set()
    for target in targets:
        while target and target not in known:  # a name inside a module: the module
            target = target.rpartition(".")[0]
        if target and target != module:
            resolved.add(target)
    return resolved


@cache
def graph() -> dict[str, frozenset[str]]:
    return {name: frozenset(_imported(name, path)) for name, path in modules().items()}


def _cycles() -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def reachable(start: tuple[str, ...]) -> dict[str, str]:
    """Every module reachable from ``start``, each with the module that first imported it."""
    edges = graph()
    seen = {name: "" for name in start}
    todo = list(start)
    while todo:
        node = todo.pop()
        for nxt in sorted(edges[node]):
            if nxt not in seen:
                seen[nxt] = node
                todo.append(nxt)
    return seen


def test_the_graph_is_read() -> None:
    """Guards the checks below against reading nothing: known edges are present."""
    edges = graph()
    assert "service.jobs.steps" in edges["service.dispatch.local"]
    assert "exporters.errors" in edges["devices.jobs.http_port"]
    assert "service.db.tables" in edges["service.db.jobs"]


def test_no_import_cycle() -> None:
    assert _cycles() == []


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("devices", ("service",)),
        ("exporters", ("service", "devices")),
        ("service.gate", ("service.cli",)),
        ("service.remote", ("service.cli", "service.gate")),
    ],
)
def test_no_import_from_a_lower_layer_up(lower: str, upper: tuple[str, ...]) -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph().items()
        if _within(module, (lower,))
        for target in targets
        if _within(target, upper)
    )
    assert wrong == []


def test_devices_import_no_torch_at_import_time() -> None:
    """A device host has no torch; a runner that uses it (``torch-cpu``) imports it when run."""
    eager = []
    for name, path in modules().items():
        if not _within(name, ("devices",)):
            continue
        todo = list(ast.parse(path.read_text()).body)
        while todo:
            node = todo.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                eager += [f"{name}: {n}" for n in names if n.split(".")[0] == "torch"]
            todo.extend(ast.iter_child_nodes(node))
    assert eager == []


def test_the_server_never_reaches_the_client() -> None:
    seen = reachable(SERVER_ENTRY)
    assert len(seen) > 50  # the server's graph is read, not empty
    client = sorted(f"{seen[m]} -> {m}" for m in seen if _within(m, CLIENT))
    assert client == []
