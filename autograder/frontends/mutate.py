"""Mutants of a solution cell: each one small change to the student's part of the code.

What is changed: the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, plus
the parameter lists of the ``def`` lines around it (the student may write those too):

* operator: ``+ - * / @ **`` swapped (and ``+=`` made ``=``), comparisons, unary minus dropped;
* constant: each number n made n + 1, n - 1 and 0; booleans flipped; mode strings swapped;
* axis: the axis of ``sum``/``mean``/``squeeze``/``unsqueeze``/``cat``/... among 0, 1, -1;
* argument: adjacent positional arguments, tuple or list items and the operands of
  ``- / @ **`` swapped; one positional argument dropped; a one-argument call unwrapped;
* keyword: a keyword argument dropped, or two adjacent ones' values swapped;
* method: names swapped from a table (mean/std, sum/mean, zeros/ones, randn/rand,
  clamp_min/clamp_max, squeeze/unsqueeze, ...), or an argument-less method call dropped;
* parameter: two adjacent parameters of a ``def`` swapped;
* default: a parameter's default changed (a number n made n + 1, 0 and -n; a boolean
  flipped; a mode string swapped), since the notebook's own cells call with the defaults;
* deletion: a statement replaced by ``pass``;
* fresh: in a ``for``/``while`` body, a statement that builds fresh objects (names
  assigned from calls that read nothing the loop assigns, such as
  ``a, b = make(), make()``) deleted, so that its names keep whatever the notebook's
  earlier cells left in them (these mutants are graded with the demonstration cells
  kept), or built once before the loop and reused by every pass;
* variable (only when asked): a variable read replaced by another of its scope.

Messages are not mutated (f-strings and docstrings). Mutants are generated with
:mod:`ast` (mutation libraries work on files under a test runner, not on notebook
cells): the statement that holds the change is re-written with ``ast.unparse``, the rest
of the cell stays as it was. Pure code: nothing here runs a mutant
(:mod:`autograder.frontends.mutants` grades them).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

__all__ = ["Mutant", "MARKER", "FRESH_DELETED", "FRESH_HOISTED", "split_solution", "cell_mutants",
           "notebook_mutants"]

MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION")


@dataclass
class Mutant:
    notebook: str
    grade_id: str
    kind: str           # operator, constant, axis, argument, keyword, method, parameter, default,
    #                     deletion, fresh
    change: str         # e.g. "- -> +"
    before: str         # the changed line, before and after (as ast.unparse writes them)
    after: str
    source: str = field(repr=False)     # the whole mutated cell
    status: str = ""    # killed, survived, equivalent, grader error; "equivalent, killed": listed
    #                     as equivalent yet failed (a correct answer fails, or the entry is wrong)
    by: str = ""        # the exercise that killed it (or that hit the grader error)
    message: str = ""   # the first line of that exercise's message
    demos: bool = False     # graded with the demonstration cells kept (see FRESH_DELETED)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.notebook, self.grade_id, self.before, self.after)

    def line(self) -> str:
        return f"{self.notebook} {self.grade_id} [{self.kind}: {self.change}]  {self.before}  ->  {self.after}"


BINOPS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub, ast.Mult), ast.Sub: (ast.Add, ast.Div), ast.Mult: (ast.Div, ast.Add),
    ast.Div: (ast.Mult, ast.Sub), ast.MatMult: (ast.Mult,), ast.Pow: (ast.Mult,),
    ast.FloorDiv: (ast.Div,), ast.Mod: (ast.Div,),
}
NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.MatMult, ast.Pow, ast.FloorDiv, ast.Mod)
COMPARES: dict[type, tuple[type, ...]] = {
    ast.Gt: (ast.GtE, ast.Lt), ast.GtE: (ast.Gt, ast.LtE), ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
}
SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.MatMult: "@", ast.Pow: "**",
           ast.FloorDiv: "//", ast.Mod: "%", ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=",
           ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
           ast.NotIn: "not in"}
METHODS = {
    "mean": ("std", "sum"), "std": ("mean", "var"), "var": ("std",), "sum": ("mean",),
    "zeros": ("ones",), "ones": ("zeros",), "zeros_like": ("ones_like",), "ones_like": ("zeros_like",),
    "randn": ("rand",), "rand": ("randn",), "randn_like": ("rand_like",),
    "clamp_min": ("clamp_max",), "clamp_max": ("clamp_min",), "squeeze": ("unsqueeze",),
    "unsqueeze": ("squeeze",), "max": ("min",), "min": ("max",), "float": ("long",),
    "pow": ("mul",), "exp": ("log",), "log": ("exp",), "sqrt": ("exp",),
}
# Methods and functions whose argument at this position (or dim=/axis=) is an axis.
AXIS_AT = {"sum": 0, "mean": 0, "std": 0, "var": 0, "max": 0, "min": 0, "argmax": 0, "argmin": 0,
           "prod": 0, "cumsum": 0, "squeeze": 0, "unsqueeze": 0, "softmax": 0, "log_softmax": 0,
           "logsumexp": 0, "flip": 0, "cat": 1, "stack": 1}
AXES = (0, 1, -1)
STRINGS = {"fan_out": ("fan_in",), "fan_in": ("fan_out",)}
UNWRAP_MODULES = ("math", "torch")


def _int_literal(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) is int):
        return -node.operand.value
    return None


def _literal(value: int) -> ast.expr:
    return ast.Constant(value) if value >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-value))


def _call_name(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _ordinal(i: int) -> str:
    return ("1st", "2nd", "3rd")[i] if i < 3 else f"{i + 1}th"


Edit = Callable[[ast.AST], ast.AST | None]   # changes the node in place, or returns its replacement


def _set(attr: str, value_fn) -> Edit:
    def edit(node):
        setattr(node, attr, value_fn(node))
        return node
    return edit


def _swap(attr: str, i: int) -> Edit:
    def edit(node):
        items = getattr(node, attr)
        items[i], items[i + 1] = items[i + 1], items[i]
        return node
    return edit


def _drop(attr: str, i: int) -> Edit:
    def edit(node):
        del getattr(node, attr)[i]
        return node
    return edit


def _edits(node: ast.AST, skip: set[int], walk_ids: dict[int, int]) -> Iterator[tuple[str, str, Edit]]:
    """The mutations of one node: (kind, change, edit)."""
    if isinstance(node, ast.BinOp):
        sym = SYMBOLS[type(node.op)]
        for alt in BINOPS.get(type(node.op), ()):
            yield "operator", f"{sym} -> {SYMBOLS[alt]}", _set("op", lambda n, a=alt: a())
        if isinstance(node.op, NON_COMMUTATIVE):
            def swap_operands(n):
                n.left, n.right = n.right, n.left
                return n
            yield "argument", f"swapped the operands of {sym}", swap_operands
    elif isinstance(node, ast.AugAssign):
        sym = SYMBOLS[type(node.op)]
        for alt in BINOPS.get(type(node.op), ()):
            yield "operator", f"{sym}= -> {SYMBOLS[alt]}=", _set("op", lambda n, a=alt: a())
        yield "operator", f"{sym}= -> =", lambda n: ast.Assign([n.target], n.value, lineno=n.lineno)
    elif isinstance(node, ast.UnaryOp) and walk_ids[id(node)] not in skip:
        if isinstance(node.op, (ast.USub, ast.Not, ast.Invert)):
            yield "operator", f"dropped unary {type(node.op).__name__}", lambda n: n.operand
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for alt in COMPARES.get(type(op), ()):
                yield "operator", f"{SYMBOLS[type(op)]} -> {SYMBOLS[alt]}", \
                    lambda n, i=i, a=alt: (n.ops.__setitem__(i, a()), n)[1]
    elif isinstance(node, ast.Constant) and walk_ids[id(node)] not in skip:
        v = node.value
        if type(v) is bool:
            yield "constant", f"{v} -> {not v}", _set("value", lambda n: not n.value)
        elif type(v) in (int, float):
            for alt in dict.fromkeys((v + 1, v - 1, type(v)(0))):
                if alt != v:
                    yield "constant", f"{v!r} -> {alt!r}", _set("value", lambda n, a=alt: a)
        elif type(v) is str:
            for alt in STRINGS.get(v, ()):
                yield "constant", f"{v!r} -> {alt!r}", _set("value", lambda n, a=alt: a)
    elif isinstance(node, ast.Call):
        name = _call_name(node)
        # an axis argument
        at = AXIS_AT.get(name or "")
        axis_args = []
        if at is not None and len(node.args) > at and _int_literal(node.args[at]) is not None:
            axis_args.append(("args", at, _int_literal(node.args[at])))
        for k, kw in enumerate(node.keywords):
            if kw.arg in ("dim", "axis") and _int_literal(kw.value) is not None:
                axis_args.append(("keywords", k, _int_literal(kw.value)))
        for where, i, value in axis_args:
            for alt in AXES:
                if alt != value:
                    def set_axis(n, where=where, i=i, alt=alt):
                        if where == "args":
                            n.args[i] = _literal(alt)
                        else:
                            n.keywords[i].value = _literal(alt)
                        return n
                    yield "axis", f"{value} -> {alt}", set_axis
        # positional arguments: swapped, dropped; a one-argument call unwrapped
        for i in range(len(node.args) - 1):
            if ast.dump(node.args[i]) != ast.dump(node.args[i + 1]):
                yield "argument", f"swapped the {_ordinal(i)} and {_ordinal(i + 1)} arguments of {name}", \
                    _swap("args", i)
        for i in range(len(node.args)):
            yield "argument", f"dropped the {_ordinal(i)} argument of {name}", _drop("args", i)
        unwrappable = isinstance(node.func, ast.Name) or (
            isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            and node.func.value.id in UNWRAP_MODULES)
        if unwrappable and len(node.args) == 1 and not node.keywords \
                and not isinstance(node.args[0], ast.Starred):
            yield "argument", f"unwrapped the call of {name}", lambda n: n.args[0]
        # keywords: dropped, adjacent values swapped
        for k, kw in enumerate(node.keywords):
            yield "keyword", f"dropped {kw.arg}=", _drop("keywords", k)
        for k in range(len(node.keywords) - 1):
            def swap_values(n, k=k):
                a, b = n.keywords[k], n.keywords[k + 1]
                a.value, b.value = b.value, a.value
                return n
            yield "keyword", f"swapped the values of {node.keywords[k].arg}= and {node.keywords[k + 1].arg}=", \
                swap_values
        # methods: swapped names, or an argument-less call dropped
        if isinstance(node.func, ast.Attribute):
            for alt in METHODS.get(node.func.attr, ()):
                def rename(n, alt=alt):
                    n.func.attr = alt
                    return n
                yield "method", f"{node.func.attr} -> {alt}", rename
            if not node.args and not node.keywords and not (
                    isinstance(node.func.value, ast.Name) and node.func.value.id in UNWRAP_MODULES):
                yield "method", f"dropped .{node.func.attr}()", lambda n: n.func.value
        # einsum: the result's axes in the other order
        if name == "einsum" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and "->" in node.args[0].value:
            spec = node.args[0].value
            lhs, rhs = spec.split("->")
            if len(rhs.strip()) > 1:
                alt = f"{lhs}->{rhs.strip()[::-1]}"
                yield "constant", f"{spec!r} -> {alt!r}", \
                    lambda n, alt=alt: (setattr(n.args[0], "value", alt), n)[1]
    elif isinstance(node, (ast.Tuple, ast.List)):
        for i in range(len(node.elts) - 1):
            if ast.dump(node.elts[i]) != ast.dump(node.elts[i + 1]) \
                    and not any(isinstance(e, ast.Starred) for e in node.elts):
                yield "argument", f"swapped items {i + 1} and {i + 2}", _swap("elts", i)
    if isinstance(node, (ast.For, ast.While)):
        yield from _fresh_edits(node)
    if isinstance(node, ast.stmt) and not isinstance(node, ast.Pass) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
        yield "deletion", "statement replaced by pass", lambda n: ast.Pass()


FRESH_DELETED = "deleted from the loop: its names keep what earlier cells left"
FRESH_HOISTED = "built once before the loop, reused by every pass"


def _builds_fresh(stmt: ast.stmt, loop_names: set[str]) -> bool:
    """``a, b = f(), g()``: plain names assigned from calls that read nothing the loop assigns."""
    if not isinstance(stmt, ast.Assign):
        return False
    targets = [e for t in stmt.targets for e in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t])]
    if not targets or not all(isinstance(t, ast.Name) for t in targets):
        return False
    values = stmt.value.elts if isinstance(stmt.value, (ast.Tuple, ast.List)) else [stmt.value]
    if not all(isinstance(v, ast.Call) for v in values):
        return False
    read = {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)}
    return not read & loop_names


def _fresh_edits(loop: ast.For | ast.While) -> Iterator[tuple[str, str, Edit]]:
    """The statements of a loop's body that build fresh objects: deleted, or hoisted."""
    loop_names = {n.id for n in ast.walk(loop) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for j, stmt in enumerate(loop.body):
        if not _builds_fresh(stmt, loop_names):
            continue
        def delete(n, j=j):
            del n.body[j]
            n.body = n.body or [ast.Pass()]
            return n
        def hoist(n, j=j):
            built = n.body.pop(j)
            n.body = n.body or [ast.Pass()]
            return [built, n]
        yield "fresh", FRESH_DELETED, delete
        yield "fresh", FRESH_HOISTED, hoist



def _parameter_edits(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[tuple[str, str, Edit]]:
    params = fn.args.args
    first = 1 if params and params[0].arg in ("self", "cls") else 0
    for i in range(first, len(params) - 1):
        def swap(n, i=i):
            p = n.args.args
            p[i], p[i + 1] = p[i + 1], p[i]
            return n
        yield "parameter", f"swapped parameters {params[i].arg}, {params[i + 1].arg}", swap
    positional = fn.args.posonlyargs + fn.args.args
    named = list(zip(positional[len(positional) - len(fn.args.defaults):], fn.args.defaults))
    named += [(a, d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None]
    for arg, default in named:
        for alt in _default_alternatives(default):
            def change(n, name=arg.arg, alt=alt):
                positional = n.args.posonlyargs + n.args.args
                offset = len(positional) - len(n.args.defaults)
                for k, a in enumerate(positional):
                    if a.arg == name and k >= offset:
                        n.args.defaults[k - offset] = alt
                for k, a in enumerate(n.args.kwonlyargs):
                    if a.arg == name:
                        n.args.kw_defaults[k] = alt
                return n
            yield "default", f"{arg.arg}={ast.unparse(default)} -> {arg.arg}={ast.unparse(alt)}", change


def _default_alternatives(node: ast.expr) -> list[ast.expr]:
    """Other defaults for a parameter: n + 1, 0 and -n for a number; the other boolean;
    the other mode string."""
    value = _int_literal(node)
    if value is None and isinstance(node, ast.Constant) and type(node.value) is float:
        value = node.value
    if value is not None:
        alts = dict.fromkeys((value + 1, type(value)(0), -value))
        return [ast.Constant(a) if a >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-a))
                for a in alts if a != value]
    if isinstance(node, ast.Constant) and type(node.value) is bool:
        return [ast.Constant(not node.value)]
    if isinstance(node, ast.Constant) and type(node.value) is str:
        return [ast.Constant(alt) for alt in STRINGS.get(node.value, ())]
    return []


def _replace(tree: ast.AST, old: ast.AST, new, *, splice: bool = False) -> None:
    """Put ``new`` where ``old`` is; with ``splice``, ``new`` is a list of statements."""
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old and not splice:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i:i + 1] = new if splice else [new]
                        return
    raise ValueError("node not found in its tree")


def _anchors(tree: ast.AST) -> dict[int, ast.stmt]:
    """Each node's innermost enclosing statement (keyed by id)."""
    anchor: dict[int, ast.stmt] = {}

    def visit(node, current):
        if isinstance(node, ast.stmt):
            current = node
        anchor[id(node)] = current
        for child in ast.iter_child_nodes(node):
            visit(child, current)
    visit(tree, None)
    return anchor


def _indent(text: str, prefix: str) -> list[str]:
    return [prefix + line if line else line for line in text.splitlines()]


def _first_difference(a: str, b: str) -> tuple[str, str]:
    la, lb = a.splitlines(), b.splitlines()
    for x, y in zip(la, lb):
        if x != y:
            return x.strip(), y.strip()
    if len(la) != len(lb):
        i = min(len(la), len(lb))
        return (la[i].strip() if i < len(la) else ""), (lb[i].strip() if i < len(lb) else "")
    return "", ""


def split_solution(text: str) -> tuple[str, set[int]]:
    """The cell without its marker lines, and the (1-based) lines that were between them."""
    out, region, inside = [], set(), False
    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            inside = m[1] == "BEGIN"
            continue
        out.append(line)
        if inside:
            region.add(len(out))
    return "\n".join(out), region


def _variables(tree: ast.Module) -> dict[int, list[str]]:
    """For each name read, by id: the variables of its scope (the parameters and assigned
    names of its function, or the names the cell's own top-level code assigns); for each
    ``self.x`` read, the attributes its class assigns on self."""
    found: dict[int, list[str]] = {}

    def scope(nodes: list[ast.AST], names: list[str]) -> None:
        for n in nodes:
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id not in names:
                names.append(n.id)
        for n in nodes:
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in names:
                found[id(n)] = names

    def walk_scope(body: list[ast.stmt]) -> list[ast.AST]:
        out, todo = [], list(body)
        while todo:
            n = todo.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            out.append(n)
            todo.extend(ast.iter_child_nodes(n))
        return out

    scope(walk_scope(tree.body), [])
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            params = [a.arg for a in fn.args.args if a.arg not in ("self", "cls")]
            scope(walk_scope(fn.body), params)
    for cls in ast.walk(tree):          # self.<attribute> read: the class's other attributes
        if isinstance(cls, ast.ClassDef):
            attrs = [n for n in ast.walk(cls) if isinstance(n, ast.Attribute)
                     and isinstance(n.value, ast.Name) and n.value.id == "self"]
            names = list(dict.fromkeys(n.attr for n in attrs if isinstance(n.ctx, ast.Store)))
            for n in attrs:
                if isinstance(n.ctx, ast.Load) and n.attr in names:
                    found[id(n)] = names
    return found


def cell_mutants(source: str, region: set[int] | None = None, *, notebook: str = "",
                 grade_id: str = "", variables: bool = False) -> list[Mutant]:
    """Every mutant of one cell. ``region``: the lines that may be changed (default: all);
    the parameters of a ``def`` whose body reaches into the region are mutated too.
    With ``variables``, also each variable read replaced by another of its scope."""
    tree = ast.parse(source)
    lines = source.splitlines()
    everything = set(range(1, len(lines) + 1))
    region = everything if region is None else region

    def inside(node) -> bool:
        return all(n in region for n in range(node.lineno, node.end_lineno + 1))

    nodes = list(ast.walk(tree))
    walk_ids = {id(n): i for i, n in enumerate(nodes)}
    # constants and minus signs inside axis arguments get axis mutants instead;
    # f-strings (messages) and docstrings are not mutated
    skip: set[int] = set()
    opaque: set[int] = set()
    for n in nodes:
        if isinstance(n, ast.Call):
            at = AXIS_AT.get(_call_name(n) or "")
            axis_nodes = [n.args[at]] if at is not None and len(n.args) > at else []
            axis_nodes += [kw.value for kw in n.keywords if kw.arg in ("dim", "axis")]
            for a in axis_nodes:
                if _int_literal(a) is not None:
                    skip.update(walk_ids[id(x)] for x in ast.walk(a))
        if isinstance(n, ast.JoinedStr) or (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)):
            opaque.update(walk_ids[id(x)] for x in ast.walk(n))
    plans: list[tuple[int, str, str, Edit]] = []
    scopes = _variables(tree) if variables else {}
    for i, n in enumerate(nodes):
        if id(n) in scopes and inside(n) and i not in opaque:
            field_name = "attr" if isinstance(n, ast.Attribute) else "id"
            here = getattr(n, field_name)
            plans += [(i, "variable", f"{here} -> {alt}", _set(field_name, lambda _, a=alt: a))
                      for alt in scopes[id(n)] if alt != here]
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(inside(s) for s in ast.walk(n) if isinstance(s, ast.stmt) and s is not n):
                plans += [(i, *e) for e in _parameter_edits(n)]
            continue
        if not hasattr(n, "lineno") or not inside(n) or i in opaque:
            continue
        plans += [(i, *e) for e in _edits(n, skip, walk_ids)]

    result, seen = [], {source}
    for index, kind, change, edit in plans:
        fresh = ast.parse(source)
        fresh_nodes = list(ast.walk(fresh))
        target = fresh_nodes[index]
        anchor = place = _anchors(fresh)[id(target)]
        before = ast.unparse(anchor)
        new = edit(target)
        if isinstance(new, list):                  # one statement became several (hoisted)
            _replace(fresh, target, new, splice=True)
            after = "\n".join(ast.unparse(x) for x in new)
        else:
            if new is not target:
                _replace(fresh, target, new)
                if target is anchor:
                    anchor = new
            after = ast.unparse(anchor)
        if after == before:
            continue
        first = lines[place.lineno - 1]
        prefix = first[:len(first) - len(first.lstrip())]
        if place.col_offset == len(prefix):
            new_lines = lines[:place.lineno - 1] + _indent(after, prefix) + lines[place.end_lineno:]
            text = "\n".join(new_lines)
        else:                                   # a statement that does not start its line
            text = ast.unparse(fresh)
        if text in seen:
            continue
        seen.add(text)
        line_before, line_after = _first_difference(before, after)
        result.append(Mutant(notebook, grade_id, kind, change, line_before, line_after, text,
                             demos=change == FRESH_DELETED))
    return result


def notebook_mutants(name: str, nb: dict, exercises: list[str] | None = None, *,
                     variables: bool = False) -> list[Mutant]:
    """Every mutant of notebook ``name``'s solution cells (``nb``: its JSON, with the
    solution markers), optionally only the cells of ``exercises``."""
    mutants = []
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if cell["cell_type"] != "code" or not meta.get("solution") or not gid:
            continue
        if exercises and gid not in exercises:
            continue
        text = "".join(cell["source"])
        source, region = split_solution(text)
        mutants += cell_mutants(source, region, notebook=name, grade_id=gid, variables=variables)
    return mutants
