"""The code's shape (issue 7): layers that run one way, small functions, one config table."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"

LAYERS: dict[str, int] = {
    "common": 0,
    "stores": 1,
    "gating": 2,
    "enrichment": 2,
    "analytics": 2,
    "recording": 2,
    "observability": 2,
    "rollout_control": 3,
    "usecases": 4,
    "main": 5,
}
"""entrypoints → use cases → {policy, enrichment, analytics, recording} → stores → common.
A package may import its own layer's packages only where listed in SIBLINGS."""

SIBLINGS: set[tuple[str, str]] = set()
"""(importer, imported) pairs allowed within one layer. Empty: rank-2 packages are independent."""


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(FUNCTIONS.rglob("*.py")):
        rel = path.relative_to(FUNCTIONS)
        if rel.parts[0] == "venv":
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(name: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every project import in ``path``."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    nested.add(id(inner))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in nested
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno, id(node) in nested


def _top(module: str) -> str:
    return module.split(".")[0]


def _graph() -> dict[str, set[str]]:
    names = {n for n, _ in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in _modules():
        deps = set()
        for target, _line, _nested in _imports(name, path):
            while target and target not in names:
                target = target.rpartition(".")[0]
            if target and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def test_every_package_has_a_layer() -> None:
    tops = {_top(n) for n, _ in _modules()}
    assert tops <= set(LAYERS), f"packages without a layer: {tops - set(LAYERS)}"


def test_no_import_goes_up_or_sideways() -> None:
    bad = []
    for name, path in _modules():
        me = _top(name)
        for target, line, _nested in _imports(name, path):
            other = _top(target)
            if other not in LAYERS or other == me:
                continue
            upward = LAYERS[other] > LAYERS[me]
            sideways = LAYERS[other] == LAYERS[me] and (me, other) not in SIBLINGS
            if upward or sideways:
                bad.append(f"{path.relative_to(FUNCTIONS)}:{line} {me} -> {other}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


LAZY_ALLOWED = {"main", "stores.firestore", "enrichment.engine"}
"""Modules that import inside a function to keep cold start and deploy discovery light (the
engine's sources, the Firestore client, httpx in the emulator-only ``delete_all``). Each such
import goes down the layers (checked above), so none of them hides a cycle."""


def test_lazy_imports_are_only_where_they_keep_start_up_light() -> None:
    lazy = []
    for name, path in _modules():
        for target, line, nested in _imports(name, path):
            if nested and _top(target) in LAYERS and name not in LAZY_ALLOWED:
                lazy.append(f"{path.relative_to(FUNCTIONS)}:{line} imports {target} lazily")
    assert not lazy, "\n".join(lazy)


MAX_FUNCTION_LINES = 60
MAX_USE_CASE_LINES = 200


def test_functions_and_use_case_modules_stay_small() -> None:
    long = []
    for name, path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(FUNCTIONS)}:{node.lineno} {node.name} {size}")
        if name.startswith("usecases.") and name not in ("usecases.requests",):
            lines = len(path.read_text().splitlines())
            if lines > MAX_USE_CASE_LINES:
                long.append(f"{path.relative_to(FUNCTIONS)} {lines} lines")
    assert not long, "too long:\n" + "\n".join(long)
