"""What a check saw, kept as a few numbers for the pictures that explain it.

Checks call the small functions here at the points where they compare a student's
values with the grader's (``weights``, ``compared``, ``gradient``). Nothing is kept
unless someone will draw it: only inside :func:`recording` (``check()`` in a Jupyter
kernel, or a test cell graded by nbgrader) do they compute anything, so plain and
``--json`` runs pay one context-variable look-up per call.

:func:`extras` adds what needs another look at the submission (the lesson's 8-layer
experiment with the student's initialiser, the statistics of the normalised data, the
matmul speed ladder); it runs only after the exercise was graded, and whatever goes
wrong there never changes a result.

Everything kept is small and JSON-ready: histogram counts, a handful of floats and
strings — never whole tensors. Strings may come from the student (names, values):
whoever renders them escapes them (see :mod:`autograder.display`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from typing import Any, Iterator

__all__ = ["recording", "active", "weights", "uniform", "fraction", "compared", "gradient", "extras"]

_SINK: contextvars.ContextVar[dict | None] = contextvars.ContextVar("evidence", default=None)
HIST_BINS = 40
MAX_PANELS = 3          # weight histograms per exercise


@contextlib.contextmanager
def recording() -> Iterator[dict]:
    """Collect what the checks run inside this block see, into the dict it yields."""
    seen: dict = {}
    token = _SINK.set(seen)
    try:
        yield seen
    finally:
        _SINK.reset(token)


def active() -> bool:
    return _SINK.get() is not None


def _summary(t) -> dict:
    """Shape, dtype, mean and std of a tensor (the "expected vs got" table's rows)."""
    out = {"shape": [int(s) for s in t.shape], "dtype": str(t.dtype).removeprefix("torch.")}
    if t.numel() and not t.dtype.is_complex:
        v = t.detach().double()
        out["mean"] = _num(v.mean().item())
        out["std"] = _num(v.std().item()) if t.numel() > 1 else 0.0
    return out


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def weights(title: str, w, sigma: float, formula: str, *, draws: int = 1) -> None:
    """The student's weights against N(0, sigma²): a histogram over ±4 sigma."""
    seen = _SINK.get()
    if seen is None:
        return
    panels = seen.setdefault("weights", [])
    if len(panels) >= MAX_PANELS or any(p["title"] == title for p in panels):
        return
    import torch
    v = w.detach().double().reshape(-1)
    lo, hi = -4 * sigma, 4 * sigma
    counts = torch.histc(v, bins=HIST_BINS, min=lo, max=hi)       # values outside are left out
    panels.append({"title": title, "sigma": float(sigma), "formula": formula, "lo": lo, "hi": hi,
                   "counts": [int(c) for c in counts.tolist()], "n": int(v.numel()), "draws": draws,
                   "shape": [int(s) for s in w.shape], "mean": _num(v.mean().item()),
                   "std": _num(v.std().item()) if v.numel() > 1 else 0.0,
                   "outside": int(((v < lo) | (v > hi)).sum().item())})


def uniform(title: str, w, bound: float, formula: str) -> None:
    """The student's weights against U(-bound, bound): a histogram over ±1.5 bound. The
    last case judged is always kept (it is the failing one, if any)."""
    seen = _SINK.get()
    if seen is None:
        return
    import torch
    panels = seen.setdefault("uniform", [])
    if any(p["title"] == title for p in panels):
        return
    v = w.detach().double().reshape(-1)
    v = v[torch.isfinite(v)]
    lo, hi = -1.5 * bound, 1.5 * bound
    counts = torch.histc(v, bins=HIST_BINS, min=lo, max=hi) if v.numel() else torch.zeros(HIST_BINS)
    panel = {"title": title, "bound": float(bound), "formula": formula, "lo": lo, "hi": hi,
             "counts": [int(c) for c in counts.tolist()], "n": int(w.numel()),
             "shape": [int(s) for s in w.shape],
             "min": _num(v.min().item()) if v.numel() else None,
             "max": _num(v.max().item()) if v.numel() else None,
             "std": _num(v.std().item()) if v.numel() > 1 else 0.0,
             "outside": int(((v < lo) | (v > hi)).sum().item()), "not_finite": int(w.numel() - v.numel())}
    if len(panels) >= MAX_PANELS:
        panels[-1] = panel
    else:
        panels.append(panel)


def fraction(got: float, n: int, lo: int, hi: int) -> None:
    """What fraction_better returned, and the counts out of n that the grader accepts."""
    seen = _SINK.get()
    if seen is not None and "fraction" not in seen:
        seen["fraction"] = {"got": float(got), "n": int(n), "lo": int(lo), "hi": int(hi)}


def compared(got, expected, *, bad=None) -> None:
    """The first comparison of values that failed: both summaries and the first mismatch."""
    seen = _SINK.get()
    if seen is None or "compare" in seen:
        return
    import torch
    entry = {"expected": _summary(expected), "got": _summary(got)}
    if got.is_floating_point() and expected.is_floating_point():   # any float width is accepted
        entry["expected"]["dtype"] = entry["got"]["dtype"]
    if got.shape == expected.shape and got.numel():
        g, e = got.detach().double(), expected.detach().double()
        if bad is None:
            bad = ~torch.isclose(g, e, rtol=1e-4, atol=1e-5)
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            entry["mismatch"] = {"index": list(idx), "expected": _num(e[idx].item()),
                                 "got": _num(g[idx].item()), "count": int(bad.sum()),
                                 "of": int(bad.numel())}
    seen["compare"] = entry


def gradient(name: str, got, expected, *, tolerance: float | None = None) -> None:
    """The relative error of one gradient against autograd's (the gradient bar chart)."""
    seen = _SINK.get()
    name = name.split()[-1]                 # "the input's inp.g" -> "inp.g"
    if seen is None or not name.endswith(".g"):
        return
    import torch
    grads = seen.setdefault("gradients", {})
    if not isinstance(got, torch.Tensor) or not got.is_floating_point():
        error = None                                # not set, or not a float tensor
    elif got.shape != expected.shape:
        error = math.inf
    else:
        scale = float(expected.detach().double().abs().max()) if expected.numel() else 0.0
        gap = float((got.detach().double() - expected.detach().double()).abs().max()) if got.numel() else 0.0
        error = gap / max(scale, 1e-12) if math.isfinite(gap) else math.inf
    grads[name] = None if error is None else (error if math.isfinite(error) else "inf")
    if tolerance is not None:
        seen["gradient_tolerance"] = tolerance


# ----------------------------------------------------------------------------- extras
LAYERS, WIDTH, BATCH = 8, 100, 500       # the notebook's own activation_scales experiment
_EXPERIMENT = """
result = []
_n_in = 784
for _k in range({layers}):
    result.append({fn}(_n_in, {width}))
    _n_in = {width}
"""


def _rms_through_layers(ws, x) -> list[float]:
    h, out = x.double(), []          # float64: the same digits however torch splits the work
    for w in ws:
        h = (h @ w).clamp_min(0.)
        out.append(float(h.pow(2).mean().sqrt()))
    return out


def _experiment(name: str, sub) -> dict | None:
    """RMS of the activations after each of 8 linear+ReLU layers: the student's
    initialiser against the simplified one and Kaiming's (grader's inputs and matmuls)."""
    import torch
    from .checks.fully_connected import normalized
    code = _EXPERIMENT.format(layers=LAYERS, fn=name, width=WIDTH)   # name: one of INITS, not the student's
    ev = sub.evaluate(code, outputs=("result",), seed=8)
    ws = ev.values.get("result") if not ev.error else None
    shapes = [(784 if k == 0 else WIDTH, WIDTH) for k in range(LAYERS)]
    if (not isinstance(ws, list) or len(ws) != LAYERS
            or any(not isinstance(w, torch.Tensor) or tuple(w.shape) != s or not w.is_floating_point()
                   for w, s in zip(ws, shapes))):
        return None
    yours = _rms_through_layers([w.double() for w in ws], normalized()["x_valid"][:BATCH])
    return {"yours": [_num(v) for v in yours], "references": _reference_curves(), "width": WIDTH,
            "batch": BATCH}


@functools.lru_cache(maxsize=1)
def _reference_curves() -> dict[str, list[float]]:
    """The experiment with the simplified init and Kaiming's (the same for every student)."""
    import torch
    from .checks.fully_connected import normalized
    x = normalized()["x_valid"][:BATCH]
    shapes = [(784 if k == 0 else WIDTH, WIDTH) for k in range(LAYERS)]
    gen = torch.Generator().manual_seed(8)
    return {label: _rms_through_layers([torch.randn(i, o, generator=gen).double() * scale(i)
                                        for i, o in shapes], x)
            for label, scale in (("simplified 1/sqrt(n_in)", lambda i: 1 / math.sqrt(i)),
                                 ("Kaiming sqrt(2/n_in)", lambda i: math.sqrt(2 / i)))}


# Statistics over every STRIDE-th row (grader's and student's alike: a correct answer shows
# exactly the target's numbers), so a class's autograde does not re-read 190 MB per student.
STRIDE = 8
_NORMALIZED_STATS = f"""
result = []
for _t in (x_train, x_valid):
    _f = _t[::{STRIDE}].double()
    result.append([float(_f.mean()), float(_f.std())])
"""


@functools.lru_cache(maxsize=1)
def _reference_stats_cached() -> tuple:
    from .checks.fully_connected import mnist, normalized
    xt, _, xv, _ = mnist()
    ref = normalized()
    return tuple((float(t[::STRIDE].double().mean()), float(t[::STRIDE].double().std()))
                 for t in (xt, xv, ref["x_train"], ref["x_valid"]))


def _reference_stats() -> dict:
    """Mean and std of the raw data and of the grader's normalised data (a fresh dict)."""
    bt, bv, tt, tv = _reference_stats_cached()
    return {"before": {"x_train": list(bt), "x_valid": list(bv)},
            "target": {"x_train": list(tt), "x_valid": list(tv)}}


def _normalize_stats(sub) -> dict | None:
    """Mean and std of the raw data, the student's normalised data, and the targets."""
    ev = sub.evaluate(_NORMALIZED_STATS, outputs=("result",))
    got = ev.values.get("result") if not ev.error else None
    out = _reference_stats()
    if (isinstance(got, list) and len(got) == 2
            and all(isinstance(p, list) and len(p) == 2 and all(isinstance(v, float) for v in p) for p in got)):
        out["yours"] = {"x_train": [_num(v) for v in got[0]], "x_valid": [_num(v) for v in got[1]]}
    return out


MATMUL_VERSIONS = ("matmul_loops", "matmul_elementwise", "matmul_broadcast", "matmul_einsum")
SPEED_SHAPES = ((5, 100), (100, 10))
# Timed where the student's code runs; the best of repeated runs, at most ~50 ms each.
_SPEED = """
import time as _time
result = {}
for _name in names:
    _f = (lambda p, q: p @ q) if _name == "@" else globals().get(_name)
    if _f is None:
        continue
    try:
        _best, _total, _k = None, 0.0, 0
        while _k < 1 or (_total < 0.05 and _k < 200):
            _start = _time.perf_counter()
            _f(a, b)
            _took = _time.perf_counter() - _start
            _best = _took if _best is None else min(_best, _took)
            _total += _took
            _k += 1
        result[_name] = _best
    except Exception:
        pass
"""


def _speed(sub) -> dict | None:
    import torch
    gen = torch.Generator().manual_seed(5)
    a, b = (torch.randn(*s, generator=gen) for s in SPEED_SHAPES)
    ev = sub.evaluate(_SPEED, inputs={"a": a, "b": b, "names": [*MATMUL_VERSIONS, "@"]},
                      outputs=("result",))
    got = ev.values.get("result") if not ev.error else None
    if not isinstance(got, dict):
        return None
    times = {k: float(v) for k, v in got.items()
             if k in (*MATMUL_VERSIONS, "@") and isinstance(v, float) and math.isfinite(v) and v > 0}
    return {"seconds": times, "shapes": [list(s) for s in SPEED_SHAPES]} if times else None


def _layer_stds(sub) -> dict | None:
    """The std after each layer of a default and a Kaiming stack (the grader's weights):
    measured by the student's layer_stats, and by the grader."""
    from .checks import init_pytorch as ip
    x = ip.images()
    out: dict = {"input": _num(float(x.std())), "yours": {}, "grader": {}}
    for kind, kaiming in (("default", False), ("kaiming", True)):
        params = ip._conv_params(ip._gen(ip.LAYER_STATS_SEED), kaiming=kaiming)
        out["grader"][kind] = [_num(s) for _, s in ip.reference_stats(x, params)]
        ev = sub.evaluate("import torch\n" + ip._BUILD_LAYERS, inputs={"x": x, "params": params},
                          outputs=("result",))
        got = ev.values.get("result") if not ev.error else None
        if (isinstance(got, (list, tuple)) and 0 < len(got) <= 16
                and all(isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], (int, float))
                        for p in got)):
            out["yours"][kind] = [_num(float(p[1])) for p in got]
    return out


FRACTION_SAMPLES = 10       # samples of the student's fraction_better that are pictured


def _fraction_stds(sub) -> dict | None:
    """The std after each layer of the stacks the student's fraction_better measures
    (built by the grader's conv_stack, drawn by the grader's kaiming_uniform_, measured by
    the grader's layer_stats), by kind, against the grader's own stacks."""
    import torch
    from .checks import init_pytorch as ip
    x = ip.images()
    ev = sub.evaluate("try:\n    result = fraction_better(n_samples=n)\nfinally:\n    seen = layer_stats.seen",
                      inputs={"n": FRACTION_SAMPLES}, overrides={"x_imgs": x},
                      definitions=ip._picture_defs(), outputs=("result", "seen"), seed=ip.LAYER_STATS_SEED)
    seen = ev.values.get("seen")
    out: dict = {"input": _num(float(x.std())), "yours": {}, "counts": {}, "samples": FRACTION_SAMPLES}
    if isinstance(seen, list):
        groups: dict[str, list] = {}
        for item in seen:
            if (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], (list, tuple)) and len(item[1]) == len(ip.CONVS)):
                groups.setdefault(item[0], []).append([float(v) for v in item[1]])
        for kind, rows in groups.items():
            out["yours"][kind] = [_num(v) for v in torch.tensor(rows, dtype=torch.float64).mean(0).tolist()]
            out["counts"][kind] = len(rows)
    gen = ip._gen(ip.LAYER_STATS_SEED)
    grader = {"default": [], "kaiming": []}
    for _ in range(FRACTION_SAMPLES):
        for kind in grader:
            grader[kind].append([s for _, s in ip.reference_stats(x, ip._conv_params(gen, kaiming=kind == "kaiming"))])
    out["grader"] = {k: [_num(v) for v in torch.tensor(rows, dtype=torch.float64).mean(0).tolist()]
                     for k, rows in grader.items()}
    return out


def extras(name: str, sub, seen: dict) -> None:
    """Add what needs another look at the submission, for exercise ``name``. Never raises."""
    try:
        if name in ("init_simple", "init_glorot", "init_kaiming") and seen.get("weights"):
            experiment = _experiment(name, sub)
            if experiment:
                seen["experiment"] = experiment
        elif name == "normalize_data":
            seen["normalize"] = _normalize_stats(sub)
        elif name == "layer_stats":
            seen["layers"] = {"of": name, **_layer_stds(sub)}
        elif name == "fraction_better":
            seen["layers"] = {"of": name, **_fraction_stds(sub)}
        elif name == MATMUL_VERSIONS[-1]:
            speed = _speed(sub)
            if speed:
                seen["speed"] = speed
    except Exception:  # a picture is never worth a crash: the result stands without it
        pass


DIGITS = 6     # significant digits kept: plenty for a figure, and the same from run to run


def jsonable(seen: dict) -> dict[str, Any]:
    """``seen`` with every float finite (or None: JSON has no inf/NaN) and rounded to
    :data:`DIGITS` significant digits, so that grading the same notebook twice (in
    parallel or not) writes the same bytes."""
    def clean(v):
        if isinstance(v, float):
            return float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return clean(seen)
