"""Checks for ``01_matmul``: matrix multiplication four ways, from three loops to einsum.

The reference is PyTorch's own ``@``, computed here in float64. A float32 answer is
accepted when every entry is within the classic rounding bound for a dot product of
length K, whatever order the terms were added in (Higham, *Accuracy and Stability of
Numerical Algorithms*, §3.1): ``|c - exact| <= gamma_K * (|a| @ |b|)`` with
``gamma_K = K*u / (1 - K*u)`` and ``u = 2**-24``. So the tolerance follows from the
arithmetic instead of being tuned, and any real mistake is far outside it.
"""

from __future__ import annotations

import ast
import contextlib

import torch

from ...authoring import (
    Fail,
    NotImplementedYet,
    Rule,
    aliases,
    call,
    describe,
    find_banned,
    parse,
    record_compared,
    require_tensor,
    shape_str,
)
from . import lesson

NB = "01_matmul"
_PRODUCTS = ("matmul", "mm", "bmm", "einsum", "dot", "tensordot", "inner", "mv", "vdot",
             "addmm", "addmv", "addbmm", "baddbmm", "chain_matmul")
_BANNED = (*(f"torch.{p}" for p in _PRODUCTS), "torch.nn", "torch.linalg",
           *(f"numpy.{p}" for p in ("matmul", "dot", "einsum", "tensordot", "inner", "vdot")),
           "operator.matmul", "operator.imatmul")
FROM_SCRATCH = Rule(prefixes=_BANNED, methods=(*_PRODUCTS, "__matmul__", "__rmatmul__"),
                           matmul_operator=True)
RULE_HINT = ("Inside the loop versions, @, matmul, mm, dot, einsum and their relatives are off "
             "limits: the exercise is to rebuild them from indexing, *, + and .sum().")
EINSUM_RULE = Rule(prefixes=tuple(p for p in _BANNED if not p.endswith("einsum")),
                          methods=tuple(m for m in (*_PRODUCTS, "__matmul__", "__rmatmul__")
                                        if m != "einsum"),
                          matmul_operator=True)
EINSUM_HINT = "This version should hand the whole product to torch.einsum, and nothing else."
USES_EINSUM = Rule(prefixes=("torch.einsum",), methods=("einsum",))

# (rows of a, columns of a = rows of b, columns of b): non-square first, so that a
# transposed result shows up as a wrong shape; then a square one, where it cannot.
CASES = ((5, 3, 4), (1, 7, 1), (4, 4, 4), (6, 784, 10))
# Shapes that cannot be multiplied. The second is the sneaky one: a single column
# broadcasts against anything, so only an explicit check refuses it.
INCOMPATIBLE = (((2, 3), (5, 2)), ((4, 1), (2, 3)))
U32 = 2.0 ** -24                # unit roundoff of float32


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    k = a.shape[1]
    gamma = k * U32 / (1 - k * U32)
    return gamma * (a.double().abs() @ b.double().abs())


def _within(got: torch.Tensor, target: torch.Tensor, bound: torch.Tensor) -> bool:
    return got.shape == target.shape and bool(((got.double() - target).abs() <= bound).all())


def _like(got: torch.Tensor, target: torch.Tensor) -> bool:
    """Loose match, to recognise a known wrong answer (not to accept an answer)."""
    if got.shape != target.shape:
        return False
    scale = max(float(target.abs().max()), 1.0) if target.numel() else 1.0
    return bool(torch.allclose(got.double(), target.double(), rtol=1e-3, atol=1e-4 * scale))


def _mismatch(got: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor) -> list[str]:
    gap = (got.double() - expected).abs()
    bad = ~(gap <= bound)
    record_compared(got, expected, bad=bad)      # for the "expected vs got" table, when shown
    idx = tuple(int(i) for i in bad.nonzero()[0])
    gap = torch.where(torch.isnan(gap), torch.full_like(gap, float("inf")), gap)
    where = ", ".join(map(str, idx))
    return [f"First mismatch at index [{where}]: expected {expected[idx].item():.6g}, "
            f"got {got[idx].item():.6g}  ({int(bad.sum())} of {bad.numel()} entries differ).",
            f"Largest difference: {gap.max().item():.4g}."]


def judge_product(title: str, got, a: torch.Tensor, b: torch.Tensor, *, loops: bool) -> None:
    """Fail unless ``got`` is ``a @ b``; name the classic mistakes when we can see them."""
    got = require_tensor(got, f"{title}: the result")
    expected, bound = a.double() @ b.double(), _bound(a, b)
    shapes = f"a has shape {shape_str(a.shape)} and b has shape {shape_str(b.shape)}"
    given = f"a of shape {shape_str(a.shape)} and b of shape {shape_str(b.shape)}"
    transposed_hint = ("Entry [i, j] of the product pairs row i of a with column j of b; "
                       "check which index is which where you store each entry.")
    if got.shape != expected.shape:
        if got.shape == expected.T.shape and _within(got, expected.T, bound.T):
            raise Fail(f"{title}: the result is transposed.",
                       f"When {shapes}, a @ b has shape {shape_str(expected.shape)}; you returned its "
                       f"transpose, shape {shape_str(got.shape)}.", hint=transposed_hint)
        raise Fail(f"{title}: the result has the wrong shape.",
                   f"When {shapes}, a @ b has shape {shape_str(expected.shape)}; got {describe(got)}.",
                   hint="The product has one row for each row of a and one column for each column "
                        "of b: create the result with that shape.")
    if not got.is_floating_point():
        raise Fail(f"{title}: the result has an integer dtype.", f"Got {describe(got)}.",
                   hint="Products of floats are floats: create the result as a float tensor "
                        "(torch.zeros gives float32).")
    if _within(got, expected, bound):
        return
    details = [f"With {given}:", *_mismatch(got, expected, bound)]
    if got.shape[0] == got.shape[1] and got.shape[0] > 1 and _within(got, expected.T, bound.T):
        raise Fail(f"{title}: the result is transposed.", *details,
                   "It equals the transpose of a @ b (for square matrices the shape cannot tell).",
                   hint=transposed_hint)
    if loops:
        if bool((got == 0).all()):
            raise Fail(f"{title}: the result is all zeros.", *details,
                       hint="The sums never reached the result: store each entry's total in it.")
        k = a.shape[1]
        last = a[:, k - 1:].double() * b[k - 1:, :].double()
        if k > 1 and _like(got, last):
            raise Fail(f"{title}: each entry holds only the last product a[i, k] * b[k, j].",
                       *details, hint="Assigning with = replaces the entry on every step of the "
                                      "innermost loop; add each product to it instead.")
        running = (expected.reshape(-1).cumsum(0).reshape(expected.shape), expected.cumsum(1))
        if expected.numel() > 1 and any(_like(got, r) for r in running):
            raise Fail(f"{title}: the entries are running totals.", *details,
                       "Each entry also contains the sums of the entries computed before it.",
                       hint="A total that is never set back to zero carries over from one entry "
                            "to the next: every entry's sum must start from zero.")
    raise Fail(f"{title}: the result has the wrong value.", *details,
               f"Expected {describe(expected.float())}; got {describe(got)}.")


def _refuses_bad_shapes(sub, title: str, fn: str) -> None:
    """Each version must raise (any error) for shapes that cannot be multiplied."""
    for k, (sa, sb) in enumerate(INCOMPATIBLE):
        a, b = _randn(*sa, seed=900 + 2 * k), _randn(*sb, seed=901 + 2 * k)
        ev = sub.evaluate(f"result = {fn}(a, b)", inputs={"a": a, "b": b}, outputs=("result",))
        if ev.status == "timeout":
            raise Fail(f"{title}: did not finish in time for a {shape_str(sa)} and a "
                       f"{shape_str(sb)} matrix.",
                       hint="Look for a loop that never ends.")
        if ev.error:
            if ev.error.get("ename") == "NotImplementedError":
                raise NotImplementedYet(f"{title}: not implemented yet.")
            continue        # refused: any error will do
        raise Fail(f"{title}: accepted a {shape_str(sa)} and a {shape_str(sb)} matrix, which cannot be "
                   f"multiplied.",
                   f"a has {sa[1]} column{'s' * (sa[1] != 1)} but b has {sb[0]} rows; instead of an "
                   f"error your function returned {describe(ev.values.get('result'))}.",
                   hint="Compare a's number of columns with b's number of rows at the start, and stop "
                        "with an error (assert, or raise ValueError) when they differ: a silently "
                        "wrong answer is much harder to track down than an error.")


def _loop_depth(source: str) -> int:
    """How deeply loops (for, while, comprehensions) nest in ``source``."""
    try:
        tree = parse(source)
    except (SyntaxError, ValueError):
        return 0

    def depth(node: ast.AST) -> int:
        own = 1 if isinstance(node, (ast.For, ast.AsyncFor, ast.While)) else 0
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            own = len(node.generators)
        return own + max((depth(child) for child in ast.iter_child_nodes(node)), default=0)

    return depth(tree)


def _check(sub, fn: str, *, seed: int, loops: bool, max_loops: int | None = None,
           what_loops: str = "", parts=None) -> None:
    """The product on every case, the inputs left alone, then the refusal of bad shapes.

    With ``parts`` (matmul_loops' recorder) the product and the shape check are judged
    apart: the shape check is judged even when the product is wrong, and passes only
    when the function refuses every incompatible pair *and* accepted every compatible one
    (a function that raises for everything checks no shape).
    """
    title = f"{fn}(a, b)"
    judged = contextlib.nullcontext if parts is None else parts.judge
    refused_good: list[str] = []
    with judged("product"):
        for k, (n, kk, m) in enumerate(CASES):
            a, b = _randn(n, kk, seed=seed + 2 * k), _randn(kk, m, seed=seed + 2 * k + 1)
            try:
                called = call(sub, title, fn, a, b, hint_on_error=_error_hint(a, b))
            except NotImplementedYet:
                raise
            except Fail:
                refused_good.append(f"a {shape_str(a.shape)} and a {shape_str(b.shape)} matrix")
                raise
            judge_product(title, called.result, a, b, loops=loops)
            for name, before, after in (("a", a, called.args[0]), ("b", b, called.args[1])):
                if not isinstance(after, torch.Tensor) or not torch.equal(after, before):
                    raise Fail(f"{title}: your function changed its input `{name}`.",
                               hint="Build the result in a new tensor and leave a and b as they were.")
    if parts is not None:
        with parts.judge("shape check"):
            if refused_good:
                raise Fail(f"{title}: raised an error for {refused_good[0]}, which can be multiplied, "
                           "so refusing the shapes that cannot tells nothing apart.",
                           hint="A shape check compares a's number of columns with b's number of "
                                "rows, and lets every pair through where they are equal.")
            _refuses_bad_shapes(sub, title, fn)
    else:
        _refuses_bad_shapes(sub, title, fn)
    source = sub.source(fn)
    if max_loops is not None and source and _loop_depth(source) > max_loops:
        raise Fail(f"{title}: the values are right, but it nests {_loop_depth(source)} loops.",
                   f"This version should need {what_loops}.",
                   hint="Let PyTorch do the innermost loop for you: an elementwise operation "
                        "on whole rows or columns runs in compiled code.")


def _error_hint(a: torch.Tensor, b: torch.Tensor):
    def hint(error: dict) -> str | None:
        name = error.get("ename")
        if name in ("AssertionError", "ValueError"):
            return (f"a is {shape_str(a.shape)} and b is {shape_str(b.shape)}: a's columns equal b's "
                    f"rows, so these can be multiplied. Does your shape check compare the right sizes?")
        if name == "IndexError":
            return ("An index ran past the end of a tensor: i runs over the rows of a, j over the "
                    "columns of b, and k over the columns of a (which are the rows of b).")
        if name == "RuntimeError" and "size of tensor" in error.get("evalue", ""):
            return ("Two operands did not broadcast. Write down the shape of each operand, "
                    "lining them up from the right.")
        return None
    return hint


# The first version is where a student first meets the question "can these be multiplied
# at all?": the product and the refusal of shapes that cannot be multiplied score apart.
MATMUL_LOOPS_PARTS = {"product": 1, "shape check": 1}


@lesson.exercise(NB, "matmul_loops", 2, "matmul_loops(a, b)", rule=FROM_SCRATCH, rule_hint=RULE_HINT,
                 parts=MATMUL_LOOPS_PARTS)
def matmul_loops(sub, parts, *, seed: int = 100) -> None:
    _check(sub, "matmul_loops", seed=seed, loops=True, parts=parts)


@lesson.exercise(NB, "matmul_elementwise", 2, "matmul_elementwise(a, b)",
          rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def matmul_elementwise(sub, *, seed: int = 200) -> None:
    _check(sub, "matmul_elementwise", seed=seed, loops=True, max_loops=2,
           what_loops="two loops (rows of a, columns of b): the sum over k is one elementwise "
                      "product of a row and a column, then .sum()")


@lesson.exercise(NB, "matmul_broadcast", 2, "matmul_broadcast(a, b)",
          rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def matmul_broadcast(sub, *, seed: int = 300) -> None:
    _check(sub, "matmul_broadcast", seed=seed, loops=True, max_loops=1,
           what_loops="one loop, over the rows of a: broadcasting computes a whole row of the "
                      "result at once")


@lesson.exercise(NB, "matmul_einsum", 2, "matmul_einsum(a, b)", rule=EINSUM_RULE, rule_hint=EINSUM_HINT)
def matmul_einsum(sub, *, seed: int = 400) -> None:
    _check(sub, "matmul_einsum", seed=seed, loops=False)
    source = sub.source("matmul_einsum")
    if source and not find_banned(source, USES_EINSUM, aliases(sub.all_source())):
        raise Fail("matmul_einsum(a, b): the values are right, but it does not call torch.einsum.",
                   hint="Describe the product with an einsum subscript string: name the axes of "
                        "a and of b, and the axes of the result.")
