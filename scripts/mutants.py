"""Mutation testing of the checks: can a small change to a correct solution pass?

Every solution cell of every notebook in ``assignments/lesson8/`` is changed in one small
way at a time (a *mutant*), and each mutant notebook is graded with the kit's own API,
in a confined worker, exactly as a student's would be. A mutant is *killed* as soon as
one exercise fails. What is mutated: the code between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (the student's part of the cell), plus the parameter lists of the
``def`` lines around it (the student may write those too). The changes:

* operator: ``+ - * / @ **`` swapped (and ``+=`` made ``=``), comparisons, unary minus dropped;
* constant: each number n made n + 1, n - 1 and 0; booleans flipped; mode strings swapped;
* axis: the axis of ``sum``/``mean``/``squeeze``/``unsqueeze``/``cat``/... among 0, 1, -1;
* argument: adjacent positional arguments, tuple or list items and the operands of
  ``- / @ **`` swapped; one positional argument dropped; a one-argument call unwrapped;
* keyword: a keyword argument dropped, or two adjacent ones' values swapped;
* method: names swapped from a table (mean/std, sum/mean, zeros/ones, randn/rand,
  clamp_min/clamp_max, squeeze/unsqueeze, ...), or an argument-less method call dropped;
* parameter: two adjacent parameters of a ``def`` swapped;
* deletion: a statement replaced by ``pass``;
* variable (only with ``--variables``): a variable read replaced by another of its scope.

Messages are not mutated (f-strings and docstrings). Mutant notebooks leave out the
demonstration cells (code cells without a grade_id): no check reads them, and without
them a mutant cannot be "killed" by running out of time there.

Mutants are generated with :mod:`ast` (mutation libraries work on files under a test
runner, not on notebook cells): the statement that holds the change is re-written with
``ast.unparse``, the rest of the cell stays as it was. Mutants with identical source
are graded once.

Every mutant that survives must be listed in :data:`EQUIVALENT` (or
:data:`EQUIVALENT_VARIABLES`) with a one-line reason
(it computes what the solution computes, on every input the lesson allows); any other
survivor is a hole in the checks. A mutant whose grading ends in a grader error is not
killed: it is reported apart, and the run fails.

    python scripts/mutants.py [--notebook NAME] [--exercise GRADE_ID] [--jobs N]
                              [--variables] [--list] [--json FILE]

Exit status: 0 when every non-equivalent mutant was killed, 1 when some survived (or a
listed equivalent mutant no longer exists, or was killed: then either a correct answer
fails an exercise or the entry is wrong), 3 on a grader error.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["Mutant", "EQUIVALENT", "EQUIVALENT_VARIABLES", "cell_mutants", "notebook_mutants",
           "grade_mutant", "run", "main"]

ASSIGNMENTS = ROOT / "assignments" / "lesson8"
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION")

# Tight limits: a mutant that loops forever costs seconds (a timeout counts as killed).
# The solution notebooks' slowest cell takes about a second on a busy 2-core machine.
CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 20.0, 90.0

# ----------------------------------------------------------------------------- what survives
# (notebook, grade_id, line before, line after) -> why the mutant computes what the solution
# computes. Lines are as ``ast.unparse`` writes them (``--list`` prints them).
SQUARE = "(a - b) and (b - a) have the same square"
SQUEEZE_1 = "the tensor squeezed is always (n, 1): axis 1 is its last axis, the one of size 1"
UNSQUEEZE_1 = "the tensor unsqueezed is 1-d, so axis 1 and axis -1 are the same new last axis"
MASK_DTYPE = "a bool or integer mask times the float out.g is promoted to float: same values, same dtype"
RELU_AT_0 = ("differs only where the input is exactly 0, where relu has no derivative (0 and 1 are both "
             "subgradients); no input the checks or the lesson use is exactly 0, and neither choice is charged")
ZERO_D = "a 0-d tensor holds the same number as .item() gives; the check compares the numbers"
ABS_SWAP = "abs(a - b) equals abs(b - a): the same distance from 1"
LOSS_UNUSED = ("the backward pass starts from mse_grad: the value of the loss is never used "
               "(nothing is returned)")
EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    ("01_matmul", "matmul_elementwise", "c = torch.zeros(ar, bc)", "c = torch.ones(ar, bc)"):
        "every entry of c is assigned (=) before c is returned, so its first values never show",
    ("01_matmul", "matmul_broadcast", "c = torch.zeros(ar, bc)", "c = torch.ones(ar, bc)"):
        "every row of c is assigned (=) before c is returned, so its first values never show",
    ("01_matmul", "matmul_broadcast", "c[i] = (a[i].unsqueeze(-1) * b).sum(0)",
     "c[i] = (a[i].unsqueeze(1) * b).sum(0)"): UNSQUEEZE_1,
    ("02_fully_connected", "get_data", "with gzip.open(MNIST_PATH, 'rb') as f:",
     "with gzip.open(MNIST_PATH) as f:"): "'rb' is gzip.open's default mode",
    ("02_fully_connected", "dims", "c = int(y_train.max()) + 1", "c = y_train.max() + 1"):
        "a one-element integer tensor is accepted for c on purpose: it is the count of classes",
    ("02_fully_connected", "mse", "return (output.squeeze(-1) - targ).pow(2).mean()",
     "return (targ - output.squeeze(-1)).pow(2).mean()"): SQUARE,
    ("02_fully_connected", "mse", "return (output.squeeze(-1) - targ).pow(2).mean()",
     "return (output.squeeze(1) - targ).pow(2).mean()"): SQUEEZE_1,
    ("03_backward", "mse_grad", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(1) / inp.shape[0]"): UNSQUEEZE_1,
    ("03_backward", "mse_grad", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(1) - targ).unsqueeze(-1) / inp.shape[0]"): SQUEEZE_1,
    ("03_backward", "relu_grad", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (inp > 0).long() * out.g"): MASK_DTYPE,
    ("03_backward", "relu_grad", "inp.g = (inp > 0).float() * out.g", "inp.g = (inp > 0) * out.g"): MASK_DTYPE,
    ("03_backward", "relu_grad", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (inp >= 0).float() * out.g"): RELU_AT_0,
    ("03_backward", "forward_and_backward", "loss = mse(out, targ)", "pass"): LOSS_UNUSED,
    ("03_backward", "forward_and_backward", "loss = mse(out, targ)", "loss = mse(targ, out)"): LOSS_UNUSED,
    ("03_backward", "Relu", "self.inp.g = (self.inp > 0).float() * self.out.g",
     "self.inp.g = (self.inp > 0).long() * self.out.g"): MASK_DTYPE,
    ("03_backward", "Relu", "self.inp.g = (self.inp > 0).float() * self.out.g",
     "self.inp.g = (self.inp > 0) * self.out.g"): MASK_DTYPE,
    ("03_backward", "Relu", "self.inp.g = (self.inp > 0).float() * self.out.g",
     "self.inp.g = (self.inp >= 0).float() * self.out.g"): RELU_AT_0,
    ("03_backward", "Mse", "self.out = (inp.squeeze(-1) - targ).pow(2).mean()",
     "self.out = (targ - inp.squeeze(-1)).pow(2).mean()"): SQUARE,
    ("03_backward", "Mse", "self.out = (inp.squeeze(-1) - targ).pow(2).mean()",
     "self.out = (inp.squeeze(1) - targ).pow(2).mean()"): SQUEEZE_1,
    ("03_backward", "Mse",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.inp.shape[0]",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(1) / self.inp.shape[0]"): UNSQUEEZE_1,
    ("03_backward", "Mse",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.inp.shape[0]",
     "self.inp.g = 2.0 * (self.inp.squeeze(1) - self.targ).unsqueeze(-1) / self.inp.shape[0]"): SQUEEZE_1,
    ("03_backward", "Relu_module", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (inp > 0).long() * out.g"): MASK_DTYPE,
    ("03_backward", "Relu_module", "inp.g = (inp > 0).float() * out.g", "inp.g = (inp > 0) * out.g"): MASK_DTYPE,
    ("03_backward", "Relu_module", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (inp >= 0).float() * out.g"): RELU_AT_0,
    ("03_backward", "Mse_module", "return (inp.squeeze(-1) - targ).pow(2).mean()",
     "return (targ - inp.squeeze(-1)).pow(2).mean()"): SQUARE,
    ("03_backward", "Mse_module", "return (inp.squeeze(-1) - targ).pow(2).mean()",
     "return (inp.squeeze(1) - targ).pow(2).mean()"): SQUEEZE_1,
    ("03_backward", "Mse_module", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(1) / targ.shape[0]"): UNSQUEEZE_1,
    ("03_backward", "Mse_module", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(1) - targ).unsqueeze(-1) / targ.shape[0]"): SQUEEZE_1,
    ("03_backward", "Mse_module", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[-1]"):
        "targ is 1-d, so its axis -1 is its axis 0",
    ("04_init_in_pytorch", "layer_stats", "stats.append((x.mean().item(), x.std().item()))",
     "stats.append((x.mean(), x.std().item()))"): ZERO_D,
    ("04_init_in_pytorch", "layer_stats", "stats.append((x.mean().item(), x.std().item()))",
     "stats.append((x.mean().item(), x.std()))"): ZERO_D,
    ("04_init_in_pytorch", "fraction_better", "default_layers, kaiming_layers = (conv_stack(), conv_stack())",
     "kaiming_layers, default_layers = (conv_stack(), conv_stack())"):
        "both stacks are fresh draws of the same default init: only which draws get re-initialised changes",
    ("04_init_in_pytorch", "fraction_better",
     "better += abs(kaiming_std_last - 1) < abs(default_std_last - 1)",
     "better += abs(kaiming_std_last - 1) <= abs(default_std_last - 1)"):
        "two stds computed from different random weights are equal with probability 0",
    ("04_init_in_pytorch", "fraction_better",
     "better += abs(kaiming_std_last - 1) < abs(default_std_last - 1)",
     "better += abs(1 - kaiming_std_last) < abs(default_std_last - 1)"): ABS_SWAP,
    ("04_init_in_pytorch", "fraction_better",
     "better += abs(kaiming_std_last - 1) < abs(default_std_last - 1)",
     "better += abs(kaiming_std_last - 1) < abs(1 - default_std_last)"): ABS_SWAP,
}

# 05_cross_entropy (kept in a block of its own)
TWO_D = "x is (rows, classes), 2-d: axis 1 is its last axis, -1"
EQUIVALENT.update({
    ("05_cross_entropy", "log_softmax", "return (x.exp() / x.exp().sum(-1, keepdim=True)).log()",
     "return (x.exp() / x.exp().sum(1, keepdim=True)).log()"): TWO_D,
    ("05_cross_entropy", "logsumexp", "m = x.max(-1, keepdim=True)[0]", "m = x.max(1, keepdim=True)[0]"): TWO_D,
    ("05_cross_entropy", "logsumexp", "return m.squeeze(-1) + (x - m).exp().sum(-1).log()",
     "return m.squeeze(1) + (x - m).exp().sum(-1).log()"): "m is (rows, 1): axis 1 is its last axis, of size 1",
    ("05_cross_entropy", "logsumexp", "return m.squeeze(-1) + (x - m).exp().sum(-1).log()",
     "return m.squeeze(-1) + (x - m).exp().sum(1).log()"): TWO_D,
    ("05_cross_entropy", "logsumexp", "return m.squeeze(-1) + (x - m).exp().sum(-1).log()",
     "return m.squeeze() + (x - m).exp().sum(-1).log()"):
        "m is (rows, 1); with one row squeeze() leaves a 0-d max, which the (1,) sum broadcasts back to (1,)",
    ("05_cross_entropy", "stable_log_softmax", "return x - logsumexp(x).unsqueeze(-1)",
     "return x - logsumexp(x).unsqueeze(1)"): "logsumexp(x) is 1-d, so axis 1 and axis -1 are the same new last axis",
    ("05_cross_entropy", "nll", "return -logp[range(target.shape[0]), target].mean()",
     "return -logp[range(target.shape[-1]), target].mean()"): "target is 1-d: its axis -1 is its axis 0",
    ("05_cross_entropy", "accuracy", "return (out.argmax(dim=1) == yb).float().mean()",
     "return (out.argmax(dim=-1) == yb).float().mean()"): "out is (rows, classes), 2-d: dim -1 is dim 1",
    ("05_cross_entropy", "fit", "losses.append(loss.item())", "losses.append(loss)"):
        "a list of one-element tensors holds the same losses as their .item(); fit's list may hold either",
})


# The same for the mutants of --variables (a variable read replaced by another of its scope).
SAME_N = "inp is (n, 1) and targ is (n,): both have n rows"
RELU_OUT = "out is relu(inp), which is positive exactly where inp is"
EQUIVALENT_VARIABLES: dict[tuple[str, str, str, str], str] = {
    ("01_matmul", "matmul_loops", "for k in range(ac):", "for k in range(br):"):
        "the assert just above has made sure that ac == br",
    ("03_backward", "mse_grad", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]"): SAME_N,
    ("03_backward", "relu_grad", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (out > 0).float() * out.g"): RELU_OUT,
    ("03_backward", "forward_and_backward", "loss = mse(out, targ)", "loss = mse(targ, targ)"): LOSS_UNUSED,
    ("03_backward", "forward_and_backward", "loss = mse(out, targ)", "loss = mse(out, out)"): LOSS_UNUSED,
    ("03_backward", "Relu", "self.inp.g = (self.inp > 0).float() * self.out.g",
     "self.inp.g = (self.out > 0).float() * self.out.g"): RELU_OUT,
    ("03_backward", "Mse",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.inp.shape[0]",
     "self.inp.g = 2.0 * (self.inp.squeeze(-1) - self.targ).unsqueeze(-1) / self.targ.shape[0]"): SAME_N,
    ("03_backward", "Relu_module", "inp.g = (inp > 0).float() * out.g",
     "inp.g = (out > 0).float() * out.g"): RELU_OUT,
    ("03_backward", "Mse_module", "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]",
     "inp.g = 2.0 * (inp.squeeze(-1) - targ).unsqueeze(-1) / inp.shape[0]"): SAME_N,
}


def is_equivalent(key: tuple[str, str, str, str]) -> bool:
    return key in EQUIVALENT or key in EQUIVALENT_VARIABLES


# ----------------------------------------------------------------------------- mutants
@dataclass
class Mutant:
    notebook: str
    grade_id: str
    kind: str           # operator, constant, axis, argument, keyword, method, parameter, deletion
    change: str         # e.g. "- -> +"
    before: str         # the changed line, before and after (as ast.unparse writes them)
    after: str
    source: str = field(repr=False)     # the whole mutated cell
    status: str = ""    # killed, survived, equivalent, grader error; "equivalent, killed": listed
    #                     as equivalent yet failed (a correct answer fails, or the entry is wrong)
    by: str = ""        # the exercise that killed it (or that hit the grader error)
    message: str = ""   # the first line of that exercise's message

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
    if isinstance(node, ast.stmt) and not isinstance(node, ast.Pass) and not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
        yield "deletion", "statement replaced by pass", lambda n: ast.Pass()


def _parameter_edits(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[tuple[str, str, Edit]]:
    params = fn.args.args
    first = 1 if params and params[0].arg in ("self", "cls") else 0
    for i in range(first, len(params) - 1):
        def swap(n, i=i):
            p = n.args.args
            p[i], p[i + 1] = p[i + 1], p[i]
            return n
        yield "parameter", f"swapped parameters {params[i].arg}, {params[i + 1].arg}", swap


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
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
        result.append(Mutant(notebook, grade_id, kind, change, line_before, line_after, text))
    return result


# ----------------------------------------------------------------------------- notebooks
def solution_notebooks(names: list[str] | None = None) -> dict[str, dict]:
    """The source notebooks (JSON), by name, optionally only ``names``."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted(ASSIGNMENTS.glob("*.ipynb"))}
    if names:
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise SystemExit(f"no such notebook: {', '.join(unknown)} (have {', '.join(found)})")
        found = {k: v for k, v in found.items() if k in names}
    return found


def notebook_mutants(name: str, nb: dict, exercises: list[str] | None = None, *,
                     variables: bool = False) -> list[Mutant]:
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


def base_notebook(nb: dict, folder: Path, name: str):
    """The solution notebook as the grader reads it (markers and hidden tests removed),
    without its demonstration cells (code cells with no grade_id): no check reads what
    they compute, they are the slowest cells (the matmul timings run the three-loop
    version for seconds), and leaving them out can only make a mutant harder to kill
    (it can no longer run out of time in a demonstration)."""
    from autograder.engine.notebook import read_notebook
    from autograder.frontends.release import solution_notebook
    nb = solution_notebook(nb)
    nb["cells"] = [c for c in nb["cells"] if c["cell_type"] != "code"
                   or c.get("metadata", {}).get("nbgrader", {}).get("grade_id")]
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return read_notebook(path)


def grade_base(base, limits) -> list[str]:
    """The exercises the unmutated solution notebook fails (must be none, or every mutant
    would look killed)."""
    from autograder.engine.grade import catalogue
    checks = catalogue()
    from autograder.engine.grade import identify, open_submission
    with open_submission(base, limits) as sub:
        results = [checks.run_exercise(ex, sub) for ex in checks.NOTEBOOKS[identify(base)]]
    return [r.message.splitlines()[0] for r in results if not r.passed]


def grade_mutant(mutant: Mutant, base, limits) -> Mutant:
    """Grade one mutant, its own exercise first, stopping at the first failing exercise."""
    from autograder.engine.grade import catalogue
    checks = catalogue()
    from autograder.engine.errors import GraderError
    from autograder.engine.grade import identify, open_submission
    from autograder.engine.notebook import Notebook
    cells = [dataclasses.replace(c, source=mutant.source) if c.grade_id == mutant.grade_id else c
             for c in base.cells]
    nb = Notebook(base.path, cells, set(base.duplicated_ids))
    order = sorted(checks.NOTEBOOKS[identify(nb)], key=lambda ex: ex.name != mutant.grade_id)
    try:
        with open_submission(nb, limits) as sub:
            for ex in order:
                result = checks.run_exercise(ex, sub)
                if result.grader_error or not result.passed:
                    mutant.status = ("grader error" if result.grader_error else
                                     "equivalent, killed" if is_equivalent(mutant.key) else "killed")
                    mutant.by, mutant.message = ex.name, result.message.splitlines()[0]
                    return mutant
    except GraderError as exc:
        mutant.status, mutant.message = "grader error", str(exc)
        return mutant
    mutant.status = "equivalent" if is_equivalent(mutant.key) else "survived"
    return mutant


def run(notebooks: list[str] | None = None, exercises: list[str] | None = None, *, jobs: int = 2,
        variables: bool = False,
        out=sys.stdout, progress=sys.stderr) -> tuple[list[Mutant], list[tuple]]:
    """Generate and grade the mutants; return them, and the listed equivalent mutants
    (of the notebooks and exercises graded) that no longer exist."""
    from autograder.engine import pool
    from autograder.engine.preflight import preflight
    from autograder.engine.sandbox import Limits
    limits = Limits(cell_timeout=CELL_TIMEOUT, notebook_timeout=NOTEBOOK_TIMEOUT)
    sources = solution_notebooks(notebooks)
    pool.prestart(jobs, limits, *pool.settings())
    preflight(limits)
    mutants: list[Mutant] = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        bases = {name: base_notebook(nb, Path(tmp), name) for name, nb in sources.items()}
        for name, base in bases.items():
            failed = grade_base(base, limits)
            if failed:
                raise SystemExit(f"{name}: the solution notebook itself fails, so mutants prove "
                                 f"nothing: " + "; ".join(failed))
        for name, nb in sources.items():
            mutants += notebook_mutants(name, nb, exercises, variables=variables)
        done, start = 0, time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
            futures = [ex.submit(grade_mutant, m, bases[m.notebook], limits) for m in mutants]
            for future in as_completed(futures):
                m = future.result()
                done += 1
                if m.status in ("survived", "grader error", "equivalent, killed"):
                    print(f"{m.status.upper()}: {m.line()}" +
                          (f"\n  {m.message}" if m.message else ""), file=out, flush=True)
                if progress is not None and progress.isatty():
                    print(f"\r{done}/{len(mutants)} mutants, {time.monotonic() - start:.0f} s",
                          end="", file=progress, flush=True)
        if progress is not None and progress.isatty():
            print(file=progress)
    present = {m.key for m in mutants}
    listed = [*EQUIVALENT, *(EQUIVALENT_VARIABLES if variables else ())]
    stale = [k for k in listed if k[0] in sources and (not exercises or k[1] in exercises)
             and k not in present]
    return mutants, stale


def summary(mutants: list[Mutant], stale: list[tuple], seconds: float | None = None) -> str:
    count = {s: sum(m.status == s for m in mutants) for s in ("killed", "equivalent", "survived",
                                                              "grader error")}
    graded = len(mutants) - count["equivalent"]
    score = 100.0 * count["killed"] / graded if graded else 100.0
    lines = [f"{len(mutants)} mutants: {count['killed']} killed, {count['equivalent']} equivalent, "
             f"{count['survived']} survived, {count['grader error']} grader errors"]
    for name in dict.fromkeys(m.notebook for m in mutants):
        mine = [m for m in mutants if m.notebook == name]
        k = sum(m.status == "killed" for m in mine)
        e = sum(m.status == "equivalent" for m in mine)
        lines.append(f"  {name}: {len(mine)} mutants, {k} killed, {e} equivalent, "
                     f"score {100.0 * k / max(1, len(mine) - e):.1f}%")
    lines += [f"listed as equivalent but no longer generated: {k}" for k in stale]
    lines += [f"listed as equivalent but killed (a correct answer fails, or the entry is wrong): "
              f"{m.line()}" for m in mutants if m.status == "equivalent, killed"]
    lines.append(f"mutation score: {score:.1f}% of {graded} non-equivalent mutants killed"
                 + (f" ({seconds:.0f} s)" if seconds is not None else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", action="append", metavar="NAME",
                        help="only this notebook, e.g. 02_fully_connected (repeatable)")
    parser.add_argument("--exercise", action="append", metavar="GRADE_ID",
                        help="only the cell of this exercise (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, metavar="N", help="mutants graded at once")
    parser.add_argument("--variables", action="store_true",
                        help="also replace each variable read by another variable of its scope "
                             "(many more mutants; not part of the default run)")
    parser.add_argument("--list", action="store_true", help="print the mutants without grading them")
    parser.add_argument("--json", metavar="FILE", help="write every mutant and its outcome as JSON")
    args = parser.parse_args(argv)
    if args.list:
        for name, nb in solution_notebooks(args.notebook).items():
            for m in notebook_mutants(name, nb, args.exercise, variables=args.variables):
                tag = "  (equivalent)" if is_equivalent(m.key) else ""
                print(m.line() + tag)
        return 0
    start = time.monotonic()
    mutants, stale = run(args.notebook, args.exercise, jobs=args.jobs, variables=args.variables)
    print(summary(mutants, stale, time.monotonic() - start))
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{k: v for k, v in dataclasses.asdict(m).items() if k != "source"} for m in mutants],
            indent=1) + "\n")
    if any(m.status == "grader error" for m in mutants):
        return 3
    return 1 if stale or any(m.status in ("survived", "equivalent, killed") for m in mutants) else 0


if __name__ == "__main__":
    sys.exit(main())
