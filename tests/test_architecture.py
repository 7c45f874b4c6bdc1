"""The package's import structure: no module imports (even lazily or for typing) one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import hybridpg

PACKAGE = Path(hybridpg.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("hybridpg", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the hybridpg modules it imports anywhere in its body (TYPE_CHECKING and lazy imports too)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                # `from pkg import mod` imports pkg.mod when that is a module, else a name of pkg
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_sees_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    graph = import_graph()
    assert "hybridpg.training.run" in graph and "hybridpg.algorithms.base" in graph["hybridpg.algorithms.onpolicy"]
    assert cycles(graph) == []


def test_training_never_imports_algorithms() -> None:
    # the run machinery sees an agent only through training.learner.Learner
    graph = import_graph()
    leaks = {m: sorted(t for t in ts if t.startswith("hybridpg.algorithms"))
             for m, ts in graph.items() if m.startswith(("hybridpg.training", "hybridpg.data", "hybridpg.envs"))}
    assert {m: t for m, t in leaks.items() if t} == {}


def test_algorithms_inherit_at_most_two_levels() -> None:
    # each algorithm class derives from Agent directly; a shared part is mixed in beside it, one level deep
    from hybridpg.algorithms import ALGORITHMS, Agent

    for cls in ALGORITHMS.values():
        assert Agent in cls.__bases__, cls
        assert all(base.__bases__ == (object,) for base in cls.__bases__), (cls, cls.__mro__)
