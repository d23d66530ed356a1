"""Checks that read the submission's source (in the grader, never in the worker).

The from-scratch rule: an exercise may not call the operator it rebuilds. Names are
resolved through the notebook's own imports, so ``import torch.nn.functional as F``
followed by ``F.relu(x)`` is caught as ``torch.nn.functional.relu``.
"""

from __future__ import annotations

import ast
import functools
import threading
from dataclasses import dataclass

__all__ = ["Rule", "Finding", "parse", "aliases", "find_banned", "bare_squeeze_calls"]

# CPython 3.11 keeps ast.parse's recursion counter per interpreter, not per thread: two
# threads parsing at once (two notebooks graded with --jobs 2) can fail one of them with
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905).
_PARSE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Rule:
    """Banned dotted-name prefixes, banned method names, and whether ``@`` is banned."""
    prefixes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    matmul_operator: bool = False
    attributes: tuple[str, ...] = ()        # attribute names banned anywhere (e.g. requires_grad)
    allowed: tuple[str, ...] = ()           # dotted names exempt from ``prefixes`` (and their parts)
    imports: bool = False                   # also flag importing a banned name in the cell
    strings: tuple[str, ...] = ()           # banned module names as strings (__import__("..."))
    # Tensor methods banned only when called (autograder.engine.guard): a source reading cannot
    # tell a tensor's .backward() from a layer class's own
    calls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    name: str
    line: int


def parse(source: str) -> ast.Module:
    """``ast.parse``, one thread at a time (and once more if CPython's counter still slips,
    say against a library's own parse in another thread)."""
    with _PARSE_LOCK:
        try:
            return ast.parse(source)
        except SystemError:
            return ast.parse(source)


def _parse(source: str) -> ast.Module | None:
    from .executor import transform_magics
    try:
        return parse(transform_magics(source))
    except (SyntaxError, ValueError):
        return None


def aliases(notebook_source: str) -> dict[str, str]:
    """Local name -> dotted module path, from every import in the notebook (a fresh dict;
    the notebook is parsed once however many exercises ask)."""
    return dict(_aliases(notebook_source))


@functools.lru_cache(maxsize=16)
def _aliases(notebook_source: str) -> dict[str, str]:
    table = {"torch": "torch"}
    tree = _parse(notebook_source)
    if tree is None:
        return table
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    table[a.asname] = a.name
                else:
                    table[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                table[a.asname or a.name] = f"{node.module}.{a.name}"
    return table


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _is_allowed(full: str, rule: Rule) -> bool:
    return any(full == a or full.startswith(a + ".") for a in rule.allowed)


def _is_banned(full: str, rule: Rule) -> bool:
    return any(full == p or full.startswith(p + ".") for p in rule.prefixes) and not _is_allowed(full, rule)


def _imported(node: ast.AST) -> list[str]:
    """The dotted names an import statement brings in."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [f"{node.module}.{a.name}" for a in node.names]
    return []


def find_banned(source: str, rule: Rule, table: dict[str, str]) -> list[Finding]:
    """Uses of banned operators in ``source`` (the exercise's cell)."""
    tree = _parse(source)
    if tree is None:
        return []
    found: list[Finding] = []
    exempt: set[int] = set()            # parts of an allowed dotted name (walk is outer-first)
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if rule.imports:
            for name in _imported(node):
                # `import autograder` is fine when `autograder.check` is allowed; its uses are read below
                if _is_banned(name, rule) and not any(a.startswith(name + ".") for a in rule.allowed):
                    found.append(Finding(name, node.lineno))
        if rule.strings and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and any(node.value == b or node.value.startswith(b + ".") for b in rule.strings):
            found.append(Finding(repr(node.value[:60]), node.lineno))
        if isinstance(node, (ast.Attribute, ast.Name)):
            dotted = _dotted(node)
            if dotted:
                head, _, rest = dotted.partition(".")
                full = table.get(head, head) + ("." + rest if rest else "")
                if _is_allowed(full, rule):
                    exempt.update(id(n) for n in ast.walk(node))
                    continue
                if _is_banned(full, rule):
                    found.append(Finding(full, node.lineno))
                    continue
            if isinstance(node, ast.Attribute) and node.attr in rule.attributes:
                found.append(Finding(node.attr, node.lineno))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in rule.methods:
                found.append(Finding(f".{node.func.attr}()", node.lineno))
        if isinstance(node, ast.keyword) and node.arg in rule.attributes:
            found.append(Finding(node.arg, getattr(node.value, "lineno", 0)))
        if rule.matmul_operator and isinstance(node, (ast.BinOp, ast.AugAssign)) \
                and isinstance(node.op, ast.MatMult):
            found.append(Finding("@", node.lineno))
    # one call is one finding: torch.relu(x) is not also the method call .relu()
    found = [f for f in found if not (f.name.startswith(".") and any(
        g.line == f.line and g.name.endswith(f.name[:-2]) and not g.name.startswith(".") for g in found))]
    # one finding per name, outermost first (torch.nn.functional.relu, not also torch.nn)
    unique: dict[int, Finding] = {}
    for f in sorted(found, key=lambda f: (f.line, -len(f.name))):
        if not any(u.line == f.line and u.name.startswith(f.name) for u in unique.values()):
            unique[len(unique)] = f
    return list(unique.values())


def bare_squeeze_calls(source: str) -> list[int]:
    """Lines that call ``.squeeze()`` or ``torch.squeeze(x)`` without naming an axis."""
    tree = _parse(source)
    if tree is None:
        return []
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("squeeze", "squeeze_"):
            is_function = _dotted(node.func) in ("torch.squeeze", "torch.squeeze_")
            positional = len(node.args) - (1 if is_function else 0)
            has_dim = positional > 0 or any(k.arg == "dim" for k in node.keywords)
            if not has_dim:
                lines.append(node.lineno)
    return lines
