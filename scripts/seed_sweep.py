"""Run every statistical check of ``02_fully_connected`` and ``04_init_in_pytorch`` over many seeds.

A check of random weights can only be statistical, so it has a false-alarm rate. The
bounds in :mod:`autograder.engine.stats` are derived to make that rate negligible; this script
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

The third part is fit's accuracy threshold in ``05_cross_entropy`` (one epoch of
training per seed, so it takes a few minutes per hundred seeds): the grader's reference
epoch over the init seeds (the derivation), and a correct epoch written another way over
fresh seeds, none of which may fall below ``THRESHOLD``.

    python scripts/seed_sweep.py [--seeds 1000] [--notebook 05_cross_entropy]

Exits with status 1 if any correct draw failed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch

from autograder.engine import stats
from autograder.lessons.lesson8 import init_pytorch
from autograder.lessons.lesson8.fully_connected import INIT_CASES, INITS, N_PIXELS, W2_DRAWS, judge_weights
from autograder.engine.feedback import Fail

__all__ = ["Case", "CASES", "VARIANTS", "sweep", "UNIFORM_VARIANTS", "sweep_init_pytorch",
           "sweep_cross_entropy", "main"]


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
    lo, hi = stats.binomial_acceptance(n, p_low, p_high)
    lo0, hi0 = stats.binomial_acceptance(n_null, 0.5)
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


# ----------------------------------------------------------------------------- 05_cross_entropy
# (self-contained: the output layer's weights, and the accuracy threshold of fit, derived
# and then tried on fresh seeds)
CASES.append(Case("output_layer w2(50, 10)", 50, 10, "1/sqrt(n_in)", lambda i, o: 1 / math.sqrt(i)))


def _student_style_fit(seed: int, *, sign: float = 1.0, zero: bool = True) -> float:
    """One epoch written another way than the grader's: its own max-trick cross-entropy,
    zeroing before the backward pass, p.sub_; in order for even seeds, shuffled for odd
    ones. ``sign=-1``: gradient ascent; ``zero=False``: gradients never zeroed (wrong
    variants, for the power)."""
    from autograder.lessons.lesson8 import cross_entropy as ce
    from autograder.lessons.lesson8.fully_connected import mnist, normalized
    ps = [p.clone().requires_grad_() for p in ce.init_params(seed)]
    x, y = normalized()["x_train"][:ce.N_FIT], mnist()[1][:ce.N_FIT]
    order = (torch.arange(ce.N_FIT) if seed % 2 == 0 else
             torch.randperm(ce.N_FIT, generator=torch.Generator().manual_seed(10_000_019 + seed)))
    for i in range(0, ce.N_FIT, ce.BS):
        idx = order[i:i + ce.BS]
        if zero:
            for p in ps:
                p.grad = None
        out = ce._forward(ps, x[idx])
        m = out.max(-1, keepdim=True)[0]
        logp = out - m - (out - m).exp().sum(-1, keepdim=True).log()
        loss = -logp[torch.arange(len(idx)), y[idx]].mean()
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p.sub_(sign * ce.LR * p.grad)
    return ce.validation([p.detach() for p in ps])[0]


def sweep_cross_entropy(seeds: int = 1000) -> dict:
    """fit's accuracy threshold: the grader's reference epoch over the seeds 0..seeds-1,
    each its own init and its own random order (a correct fit may shuffle, and the order
    moves the accuracy after one epoch more than the init does); the derivation is its
    min, mean, sd, and the normal bound mean - z·sd at ALPHA. Then a correct epoch written
    another way over the fresh seeds seeds..2·seeds-1 (false failures: accuracy below
    THRESHOLD), and two wrong steps (the power)."""
    from autograder.lessons.lesson8 import cross_entropy as ce
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = [ce._reference_fit.__wrapped__(seed, seed)[1] for seed in range(seeds)]
        mean = sum(ref) / seeds
        sd = math.sqrt(sum((a - mean) ** 2 for a in ref) / max(1, seeds - 1))
        bound = mean - stats.normal_quantile(1 - stats.ALPHA) * sd
        fresh = [_student_style_fit(seed) for seed in range(seeds, 2 * seeds)]
        k = min(seeds, 20)
        power = {"gradient ascent": sum(_student_style_fit(s, sign=-1.0) < ce.THRESHOLD for s in range(k)) / k,
                 "never zeroed": sum(_student_style_fit(s, zero=False) < ce.THRESHOLD for s in range(k)) / k}
    finally:
        torch.set_num_threads(threads)
    return {"reference": {"min": min(ref), "max": max(ref), "mean": mean, "sd": sd, "normal_bound": bound,
                          "threshold_ok": ce.THRESHOLD <= min(min(ref), bound), "values": ref},
            "fresh": {"min": min(fresh), "mean": sum(fresh) / seeds,
                      "false_failures": sum(a < ce.THRESHOLD for a in fresh), "values": fresh},
            "power": power}


def render_cross_entropy(r: dict, seeds: int) -> str:
    from autograder.lessons.lesson8 import cross_entropy as ce
    ref, fresh = r["reference"], r["fresh"]
    return "\n".join([
        f"fit's accuracy after one epoch (05_cross_entropy; {ce.N_FIT} images, bs={ce.BS}, lr={ce.LR}):",
        f"  grader's fit, shuffled, over seeds 0..{seeds - 1}: min {ref['min']:.4f}, max {ref['max']:.4f}, "
        f"mean {ref['mean']:.5f}, sd {ref['sd']:.5f}; mean - z*sd = {ref['normal_bound']:.4f}",
        f"  THRESHOLD {ce.THRESHOLD} {'<=' if ref['threshold_ok'] else '>'} both",
        f"  a correct epoch written another way, seeds {seeds}..{2 * seeds - 1}: min {fresh['min']:.4f}, "
        f"mean {fresh['mean']:.5f}, false failures {fresh['false_failures']}",
        "  power: " + ", ".join(f"{k} {100 * p:.0f}%" for k, p in r["power"].items())])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000, help="seeds per case (default 1000)")
    parser.add_argument("--notebook", choices=("all", "05_cross_entropy"), default="all",
                        help="05_cross_entropy: only fit's accuracy threshold (the slow part)")
    parser.add_argument("--json", metavar="FILE", help="with --notebook 05_cross_entropy: every accuracy, as JSON")
    args = parser.parse_args(argv)
    if args.notebook == "05_cross_entropy":
        r = sweep_cross_entropy(args.seeds)
        print(render_cross_entropy(r, args.seeds))
        if args.json:
            import json
            with open(args.json, "w") as f:
                json.dump(r, f)
        return 0 if r["fresh"]["false_failures"] == 0 and r["reference"]["threshold_ok"] else 1
    start = time.perf_counter()
    results = sweep(args.seeds)
    print(render(results, args.seeds))
    more = sweep_init_pytorch(args.seeds)
    print("\n" + render_init_pytorch(more, args.seeds))
    ce_results = sweep_cross_entropy(args.seeds)
    print("\n" + render_cross_entropy(ce_results, args.seeds))
    total = sum(r["false_failures"] for r in (*results.values(), *more.values()))
    total += ce_results["fresh"]["false_failures"] + (not ce_results["reference"]["threshold_ok"])
    print(
        f"\n{total} false failures in {args.seeds * (len(results) + len(more))} correct draws "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
