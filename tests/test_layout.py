"""Does the package's layout hold? The import graph, drawn from the code itself.

Arrows point down: front ends -> reports -> engine, and lessons -> the authoring API.
Every import counts, a function's deferred one included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "autograder"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The kit modules ``path`` imports (``from . import x`` counts as importing ``pkg.x``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("autograder"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("autograder"):
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(graph):
    """A package's ``__init__`` importing its own submodules is not a circle of roles: a
    submodule importing ``from . import name`` reads a name the package defines first."""
    return {v: {w for w in ws if not (v.startswith(w + ".") )} for v, ws in graph.items()}


def test_the_import_graph_has_no_circle(graph):
    """Is there any import circle between the kit's modules?"""
    assert _cycles(_without_package_inits(graph)) == []


def test_the_cycle_finder_finds_a_circle():
    """Can the circle test fail? A two-module circle is found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_no_engine_front_end_or_report_module_imports_a_lesson(graph):
    """Does anything outside lessons/ import a lesson by name?"""
    offenders = {v: sorted(w for w in ws if w.startswith("autograder.lessons."))
                 for v, ws in graph.items() if not v.startswith("autograder.lessons")}
    assert {v: ws for v, ws in offenders.items() if ws} == {}


def test_lessons_use_only_the_authoring_api(graph):
    """Does lesson 8 reach into engine internals, or only into autograder.authoring?"""
    lesson = [v for v in graph if v.startswith("autograder.lessons.lesson8")]
    assert lesson, "lesson 8 not found"
    outside = {v: sorted(w for w in graph[v] if not w.startswith("autograder.lessons.lesson8")
                         and w not in ("autograder", "autograder.authoring"))
               for v in lesson}
    assert {v: ws for v, ws in outside.items() if ws} == {}


@pytest.mark.parametrize("role,forbidden", [
    ("autograder.engine", ("autograder.frontends", "autograder.reports")),
    ("autograder.reports", ("autograder.frontends",)),
])
def test_arrows_point_down(graph, role, forbidden):
    """Does the engine import a front end or a report, or a report a front end?"""
    up = {v: sorted(w for w in ws if w.startswith(forbidden))
          for v, ws in graph.items() if v.startswith(role)}
    assert {v: ws for v, ws in up.items() if ws} == {}
