"""The import graph of src/erts: no circle among the modules, and data/ never imports train/.

Why: a circle makes the import order decide what works (a name imported before its
module finished loading), and an arrow from data/ up into train/ makes the data layer
carry the trainer. The graph is read with ast, so it counts imports inside functions
too (the lazy ones a plain ``import`` would not exercise).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / "erts").rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The erts module ``name`` refers to: itself, else its nearest enclosing module (``a.b.func`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every erts module ``module`` imports, at module level or inside a function."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names]  # a submodule, or a name in `base`
        else:
            continue
        for t in targets:
            if t == "erts" or t.startswith("erts."):
                target = _resolve(t, modules)
                if target and target != module:
                    found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle ``[a, b, ..., a]`` in ``graph``, or None (depth-first search, sorted: deterministic)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_is_read():
    """Guards the checks below against an empty graph (a parser that finds nothing passes everything)."""
    graph = import_graph()
    assert "erts.data.cache" in graph and "erts.errors" in graph["erts.data.cache"]
    assert "erts.train.runio" in graph and "erts.fileio" in graph["erts.train.runio"]


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_data_never_imports_train():
    arrows = sorted(f"{m} -> {t}" for m, ts in import_graph().items() if m.startswith("erts.data")
                    for t in ts if t == "erts.train" or t.startswith("erts.train."))
    assert not arrows, "data/ imports train/: " + "; ".join(arrows)


@pytest.mark.parametrize("bottom", ["erts.errors", "erts.fileio"])
def test_bottom_modules_import_nothing_of_erts(bottom):
    assert import_graph()[bottom] == set()


def test_config_checks_dataset_names_without_the_data_package():
    """The config is below the data loaders (they take its DataConfig): it reads the names from erts.registry."""
    graph = import_graph()
    assert "erts.registry" in graph["erts.config"]
    assert not [t for t in graph["erts.config"] if t == "erts.data" or t.startswith("erts.data.")]
