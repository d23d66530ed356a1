"""Run every statistical check of ``02_fully_connected`` and ``04_init_in_pytorch`` over many seeds.

A check of random weights can only be statistical, so it has a false-alarm rate. The
tolerances of the authoring API are derived to make that rate negligible; this module
measures it. For every case the grader judges (each init formula on each of
``INIT_CASES``, and the ``params`` exercise's w1 and w2) it draws correct weights
``torch.randn(n_in, n_out, generator=seeded) * sigma`` for each seed and counts how often
:func:`judge_weights` fails them (false failures: must be 0). It also measures the power:
how often each classic wrong variant is caught.

The second table does the same for ``04_init_in_pytorch``: ``kaiming_uniform_``'s
judgement of uniform weights on each shape, ``a`` and ``mode`` the grader uses (correct
draws ``U(-b, b)`` against the bound without √3, normal draws, ``torch.rand``, ``a`` taken
as the gain, the other mode's fan), and the acceptance regions of ``fraction_better``: the
counts of correct work are drawn from a pool of real runs of the experiment (Kaiming
against PyTorch's default, each sample a fresh pair of stacks), and from Binomial(n, 1/2)
for the run where both stacks use PyTorch's default.

Registered as the lesson's seed sweep: ``python -m autograder lint-lesson lesson8`` runs
it, and so does ``python scripts/seed_sweep.py [--seeds 1000]``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ...authoring import Fail, binomial_acceptance
from . import init_pytorch, lesson
from .fully_connected import INIT_CASES, INITS, N_PIXELS, W2_DRAWS, judge_weights

__all__ = ["Case", "CASES", "VARIANTS", "sweep", "UNIFORM_VARIANTS", "sweep_init_pytorch",
           "render", "render_init_pytorch", "report"]


@dataclass(frozen=True)
class Case:
    label: str
    n_in: int
    n_out: int
    formula: str
    scale: Callable[[int, int], float]
    draws: int = 1              # independent draws side by side, as the grader pools w2

    @property
    def sigma(self) -> float:
        return self.scale(self.n_in, self.n_out)

    @property
    def cols(self) -> int:
        return self.n_out * self.draws


CASES = [
    Case(f"{name}{(i, o)}", i, o, formula, scale)
    for name, (formula, scale) in INITS.items()
    for i, o in INIT_CASES
]
CASES += [
    Case(f"params w1{(N_PIXELS, 50)}", N_PIXELS, 50, "sqrt(2/n_in)", lambda i, o: math.sqrt(2 / i)),
    Case("params w2(50, 1)", 50, 1, "1/sqrt(n_in)", lambda i, o: 1 / math.sqrt(i)),
    Case(f"params w2(50, 1) x{W2_DRAWS}", 50, 1, "1/sqrt(n_in)", lambda i, o: 1 / math.sqrt(i), W2_DRAWS),
]

Draw = Callable[[torch.Generator, Case], "torch.Tensor | None"]


def _normal(g: torch.Generator, case: Case, sigma: float) -> torch.Tensor:
    return torch.randn(case.n_in, case.cols, generator=g) * sigma


def _swapped(g: torch.Generator, case: Case) -> torch.Tensor | None:
    sigma = case.scale(case.n_out, case.n_in)
    return None if math.isclose(sigma, case.sigma) else _normal(g, case, sigma)


# Wrong ways to draw the weights; a variant returns None where it coincides with the formula.
VARIANTS: dict[str, Draw] = {
    "variance/2": lambda g, c: _normal(g, c, c.sigma / math.sqrt(2)),  # Kaiming without its 2
    "variance*2": lambda g, c: _normal(g, c, c.sigma * math.sqrt(2)),  # Kaiming where it is not due
    "n_out": _swapped,  # n_out where n_in belongs
    "std 1": lambda g, c: None if math.isclose(c.sigma, 1.0) else _normal(g, c, 1.0),
    "rand": lambda g, c: torch.rand(c.n_in, c.cols, generator=g) * c.sigma,
    "uniform": lambda g, c: (
        (torch.rand(c.n_in, c.cols, generator=g) * 2 - 1) * math.sqrt(3) * c.sigma
    ),
}


def _fails(case: Case, w: torch.Tensor) -> bool:
    try:
        judge_weights(case.label, w, case.n_in, case.n_out, case.sigma, case.formula, draws=case.draws)
    except Fail:
        return True
    return False


def sweep(seeds: int = 1000) -> dict[str, dict]:
    """For each case: ``false_failures`` (correct draws failed, of ``seeds``) and ``power``
    (variant name -> fraction of wrong draws caught, or None where not applicable)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these tensors are small: thread hand-offs cost more than they save
    try:
        return {case.label: _sweep_case(c_index, case, seeds) for c_index, case in enumerate(CASES)}
    finally:
        torch.set_num_threads(threads)


def _sweep_case(c_index: int, case: Case, seeds: int) -> dict:
    """One case: the seeds are disjoint from every other case's."""
    g = torch.Generator()
    false_failures, caught = 0, {name: 0 for name in VARIANTS}
    applicable = dict.fromkeys(VARIANTS, True)
    for seed in range(seeds):
        g.manual_seed(1_000_003 * c_index + seed)
        false_failures += _fails(case, _normal(g, case, case.sigma))
        for name, draw in VARIANTS.items():
            w = draw(g, case)
            if w is None:
                applicable[name] = False
                continue
            caught[name] += _fails(case, w)
    return {
        "n": case.n_in * case.cols,
        "sigma": case.sigma,
        "false_failures": false_failures,
        "power": {name: (caught[name] / seeds if applicable[name] else None) for name in VARIANTS},
    }


def render(results: dict[str, dict], seeds: int) -> str:
    names = list(VARIANTS)
    head = f"{'case':<26}{'n':>7}{'sigma':>9}{'false fails':>13}  " + "".join(
        f"{n:>11}" for n in names
    )
    lines = [f"{seeds} seeds per case; power = share of wrong draws caught", head, "-" * len(head)]
    for label, r in results.items():
        power = "".join(
            f"{'n/a' if p is None else f'{100 * p:.1f}%':>11}" for p in r["power"].values()
        )
        lines.append(f"{label:<26}{r['n']:>7}{r['sigma']:>9.4f}{r['false_failures']:>13}  {power}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- 04_init_in_pytorch
def _uniform_case(shape, a, mode):
    """(label, shape, a, mode, bound, the other mode's bound) for one kaiming_uniform_ case."""
    a, mode = (0.0 if a is None else a), (mode or "fan_in")
    fan_in, fan_out = math.prod(shape[2:]) * shape[1], math.prod(shape[2:]) * shape[0]
    gain = math.sqrt(2 / (1 + a * a))
    fan, other = (fan_in, fan_out) if mode == "fan_in" else (fan_out, fan_in)
    label = f"kaiming_uniform_{tuple(shape)} a={a:.3g} {mode}"
    return label, tuple(shape), a, mode, gain * math.sqrt(3 / fan), gain * math.sqrt(3 / other)


UNIFORM_CASES = [_uniform_case(*case) for case in init_pytorch.UNIFORM_CASES]
UNIFORM_CASES += [_uniform_case((32, 1, 5, 5), 0.0, "fan_in")]     # the smallest conv weight: 800


def _scaled(g, shape, bound):
    return (torch.rand(shape, generator=g) * 2 - 1) * bound


UNIFORM_VARIANTS: dict[str, Callable] = {
    "no sqrt3": lambda g, c: _scaled(g, c[1], c[4] / math.sqrt(3)),
    "normal": lambda g, c: torch.randn(c[1], generator=g) * c[4] / math.sqrt(3),
    "rand": lambda g, c: torch.rand(c[1], generator=g) * c[4],
    "a as gain": lambda g, c: None if c[2] in (0.0, 1.0) else _scaled(
        g, c[1], c[4] * c[2] / math.sqrt(2 / (1 + c[2] ** 2))),
    "other fan": lambda g, c: None if math.isclose(c[4], c[5]) else _scaled(g, c[1], c[5]),
}


def _uniform_fails(case, w) -> bool:
    label, shape, a, mode, _, _ = case
    try:
        init_pytorch.judge_uniform(label, w, shape, a, mode)
    except Fail:
        return True
    return False


def _experiment_pool(samples: int, seed: int = 123_457) -> list[bool]:
    """Real runs of the experiment, with seeds of their own: did Kaiming's stack win?"""
    g, x, wins = torch.Generator().manual_seed(seed), init_pytorch.images(), []
    for _ in range(samples):
        d = init_pytorch.reference_stats(x, init_pytorch._conv_params(g, kaiming=False))[-1][1]
        k = init_pytorch.reference_stats(x, init_pytorch._conv_params(g, kaiming=True))[-1][1]
        wins.append(abs(k - 1) < abs(d - 1))
    return wins


def sweep_init_pytorch(seeds: int = 1000) -> dict[str, dict]:
    """The same measure for the checks of ``04_init_in_pytorch`` (see the module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = {}
        for c_index, case in enumerate(UNIFORM_CASES):
            g = torch.Generator()
            false_failures, caught = 0, dict.fromkeys(UNIFORM_VARIANTS, 0)
            applicable = dict.fromkeys(UNIFORM_VARIANTS, True)
            for seed in range(seeds):
                g.manual_seed(2_000_003 * (c_index + 1) + seed)
                false_failures += _uniform_fails(case, _scaled(g, case[1], case[4]))
                for name, draw in UNIFORM_VARIANTS.items():
                    w = draw(g, case)
                    if w is None:
                        applicable[name] = False
                    else:
                        caught[name] += _uniform_fails(case, w)
            results[case[0]] = {"n": math.prod(case[1]), "false_failures": false_failures,
                                "power": {k: (caught[k] / seeds if applicable[k] else None)
                                          for k in UNIFORM_VARIANTS}}
        results.update(_sweep_experiment(seeds))
        return results
    finally:
        torch.set_num_threads(threads)


def _sweep_experiment(seeds: int, n: int = 100, n_null: int = 63) -> dict[str, dict]:
    """fraction_better's two acceptance regions, on correct counts and on wrong ones."""
    pool = torch.tensor(_experiment_pool(min(2000, 20 * seeds)), dtype=torch.float64)
    p_low, p_high = init_pytorch.reference_probability()
    lo, hi = binomial_acceptance(n, p_low, p_high)
    lo0, hi0 = binomial_acceptance(n_null, 0.5)
    g = torch.Generator().manual_seed(77)
    false_kaiming = false_null = 0
    caught = {"same init": 0, "counts worse": 0, "always 1": 0}
    for _ in range(seeds):
        count = int(pool[torch.randint(len(pool), (n,), generator=g)].sum())     # correct work
        false_kaiming += not lo <= count <= hi
        coin = int((torch.rand(n, generator=g) < 0.5).sum())                     # no re-init
        caught["same init"] += not lo <= coin <= hi
        caught["counts worse"] += not lo <= n - count <= hi
        null = int((torch.rand(n_null, generator=g) < 0.5).sum())                # correct, null run
        false_null += not lo0 <= null <= hi0
        caught["always 1"] += not lo0 <= n_null <= hi0
    return {f"fraction_better n={n} (pool of {len(pool)} runs)":
            {"n": n, "false_failures": false_kaiming,
             "power": {"same init": caught["same init"] / seeds, "counts worse": caught["counts worse"] / seeds}},
            f"fraction_better n={n_null}, default for both":
            {"n": n_null, "false_failures": false_null, "power": {"always 1": caught["always 1"] / seeds}}}


def render_init_pytorch(results: dict[str, dict], seeds: int) -> str:
    head = f"{'case':<44}{'n':>7}{'false fails':>13}  power"
    lines = [f"{seeds} seeds per case (04_init_in_pytorch)", head, "-" * (len(head) + 50)]
    for label, r in results.items():
        power = ", ".join(f"{k} {'n/a' if p is None else f'{100 * p:.1f}%'}" for k, p in r["power"].items())
        lines.append(f"{label:<44}{r['n']:>7}{r['false_failures']:>13}  {power}")
    return "\n".join(lines)


@lesson.seed_sweep
def report(seeds: int = 1000) -> tuple[int, str]:
    """Both sweeps: (false failures in all, the two tables and a summary line)."""
    start = time.perf_counter()
    results = sweep(seeds)
    more = sweep_init_pytorch(seeds)
    total = sum(r["false_failures"] for r in (*results.values(), *more.values()))
    text = "\n".join([render(results, seeds), "", render_init_pytorch(more, seeds), "",
                      f"{total} false failures in {seeds * (len(results) + len(more))} correct draws "
                      f"({time.perf_counter() - start:.1f} s)"])
    return total, text
