"""Find test code that cannot fail: asserts on values that cannot be false, and test functions
with no assertion of their own.

    python tests/assertion_check.py [PATH ...]     # default: the tests/ folder; exit 1 on findings

An assertion of a test is an ``assert`` statement, ``pytest.raises``/``pytest.warns``/
``pytest.fail``, or a call to a function of the same module that makes one (followed through
helpers). Asserts that cannot be false: a truthy constant, a non-empty tuple (``assert (x, "msg")``),
an ``or`` with a truthy constant, the same expression on both sides of ``==``, ``<=``, ``>=`` or
``is``, ``isinstance(x, object)``, ``len(x) >= 0``, an HTTP status bounded by the whole 400-599
range (the error table's catch-all guarantees it), a correlation bounded by [-1, 1], and any of
these as one part of an ``and``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PYTEST_ASSERTS = {"raises", "warns", "fail", "deprecated_call"}
SAME_SIDES = (ast.Eq, ast.LtE, ast.GtE, ast.Is)


def _truthy_constant(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return bool(node.value)
    return isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) and bool(
        node.keys if isinstance(node, ast.Dict) else node.elts
    )


def _constant(node: ast.expr) -> object:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant(node.operand)
        return -inner if isinstance(inner, int | float) else None
    return node.value if isinstance(node, ast.Constant) else None


def cannot_be_false(test: ast.expr) -> str | None:
    """Why ``assert test`` always holds, or None."""
    if _truthy_constant(test):
        return "a truthy constant (a tuple is always true: did the message end up inside it?)"
    if (
        isinstance(test, ast.BoolOp)
        and isinstance(test.op, ast.Or)
        and any(_truthy_constant(value) for value in test.values)
    ):
        return "an `or` with a truthy constant"
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        for value in test.values:  # one vacuous part of an `and` asserts nothing
            why = cannot_be_false(value)
            if why is not None:
                return f"a part of an `and`: {why}"
    if (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id == "isinstance"
        and len(test.args) == 2
        and isinstance(test.args[1], ast.Name)
        and test.args[1].id == "object"
    ):
        return "isinstance(..., object)"
    if isinstance(test, ast.Compare):
        sides = [test.left, *test.comparators]
        for op, left, right in zip(test.ops, sides[:-1], sides[1:], strict=True):
            if isinstance(op, SAME_SIDES) and ast.dump(left) == ast.dump(right):
                return "the same expression on both sides"
            if (
                isinstance(op, ast.GtE)
                and isinstance(left, ast.Call)
                and isinstance(left.func, ast.Name)
                and left.func.id == "len"
                and _constant(right) == 0
            ):
                return "len(...) >= 0"
        bounds = [_constant(side) for side in sides]
        if len(sides) == 3 and bounds[0] in (400, 399) and bounds[-1] in (600, 599):
            return "a status anywhere in 400-599 (the catch-all gives one to every error)"
        if len(sides) == 3 and bounds[0] == -1 and bounds[-1] == 1:
            return "a correlation within [-1, 1] (true by definition)"
    return None


def _asserts_directly(node: ast.AST) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Assert):
            return True
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
            owner = child.func.value
            if (
                isinstance(owner, ast.Name)
                and owner.id == "pytest"
                and child.func.attr in PYTEST_ASSERTS
            ):
                return True
    return False


def _called_names(node: ast.AST) -> set[str]:
    return {
        child.func.id
        for child in ast.walk(node)
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Name)
    }


def _asserting_functions(tree: ast.Module) -> set[str]:
    """Module-level functions that assert, directly or through another such function."""
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    asserting = {name for name, node in functions.items() if _asserts_directly(node)}
    grew = True
    while grew:
        grew = False
        for name, node in functions.items():
            if name not in asserting and _called_names(node) & asserting:
                asserting.add(name)
                grew = True
    return asserting


def _tests(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            yield node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    item.name.startswith("test")
                ):
                    yield item


def findings(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            why = cannot_be_false(node.test)
            if why is not None:
                yield f"{path}:{node.lineno}: assert cannot be false: {why}"
    asserting = _asserting_functions(tree)
    for test in _tests(tree):
        if not (_asserts_directly(test) or _called_names(test) & asserting):
            yield f"{path}:{test.lineno}: {test.name} asserts nothing of its own"


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path(__file__).resolve().parent]
    files = sorted(p for root in roots for p in ([root] if root.is_file() else root.rglob("*.py")))
    found = [line for path in files for line in findings(path)]
    print("\n".join(found) or f"{len(files)} files: every assert can fail, every test asserts")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
