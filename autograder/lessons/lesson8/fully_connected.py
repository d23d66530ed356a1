"""Checks for ``02_fully_connected``: data, normalisation, lin, relu, init, model, mse.

Every reference is computed here, in the grader's process, from PyTorch's own
operators (``F.linear``, ``torch.relu``, ``F.mse_loss``, ``init.kaiming_normal_``) or
literals. Later exercises are run on the grader's inputs (its own weights, its own
``lin``/``relu``) so that an earlier mistake is not charged twice.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ...authoring import (
    ALPHA,
    MISSING,
    Fail,
    NumpyArray,
    Opaque,
    Rule,
    call,
    cell_error,
    close,
    describe,
    difference,
    fail_on_error,
    normal_quantile,
    record_weights,
    require_named_squeeze,
    require_tensor,
    shape_str,
    violations,
    weight_bounds,
    weight_stats,
)
from . import lesson

NB = "02_fully_connected"
FROM_SCRATCH = Rule(
    prefixes=("torch.nn", "torch.relu", "torch.relu_", "torch.clamp_min_", "torch.nn.functional",
              "torch.nn.init", "torch.nn.functional.mse_loss", "torch.nn.functional.linear"),
    methods=("relu", "relu_"))
RULE_HINT = ("Inside your own functions, torch.nn, torch.nn.functional, torch.nn.init and "
             "torch.relu are off limits: rebuild them from plain tensor operations "
             "(arithmetic, @, clamp/clamp_min, where, randn).")
# The lesson's numbers: the training set's mean and std, the validation set's after.
TRAIN_MEAN, TRAIN_STD = 0.1304, 0.3073
N_TRAIN, N_VALID, N_PIXELS, N_CLASSES = 50_000, 10_000, 784, 10
REF_LIN = "lambda x, w, b: x @ w + b"
REF_NORMALIZE = "lambda x, m, s: (x - m) / s"
# The lesson's own reading of the file (inside a worker, autograder.data offers only mnist_path).
REF_GET_DATA = ("lambda: (lambda d: tuple(torch.tensor(a) for a in (*d[0], *d[1])))(__import__('pickle').load("
                "__import__('gzip').open(__import__('autograder.data', fromlist=['mnist_path']).mnist_path(), "
                "'rb'), encoding='latin-1'))")
REF_RELU = "lambda x: x.clamp_min(0.)"


@functools.lru_cache(maxsize=1)
def mnist() -> tuple[torch.Tensor, ...]:
    """The grader's own copy of the lesson's data (x_train, y_train, x_valid, y_valid)."""
    from ...authoring import load_mnist_tensors
    return load_mnist_tensors()


@functools.lru_cache(maxsize=1)
def normalized() -> dict[str, torch.Tensor]:
    """x_train and x_valid normalised with the training set's mean and std."""
    xt, _, xv, _ = mnist()
    mean, std = xt.mean(), xt.std()
    # (x - mean) / std, dividing in place: the same numbers without a 157 MB temporary
    return {"x_train": (xt - mean).div_(std), "x_valid": (xv - mean).div_(std), "mean": mean, "std": std}


lesson.prefetch(NB)(normalized)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed))


def _value(title: str, got, expected: torch.Tensor, *, what="result", hints=()) -> None:
    """Fail unless ``got`` is a tensor equal to ``expected``; ``hints`` are (tensor, hint)
    pairs of known wrong answers, tried in order when the value is wrong."""
    got = require_tensor(got, f"{title}: the {what}")
    if got.shape != expected.shape:
        for wrong, hint in hints:
            if wrong is not None and got.shape == wrong.shape and close(got, wrong):
                raise Fail(f"{title}: the {what} has the wrong shape.",
                           f"Expected shape {shape_str(expected.shape)}, got {shape_str(got.shape)}.", hint=hint)
        raise Fail(f"{title}: the {what} has the wrong shape.",
                   f"Expected {describe(expected)}.", f"Got {describe(got)}.")
    if not got.is_floating_point() and expected.is_floating_point():
        raise Fail(f"{title}: the {what} has an integer dtype.",
                   f"Expected {describe(expected)}.", f"Got {describe(got)}.")
    if close(got, expected):
        return
    for wrong, hint in hints:
        if wrong is not None and close(got, wrong):
            raise Fail(f"{title}: the {what} has the wrong value.", *difference(got, expected), hint=hint)
    raise Fail(f"{title}: the {what} has the wrong value.", *difference(got, expected),
               f"Expected {describe(expected)}; got {describe(got)}.")


def _unchanged(title: str, before: torch.Tensor, after, name: str) -> None:
    after = require_tensor(after, f"{title}: {name} after the call")
    if after.shape != before.shape or not torch.equal(after, before):
        raise Fail(f"{title}: your function changed its input `{name}` in place.",
                   *difference(after, before) if after.shape == before.shape else (),
                   hint="Methods ending in an underscore (like clamp_min_) and assignments "
                        "such as x[x < 0] = 0 overwrite the caller's tensor; compute a new tensor instead.")


# The data checks first compare this many grader-chosen rows of each MNIST-sized tensor
# (and its shape) in the worker's answer: a correct submission passes without moving
# 190 MB between processes. Anything else takes the full comparison, which also says
# what is wrong.
PROBE_ROWS = 1024


def _probe_rows(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=_gen(seed + n))[:PROBE_ROWS].sort().values


def _rows_match(got, refs: list[torch.Tensor], rows: list[torch.Tensor], same) -> bool:
    """Whether a probe's answer, one ``(shape, rows)`` pair per reference, matches."""
    if not isinstance(got, (tuple, list)) or len(got) != len(refs):
        return False
    for item, ref, idx in zip(got, refs, rows, strict=True):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            return False
        shape, part = item
        if (not isinstance(shape, (tuple, list)) or tuple(shape) != tuple(ref.shape)
                or not isinstance(part, torch.Tensor) or part.shape != (len(idx), *ref.shape[1:])
                or not same(part, ref[idx])):
            return False
    return True


def _judge_cell(sub, grade_id: str, names: tuple[str, ...], definitions: dict[str, str],
                judge, *, seed: int | None = None, overrides: dict | None = None,
                probe=None) -> None:
    """Judge the globals an exercise's cell binds, without charging earlier mistakes twice.

    The notebook's own globals are judged first. If they fail (or the cell raised when the
    notebook ran), the cell is run again with the grader's versions of the earlier
    functions it may call (``definitions``) and of the earlier values it reads
    (``overrides``); if that passes, the mistake belongs to those earlier exercises and
    this one passes. Otherwise the first failure (the student's own globals, or the
    cell's error) is the one reported.
    """
    run = sub.cell_run(grade_id)
    if run is not None and run.status == "error":      # its globals are stale: only the re-run counts
        first = cell_error(lesson[grade_id], run)
    elif probe is not None and probe(sub):              # the fast path of a correct cell
        return
    else:
        try:
            judge(sub.get(*names))
            return
        except Fail as fail:
            first = fail
    source = sub.source(grade_id)
    if source is None:
        raise first
    ev = sub.evaluate(source, definitions=definitions, overrides=overrides, outputs=names, seed=seed)
    if ev.error:
        raise first
    try:
        judge(ev.values)
    except Fail:
        raise first from None


# ----------------------------------------------------------------------------- data
_GET_DATA_PROBE = """
_got = get_data()
result = None
if isinstance(_got, (tuple, list)) and len(_got) == 4:
    result = [(tuple(_v.shape), _v[_i]) for _v, _i in zip(_got, rows)]
"""


@lesson.exercise(NB, "get_data", 2, "get_data()")
def get_data(sub, *, seed: int = 0) -> None:
    title = "get_data()"
    refs = list(mnist())
    rows = [_probe_rows(r.shape[0], seed) for r in refs]
    ev = sub.evaluate(_GET_DATA_PROBE, inputs={"rows": rows})
    if ev.status == "timeout":
        fail_on_error(title, ev)
    if not ev.error and _rows_match(ev.values.get("result"), refs, rows,
                                    lambda part, ref: torch.equal(part.to(ref.dtype), ref)):
        return
    got = call(sub, title, "get_data").result
    if isinstance(got, Opaque) and got.type_name in ("map", "generator", "zip", "filter"):
        raise Fail(f"{title} returned a `{got.type_name}` object, which is lazy and cannot be indexed.",
                   f"Unpacking it once works, but `get_data()[1]` raises "
                   f"TypeError: '{got.type_name}' object is not subscriptable.",
                   hint="A map only promises values; materialise it into a sequence of tensors "
                        "before you return it.")
    if not isinstance(got, (tuple, list)):
        raise Fail(f"{title} should return four tensors (x_train, y_train, x_valid, y_valid).",
                   f"Got {describe(got)}.")
    if len(got) != 4:
        raise Fail(f"{title} should return four things: x_train, y_train, x_valid, y_valid.",
                   f"Got {describe(got)}.",
                   hint="The file holds training, validation and test sets; the lesson uses the first two.")
    names = ("x_train", "y_train", "x_valid", "y_valid")
    for name, value, ref in zip(names, got, mnist()):
        if isinstance(value, NumpyArray):
            raise Fail(f"{title}: {name} is a numpy array, not a torch tensor.", f"Got {describe(value)}.",
                       hint="pickle gives numpy arrays; convert each one to a tensor before returning.")
        value = require_tensor(value, f"{title}: {name}")
        if value.shape != ref.shape:
            shapes = [shape_str(r.shape) for r in mnist()]
            raise Fail(f"{title}: {name} has the wrong shape.",
                       f"Expected {shape_str(ref.shape)}, got {shape_str(value.shape)}.",
                       f"The four results should have shapes {', '.join(shapes)}, in that order.",
                       hint="Check the order of what you return, and that you took the training and "
                            "validation sets (the first two pairs in the file).")
        if not torch.equal(value.to(ref.dtype), ref):
            raise Fail(f"{title}: {name} does not hold the file's values.", *difference(value, ref),
                       hint="Return the arrays exactly as they are in the file: no scaling or reordering yet.")


@lesson.exercise(NB, "normalize", 1, "normalize(x, m, s)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def normalize(sub, *, seed: int = 1) -> None:
    title = "normalize(x, m, s)"
    x = _randn(6, 5, seed=seed) * 3 + 1
    # m and s are clearly not x's own statistics (as when the validation set is normalised
    # with the training set's), so a normalize that ignores them cannot pass.
    own_mean, own_std = x.mean(), x.std()
    m, s = own_mean + 1.5 * own_std, own_std * 0.4
    called = call(sub, title, "normalize", x, m, s)
    _value(title, called.result, (x - m) / s, hints=[
        ((x - own_mean) / own_std,
         "Your normalize ignores m and s and uses x's own mean and std. That is why they are "
         "parameters: the validation set must be normalised with the training set's mean and "
         "std, not its own, so use the m and s you are given."),
        (x - m, "You subtracted the mean; dividing by the standard deviation is the other half."),
        (x - m / s, "Operator precedence: division binds tighter than subtraction."),
        (x / s - m, "Operator precedence: subtract first, then divide."),
        ((x - m) * s, "Multiply or divide? Normalising scales the spread down to 1."),
        ((x - s) / m, "m is the mean to subtract and s the std to divide by: they are swapped.")])
    _unchanged(title, x, called.args[0], "x")
    called = call(sub, title, "normalize", x, float(m), float(s))
    _value(title + " with float m and s", called.result, (x - m) / s)


@lesson.exercise(NB, "normalize_data", 2, "normalize_data", reruns=True)
def normalize_data(sub, **_) -> None:
    _judge_cell(sub, "normalize_data", ("x_train", "x_valid"),
                {"normalize": REF_NORMALIZE, "get_data": REF_GET_DATA}, _judge_normalized,
                probe=_normalized_probe)


def _normalized_probe(sub, seed: int = 0) -> bool:
    ref = normalized()
    refs = [ref["x_train"], ref["x_valid"]]
    rows = [_probe_rows(r.shape[0], seed) for r in refs]
    ev = sub.evaluate("result = [(tuple(x_train.shape), x_train[rows[0]]), "
                      "(tuple(x_valid.shape), x_valid[rows[1]])]", inputs={"rows": rows})
    return not ev.error and _rows_match(ev.values.get("result"), refs, rows,
                                        lambda part, ref: close(part, ref, rtol=1e-3, atol=1e-4))


def _judge_normalized(values: dict) -> None:
    title = "x_train and x_valid after normalising"
    xt_raw, _, xv_raw, _ = mnist()
    ref = normalized()
    mean, std = ref["mean"], ref["std"]
    for name, raw in (("x_train", xt_raw), ("x_valid", xv_raw)):
        got = require_tensor(values[name], f"{title}: {name}",
                             hint_numpy="get_data should give tensors, so that normalising keeps them tensors.")
        expected = ref[name]
        if got.shape != expected.shape:
            raise Fail(f"{title}: {name} has the wrong shape.",
                       f"Expected {shape_str(expected.shape)}, got {shape_str(got.shape)}.")
        if close(got, expected, rtol=1e-3, atol=1e-4):
            continue
        own = (raw - raw.mean()) / raw.std()
        if name == "x_valid" and close(got, own, rtol=1e-3, atol=1e-4):
            raise Fail(f"{title}: x_valid was normalised with its own mean and std.",
                       f"Expected mean {expected.mean():.4f} and std {expected.std():.4f} "
                       f"(using the training set's {mean:.4f} and {std:.4f});",
                       f"got mean {got.mean():.4f} and std {got.std():.4f}.",
                       hint="Validation data stands for data the model has never seen: it must be "
                            "transformed exactly like the training data, with the training statistics.")
        if close(got, raw):
            raise Fail(f"{title}: {name} is not normalised yet.",
                       f"It still has mean {got.mean():.4f} and std {got.std():.4f}.",
                       hint="Rebind the name to the normalised tensor (x = normalize(x, ...)).")
        raise Fail(f"{title}: {name} has the wrong values.",
                   f"Expected mean {expected.mean():.4f}, std {expected.std():.4f}; "
                   f"got mean {got.float().mean():.4f}, std {got.float().std():.4f}.",
                   hint="Compute the training mean and std once, before changing x_train, "
                        "and use them for both sets.")


@lesson.exercise(NB, "dims", 1, "n, m, c", reruns=True)
def dims(sub, **_) -> None:
    # When the cell's own values fail (or it raised because get_data did), it is run again
    # on the grader's data: an earlier mistake is not charged twice.
    _, yt, _, yv = mnist()
    ref = normalized()
    _judge_cell(sub, "dims", ("n", "m", "c"), {}, _judge_dims,
                overrides={"x_train": ref["x_train"], "y_train": yt, "x_valid": ref["x_valid"], "y_valid": yv})


def _judge_dims(values: dict) -> None:
    title = "n, m, c"
    for name, want, what in (("n", N_TRAIN, "rows of x_train"), ("m", N_PIXELS, "columns of x_train"),
                             ("c", N_CLASSES, "classes")):
        got = values[name]
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            got = int(got.item())
        if got is MISSING:
            raise Fail(f"{title}: `{name}` is not defined.", hint="Bind n, m and c in the dims cell and run it.")
        if type(got) is not int:
            raise Fail(f"{title}: `{name}` should be a whole number ({what}).", f"Got {describe(got)}.")
        if got == want:
            continue
        if name == "c" and got == want - 1:
            raise Fail(f"{title}: c is {got}, one fewer than the number of classes.",
                       hint="Labels start at 0: the largest label is not the count of classes.")
        swapped = {"n": N_PIXELS, "m": N_TRAIN}
        hint = "n is the number of rows (images), m the number of columns (pixels)." \
            if swapped.get(name) == got else None
        raise Fail(f"{title}: `{name}` should be the number of {what}.", f"Got {got}.", hint=hint)


# ----------------------------------------------------------------------------- layers
@lesson.exercise(NB, "lin", 2, "lin(x, w, b)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def lin(sub, *, seed: int = 2, sizes=((5, 7, 3), (64, 784, 50))) -> None:
    title = "lin(x, w, b)"
    for k, (rows, n_in, n_out) in enumerate(sizes):
        x, w, b = (_randn(rows, n_in, seed=seed + k), _randn(n_in, n_out, seed=seed + 100 + k),
                   _randn(n_out, seed=seed + 200 + k))
        called = call(sub, title, "lin", x, w, b, hint_on_error=_orientation_hint)
        expected = F.linear(x, w.t(), b)
        _value(f"{title} with x {shape_str(x.shape)}, w {shape_str(w.shape)}, b {shape_str(b.shape)}",
               called.result, expected, hints=[
                   (x @ w, "The result is x @ w without the bias: add b (it broadcasts over the rows)."),
                   (x @ w - b, "Add the bias, don't subtract it.")])


def _orientation_hint(error: dict) -> str | None:
    if "cannot be multiplied" in str(error.get("evalue", "")) or "size mismatch" in str(error.get("evalue", "")):
        return ("w is stored as (n_in, n_out), so x of shape (rows, n_in) multiplies it directly; "
                "no transpose is needed here.")
    return None


@lesson.exercise(NB, "relu", 1, "relu(x)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def relu(sub, *, seed: int = 3) -> None:
    title = "relu(x)"
    x = _randn(8, 6, seed=seed)
    x[0, :3] = 0.0
    called = call(sub, title, "relu", x)
    _unchanged(title, x, called.args[0], "x")
    _value(title, called.result, torch.relu(x), hints=[
        (x.clamp_max(0.), "You kept the negative part: relu keeps what is above zero."),
        (x.abs(), "relu is not the absolute value: negatives become 0.")])


@lesson.exercise(NB, "shifted_relu", 1, "shifted_relu(x)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def shifted_relu(sub, *, seed: int = 4) -> None:
    title = "shifted_relu(x)"
    x = _randn(8, 6, seed=seed)
    called = call(sub, title, "shifted_relu", x, definitions={"relu": REF_RELU})
    _unchanged(title, x, called.args[0], "x")
    _value(title, called.result, torch.relu(x) - 0.5, hints=[
        (torch.relu(x - 0.5), "Shift after the relu, not before: relu first, then subtract 0.5."),
        (torch.relu(x) + 0.5, "Subtract 0.5; the point is to pull the mean back towards 0."),
        (torch.relu(x), "That is plain relu: shift its output down by 0.5.")])


# ----------------------------------------------------------------------------- initialisation
INIT_CASES = ((784, 50), (50, 200))
INITS = {
    "init_simple": ("1/sqrt(n_in)", lambda i, o: 1 / math.sqrt(i)),
    "init_glorot": ("sqrt(2/(n_in+n_out))", lambda i, o: math.sqrt(2 / (i + o))),
    "init_kaiming": ("sqrt(2/n_in)", lambda i, o: math.sqrt(2 / i)),
}
# Wrong scales students reach for, and what to say when the weights match one of them.
CONFUSIONS = [
    (lambda i, o: 1.0, "The weights have std 1: plain randn, not scaled yet."),
    (lambda i, o: math.sqrt(2 / i), "That is Kaiming's sqrt(2/n_in)."),
    (lambda i, o: 1 / math.sqrt(i), "That is the simplified 1/sqrt(n_in), without Kaiming's factor 2 "
                                    "(which makes up for relu zeroing half the activations)."),
    (lambda i, o: math.sqrt(2 / o), "That uses n_out where n_in belongs — what PyTorch's default "
                                    "fan_in gives for a weight stored as (n_in, n_out), since PyTorch "
                                    "expects (n_out, n_in)."),
    (lambda i, o: 1 / math.sqrt(o), "That divides by sqrt(n_out); the fan-in is n_in."),
    (lambda i, o: math.sqrt(2 / (i + o)), "That is Glorot's sqrt(2/(n_in+n_out))."),
    (lambda i, o: 2 / i, "That is 2/n_in: the square root is missing."),
    (lambda i, o: 1 / i, "That is 1/n_in: the square root is missing."),
]


def judge_weights(title: str, w, n_in: int, n_out: int, sigma: float, formula: str,
                  *, confusions=CONFUSIONS, draws: int = 1) -> None:
    """Fail unless ``w`` looks like N(0, sigma^2) draws of shape (n_in, n_out); with
    ``draws``, ``w`` is that many independent draws side by side, (n_in, n_out * draws)."""
    w = require_tensor(w, f"{title}: the weights")
    if w.shape != (n_in, n_out * draws):
        hint = ("Weights are stored as (n_in, n_out) so that x @ w works; (n_out, n_in) is "
                "PyTorch's nn.Linear layout, not this lesson's.") if w.shape == (n_out, n_in) else None
        raise Fail(f"{title}: the weights have the wrong shape.",
                   f"Expected {shape_str((n_in, n_out))}, got {shape_str(w.shape)}.", hint=hint)
    if not w.is_floating_point():
        raise Fail(f"{title}: the weights should be floats.", f"Got {describe(w)}.")
    record_weights(title, w, sigma, formula, draws=draws)     # for the figure, when one is shown
    s = weight_stats(w)
    n = w.numel()
    bad = violations(s, weight_bounds(n, sigma))
    if not bad:
        return
    over = f" (over {draws} runs of your cell)" if draws > 1 else ""
    detail = (f"Expected mean 0 and std {formula} = {sigma:.4f} for ({n_in}, {n_out}); "
              f"got mean {s['mean']:.4f}, std {s['std']:.4f}{over}.")
    # A mean far from 0 even by the weights' own spread: they are not centred (torch.rand).
    if s["std"] > 0 and abs(s["mean"]) > normal_quantile(1 - ALPHA / 2) * s["std"] / math.sqrt(n):
        raise Fail(f"{title}: the weights are not centred on 0.", detail,
                   hint="Use a normal distribution with mean 0 (torch.randn), not torch.rand.")
    if "scale" in bad:
        # Of the classic wrong scales that fit the weights, name the closest one.
        fits, seen = [], {round(sigma, 12)}
        for scale, hint in confusions:
            alt = scale(n_in, n_out)
            if round(alt, 12) in seen:
                continue
            seen.add(round(alt, 12))
            if s["rms"] > 0 and not violations(s, weight_bounds(n, alt)):
                fits.append((abs(math.log(s["rms"] / alt)), hint))
        raise Fail(f"{title}: the weights have the wrong scale.", detail,
                   hint=min(fits)[1] if fits else
                   f"Draw from a standard normal, then multiply by the std the formula gives ({formula}).")
    if "mean" in bad:
        raise Fail(f"{title}: the weights are not centred on 0.", detail,
                   hint="Use a normal distribution with mean 0 (torch.randn), not torch.rand.")
    raise Fail(f"{title}: the weights do not look normally distributed.", detail,
               f"Their kurtosis is {s['kurtosis']:.2f}; normal draws give about 3.",
               hint="Draw with torch.randn (normal), not torch.rand (uniform).")


def _check_init(sub, name: str, seed: int, cases) -> None:
    formula, scale = INITS[name]
    for k, (n_in, n_out) in enumerate(cases):
        title = f"{name}({n_in}, {n_out})"
        got = call(sub, title, name, n_in, n_out, seed=seed + k).result
        judge_weights(title, got, n_in, n_out, scale(n_in, n_out), formula)


@lesson.exercise(NB, "init_simple", 1, "init_simple(n_in, n_out)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def init_simple(sub, *, seed: int = 10, cases=INIT_CASES) -> None:
    _check_init(sub, "init_simple", seed, cases)


@lesson.exercise(NB, "init_glorot", 1, "init_glorot(n_in, n_out)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def init_glorot(sub, *, seed: int = 20, cases=INIT_CASES) -> None:
    _check_init(sub, "init_glorot", seed, cases)


@lesson.exercise(NB, "init_kaiming", 2, "init_kaiming(n_in, n_out)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def init_kaiming(sub, *, seed: int = 30, cases=INIT_CASES) -> None:
    _check_init(sub, "init_kaiming", seed, cases)


@lesson.exercise(NB, "kaiming_mode", 1, "kaiming_mode")
def kaiming_mode(sub, **_) -> None:
    title = "kaiming_mode"
    mode = sub.get("kaiming_mode")["kaiming_mode"]
    if mode is MISSING:
        raise Fail(f"{title} is not defined.", hint="Bind kaiming_mode to a string in its cell and run it.")
    if not isinstance(mode, str):
        raise Fail(f"{title} should be a string (a mode that torch.nn.init.kaiming_normal_ accepts).",
                   f"Got {describe(mode)}.")
    n_in, n_out = 784, 50
    w = torch.empty(n_in, n_out)
    try:
        torch.nn.init.kaiming_normal_(w, mode=mode, generator=_gen(7))
    except ValueError:
        raise Fail(f"{title}: {mode!r} is not a mode kaiming_normal_ accepts.",
                   hint="kaiming_normal_ takes mode='fan_in' or mode='fan_out'.") from None
    target = math.sqrt(2 / n_in)
    if abs(w.std().item() - target) / target < 0.05:
        return
    raise Fail(f"{title}: with mode={mode!r}, a ({n_in}, {n_out}) weight gets std {w.std():.4f}, "
               f"not sqrt(2/n_in) = {target:.4f}.",
               hint="PyTorch stores a layer's weight as (n_out, n_in), so its 'fan_in' is read from "
                    "dimension 1. Our weight is (n_in, n_out): which of PyTorch's fans is our n_in?")


# ----------------------------------------------------------------------------- model and loss
REF_INITS = {"init_simple": "lambda i, o: torch.randn(i, o) / i ** 0.5",
             "init_glorot": "lambda i, o: torch.randn(i, o) * (2 / (i + o)) ** 0.5",
             "init_kaiming": "lambda i, o: torch.randn(i, o) * (2 / i) ** 0.5"}


# 50 weights alone show Kaiming's sqrt(2/50) instead of w2's 1/sqrt(50) only 7% of the time
# at the grader's false-alarm rate; 40 runs of the cell side by side show it every time
# (scripts/seed_sweep.py measures both).
W2_DRAWS = 40
W2_CONFUSIONS = [(scale, "That is Kaiming's sqrt(2/n_in). Its factor 2 makes up for a relu zeroing half "
                         "of the layer's outputs, and no relu comes after w2.")
                 if hint.startswith("That is Kaiming's") else (scale, hint) for scale, hint in CONFUSIONS]


@lesson.exercise(NB, "params", 2, "w1, b1, w2, b2", reruns=True)
def params(sub, *, seed: int = 60, **_) -> None:
    _judge_cell(sub, "params", ("nh", "w1", "b1", "w2", "b2"), REF_INITS, _judge_params, seed=seed,
                overrides={"n": N_TRAIN, "m": N_PIXELS, "c": N_CLASSES})
    _judge_w2_choice(sub, seed)


def _judge_w2_choice(sub, seed: int) -> None:
    """Which init the cell uses for w2, judged on many runs of the cell (with the grader's
    init functions, so a mistake inside them stays their exercise's). A cell that seeds
    itself gives the same draw every time; repeated draws are counted once."""
    source = sub.source("params")
    if source is None:
        return
    draws: dict[bytes, torch.Tensor] = {}
    for k in range(W2_DRAWS):
        ev = sub.evaluate(source, definitions=REF_INITS, outputs=("w2",), seed=seed + 1 + k,
                          overrides={"n": N_TRAIN, "m": N_PIXELS, "c": N_CLASSES})
        w2 = ev.values.get("w2")
        if ev.error or not isinstance(w2, torch.Tensor) or w2.shape != (50, 1) or not w2.is_floating_point():
            return                     # the notebook's own w2 passed; nothing more to learn here
        draws.setdefault(w2.numpy().tobytes(), w2)
    if len(draws) > 1:
        judge_weights("w1, b1, w2, b2: w2 (simplified init)", torch.cat(list(draws.values()), dim=1),
                      50, 1, 1 / math.sqrt(50), "1/sqrt(n_in)", draws=len(draws), confusions=W2_CONFUSIONS)


def _judge_params(v: dict) -> None:
    title = "w1, b1, w2, b2"
    nh = v["nh"]
    if nh is MISSING:
        raise Fail(f"{title}: nh is not defined.", hint="Set the hidden size nh = 50 in the params cell.")
    if nh != 50 or type(nh) is not int:
        raise Fail(f"{title}: nh should be 50 (the lesson's hidden size).", f"Got {describe(nh)}.")
    for name, shape in (("b1", (50,)), ("b2", (1,))):
        b = require_tensor(v[name], f"{title}: {name}")
        if tuple(b.shape) != shape:
            raise Fail(f"{title}: {name} has the wrong shape.",
                       f"Expected {shape_str(shape)}, got {shape_str(b.shape)}.",
                       hint="A bias has one entry per output of its layer.")
        if not b.is_floating_point() or bool(b.any()):
            raise Fail(f"{title}: {name} should be float zeros.", f"Got {describe(b)}.")
    judge_weights(f"{title}: w1 (Kaiming init)", v["w1"], N_PIXELS, 50, math.sqrt(2 / N_PIXELS), "sqrt(2/n_in)")
    judge_weights(f"{title}: w2 (simplified init)", v["w2"], 50, 1, 1 / math.sqrt(50), "1/sqrt(n_in)",
                  confusions=W2_CONFUSIONS)


@lesson.exercise(NB, "model", 2, "model(xb)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def model(sub, *, seed: int = 40, batch: int | None = None) -> None:
    title = "model(xb)"
    w1, b1 = _randn(N_PIXELS, 50, seed=seed) * math.sqrt(2 / N_PIXELS), _randn(50, seed=seed + 1) * 0.1
    w2, b2 = _randn(50, 1, seed=seed + 2) / math.sqrt(50), _randn(1, seed=seed + 3) * 0.1
    overrides = {"w1": w1, "b1": b1, "w2": w2, "b2": b2}
    definitions = {"lin": REF_LIN, "relu": REF_RELU}
    if batch is None:
        xb, shown = normalized()["x_valid"], "x_valid"
    else:
        xb, shown = _randn(batch, N_PIXELS, seed=seed + 4), f"a batch of {batch}"
    called = call(sub, title, "model", xb, overrides=overrides, definitions=definitions)
    hidden = torch.relu(F.linear(xb, w1.t(), b1))
    expected = F.linear(hidden, w2.t(), b2)
    _value(f"{title} on {shown}", called.result, expected, what="output", hints=[
        (hidden, "That is the hidden layer's output: the model ends with a second lin to one output."),
        (F.linear(F.linear(xb, w1.t(), b1), w2.t(), b2), "The relu between the two layers is missing."),
        (expected.squeeze(-1), "Keep the output as (rows, 1); the loss function deals with the unit axis."),
        (torch.relu(expected), "No relu after the last layer: the output is a raw prediction.")])


@lesson.exercise(NB, "mse", 2, "mse(output, targ)", rule=FROM_SCRATCH, rule_hint=RULE_HINT)
def mse(sub, *, seed: int = 50, sizes=(64, 1, 7)) -> None:
    title = "mse(output, targ)"
    source = sub.source("mse")
    for k, n in enumerate(sizes):
        output, targ = _randn(n, 1, seed=seed + k), _randn(n, seed=seed + 10 + k)
        called = call(sub, title, "mse", output, targ)
        got = require_tensor(called.result, f"{title}: the result")
        expected = F.mse_loss(output.squeeze(-1), targ)
        broadcast = ((output - targ) ** 2).mean()
        if got.numel() != 1:
            raise Fail(f"{title}: the result should be a single number (a 0-d tensor).",
                       f"Output has shape {shape_str(output.shape)} and targ has shape {shape_str(targ.shape)}; "
                       f"got {describe(got)}.",
                       hint="Average over every entry so the loss is one number.")
        value = got.double().reshape(())
        if close(value, expected.double()):
            continue
        details = [f"With output {shape_str(output.shape)} and targ {shape_str(targ.shape)}: "
                   f"expected {expected.item():.6g}, got {value.item():.6g}."]
        if n > 1 and close(value, broadcast.double()):
            raise Fail(f"{title}: the result has the wrong value.", *details,
                       f"Your subtraction produced a {n}×{n} matrix: ({n}, 1) - ({n},) broadcasts.",
                       hint="Remove the unit axis of output before subtracting, and name it: "
                            "the axis of size 1 is the last one.")
        if close(value, (expected * n).double()):
            raise Fail(f"{title}: the result has the wrong value.", *details,
                       hint="That is the sum of squared errors: the mean divides by the number of items.")
        if close(value, expected.sqrt().double()):
            raise Fail(f"{title}: the result has the wrong value.", *details,
                       hint="That is the root of the mean squared error: leave out the square root.")
        raise Fail(f"{title}: the result has the wrong value.", *details)
    require_named_squeeze(title, source)


@lesson.exercise(NB, "float_targets", 1, "y_train, y_valid as floats", reruns=True)
def float_targets(sub, **_) -> None:
    _, yt, _, yv = mnist()
    _judge_cell(sub, "float_targets", ("y_train", "y_valid"), {}, _judge_float_targets,
                overrides={"y_train": yt, "y_valid": yv})


def _judge_float_targets(values: dict) -> None:
    title = "y_train, y_valid"
    _, yt, _, yv = mnist()
    for name, ref in (("y_train", yt), ("y_valid", yv)):
        got = require_tensor(values[name], name)
        if not got.is_floating_point():
            raise Fail(f"{title}: {name} is still {str(got.dtype).removeprefix('torch.')}.",
                       "mse subtracts targets from float predictions; integer targets either fail "
                       "or silently round in some operations.",
                       hint="Convert the targets to floats and rebind the names.")
        if got.shape != ref.shape or not torch.equal(got.double(), ref.double()):
            raise Fail(f"{title}: {name} should hold the same labels as before, as floats.",
                       f"Expected {describe(ref.float())}; got {describe(got)}.")
