"""Lesson 8's figure extras: what its pictures need beyond what the checks saw.

Each function here takes another look at a submission after its exercise was graded
(the 8-layer experiment with the student's initialiser, the statistics of the
normalised data, the matmul speed ladder) and is registered with
:meth:`~autograder.authoring.Lesson.figure_extra`. Whatever goes wrong here never
changes a result (see :func:`autograder.authoring.figure_extra`).
"""

from __future__ import annotations

import functools
import math

from . import lesson
from .fully_connected import mnist, normalized


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


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


@lesson.figure_extra("init_simple", "init_glorot", "init_kaiming")
def experiment(name: str, sub, seen: dict) -> None:
    """The lesson's activation-scales experiment with the student's initialiser."""
    if seen.get("weights"):
        found = _experiment(name, sub)
        if found:
            seen["experiment"] = found


@lesson.figure_extra("normalize_data")
def normalize_stats(name: str, sub, seen: dict) -> None:
    seen["normalize"] = _normalize_stats(sub)


@lesson.figure_extra(MATMUL_VERSIONS[-1])
def speed(name: str, sub, seen: dict) -> None:
    found = _speed(sub)
    if found:
        seen["speed"] = found


def _layer_stds(sub) -> dict | None:
    """The std after each layer of a default and a Kaiming stack (the grader's weights):
    measured by the student's layer_stats, and by the grader."""
    from . import init_pytorch as ip
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
    from . import init_pytorch as ip
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


@lesson.figure_extra("layer_stats")
def layer_stds(name: str, sub, seen: dict) -> None:
    """The std after each layer, default against Kaiming, as the student's layer_stats
    measures it and as the grader does."""
    seen["layers"] = {"of": name, **_layer_stds(sub)}


@lesson.figure_extra("fraction_better")
def fraction_stds(name: str, sub, seen: dict) -> None:
    """The std after each layer of the stacks the student's fraction_better builds."""
    seen["layers"] = {"of": name, **_fraction_stds(sub)}
