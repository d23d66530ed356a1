"""Run every statistical weight check of ``02_fully_connected`` over many seeds.

A check of random weights can only be statistical, so it has a false-alarm rate. The
bounds in :mod:`autograder.stats` are derived to make that rate negligible; this script
measures it. For every case the grader judges (each init formula on each of
``INIT_CASES``, and the ``params`` exercise's w1 and w2) it draws correct weights
``torch.randn(n_in, n_out, generator=seeded) * sigma`` for each seed and counts how often
:func:`judge_weights` fails them (false failures: must be 0). It also measures the power:
how often each classic wrong variant is caught.

    python scripts/seed_sweep.py [--seeds 1000]

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

from autograder.checks.fully_connected import INIT_CASES, INITS, N_PIXELS, W2_DRAWS, judge_weights
from autograder.feedback import Fail

__all__ = ["Case", "CASES", "VARIANTS", "sweep", "main"]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000, help="seeds per case (default 1000)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = sweep(args.seeds)
    print(render(results, args.seeds))
    total = sum(r["false_failures"] for r in results.values())
    print(
        f"\n{total} false failures in {args.seeds * len(results)} correct draws "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
