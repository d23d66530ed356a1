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
whoever renders them escapes them (see :mod:`autograder.reports.cards`).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Callable, Iterator

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
# What a lesson adds for its pictures after an exercise is graded, by exercise name:
# ``fn(name, sub, seen)`` may take another look at the submission and put more into ``seen``.
# Lessons register them with :meth:`autograder.authoring.Lesson.figure_extra`.
EXTRAS: dict[str, Callable[[str, Any, dict], None]] = {}


def extras(name: str, sub, seen: dict) -> None:
    """Add what needs another look at the submission, for exercise ``name``. Never raises."""
    fn = EXTRAS.get(name)
    if fn is None:
        return
    try:
        fn(name, sub, seen)
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
