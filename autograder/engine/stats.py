"""Tolerances derived from sampling distributions, for checks of random weights.

A student's initialiser draws fresh random numbers every time, so its weights can only
be judged statistically. Each bound here is a quantile of the statistic's exact (or
asymptotic) distribution under a correct implementation, at a false-alarm probability
of :data:`ALPHA` per bound. A notebook has fewer than 40 such bounds, so correct work
fails by chance less than once in ~2.5 million runs (``scripts/seed_sweep.py`` checks
this empirically over thousands of seeds).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

__all__ = ["ALPHA", "chi2_quantile", "normal_quantile", "Bounds", "weight_bounds", "weight_stats",
           "kurtosis_z", "violations", "bernstein_halfwidth", "binomial_cdf", "binomial_sf", "binomial_acceptance",
           "proportion_interval"]

ALPHA = 1e-8          # two-sided false-alarm probability of one bound


def normal_quantile(p: float) -> float:
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


@functools.lru_cache(maxsize=256)
def chi2_quantile(p: float, k: int) -> float:
    """The p-quantile of the chi-square distribution with k degrees of freedom (bisection
    on the regularised incomplete gamma function)."""
    half_k = torch.tensor(k / 2, dtype=torch.float64)
    lo, hi = 0.0, k + 20 * math.sqrt(2 * k) + 200
    for _ in range(200):
        mid = (lo + hi) / 2
        if float(torch.special.gammainc(half_k, torch.tensor(mid / 2, dtype=torch.float64))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Bounds:
    """Acceptance region for weights drawn i.i.d. from N(0, sigma^2)."""
    n: int
    sigma: float
    rms: tuple[float, float]          # root mean square about the known mean 0
    mean: float                       # |sample mean| must not exceed this
    kurtosis_z: float | None          # |Anscombe-Glynn z| limit; None when n is too small


@functools.lru_cache(maxsize=256)
def weight_bounds(n: int, sigma: float, alpha: float = ALPHA) -> Bounds:
    """n * rms^2 / sigma^2 ~ chi2(n); mean ~ N(0, sigma^2/n); the Anscombe-Glynn
    transform of the sample kurtosis ~ N(0, 1) (used from n = 1000 on)."""
    rms = (sigma * math.sqrt(chi2_quantile(alpha / 2, n) / n),
           sigma * math.sqrt(chi2_quantile(1 - alpha / 2, n) / n))
    z = normal_quantile(1 - alpha / 2)
    return Bounds(n, sigma, rms, z * sigma / math.sqrt(n), z if n >= 1000 else None)


def kurtosis_z(b2: float, n: int) -> float:
    """Anscombe & Glynn (1983): a standard-normal score for the sample kurtosis b2 of n
    normal draws (positive: heavier tails than normal; negative: lighter, e.g. uniform)."""
    mean = 3 * (n - 1) / (n + 1)
    var = 24 * n * (n - 2) * (n - 3) / ((n + 1) ** 2 * (n + 3) * (n + 5))
    x = (b2 - mean) / math.sqrt(var)
    root_b1 = (6 * (n * n - 5 * n + 2) / ((n + 7) * (n + 9))
               * math.sqrt(6 * (n + 3) * (n + 5) / (n * (n - 2) * (n - 3))))
    a = 6 + 8 / root_b1 * (2 / root_b1 + math.sqrt(1 + 4 / root_b1 ** 2))
    t = (1 - 2 / a) / (1 + x * math.sqrt(2 / (a - 4)))
    cube = math.copysign(abs(t) ** (1 / 3), t)
    return ((1 - 2 / (9 * a)) - cube) / math.sqrt(2 / (9 * a))


def weight_stats(w: torch.Tensor) -> dict[str, float]:
    """Mean, rms about 0, std, and kurtosis of a weight tensor (in float64)."""
    x = w.detach().double().reshape(-1)
    mean = x.mean().item()
    m2 = (x * x).mean().item()
    centred = x - mean
    var = (centred ** 2).mean().item()
    kurt = ((centred ** 4).mean().item() / var ** 2) if var > 0 else float("nan")
    return {"mean": mean, "rms": math.sqrt(m2), "std": math.sqrt(var), "kurtosis": kurt}


def violations(stats: dict[str, float], bounds: Bounds) -> list[str]:
    """Which of the bounds the statistics break, as short phrases (empty when all hold)."""
    out = []
    if not bounds.rms[0] <= stats["rms"] <= bounds.rms[1]:
        out.append("scale")
    if abs(stats["mean"]) > bounds.mean:
        out.append("mean")
    if bounds.kurtosis_z is not None and not math.isnan(stats["kurtosis"]):
        if abs(kurtosis_z(stats["kurtosis"], bounds.n)) > bounds.kurtosis_z:
            out.append("shape")
    return out


def bernstein_halfwidth(n: int, variance: float, spread: float, alpha: float = ALPHA) -> float:
    """A half-width t with P(|mean of n draws - their expectation| >= t) <= alpha, for
    i.i.d. draws of the given variance that lie within ``spread`` of their expectation.

    Bernstein's inequality, P(|X̄ - μ| >= t) <= 2 exp(-n t² / (2v + 2Mt/3)), solved for t.
    It holds for every n (no normal approximation), which is what bounded draws such as
    uniform weights, or their squares, allow.
    """
    log_term = math.log(2 / alpha)
    b = 2 * spread * log_term / 3
    return (b + math.sqrt(b * b + 8 * n * variance * log_term)) / (2 * n)


def _log_binomial_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly term by term."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, sum(math.exp(_log_binomial_pmf(i, n, p)) for i in range(k + 1)))


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed over the upper tail (no cancellation)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, sum(math.exp(_log_binomial_pmf(i, n, p)) for i in range(k, n + 1)))


def binomial_acceptance(n: int, p_low: float, p_high: float | None = None,
                        alpha: float = ALPHA) -> tuple[int, int]:
    """Counts (lo, hi) such that a Binomial(n, p) count falls below lo, or above hi, with
    probability at most alpha/2 each, for every p in [p_low, p_high]."""
    p_high = p_low if p_high is None else p_high
    lo = 0
    while lo < n and binomial_cdf(lo, n, p_low) <= alpha / 2:   # P(X <= lo) small: lo is too low
        lo += 1
    hi = n
    while hi > 0 and binomial_sf(hi, n, p_high) <= alpha / 2:   # P(X >= hi) small: hi is too high
        hi -= 1
    return lo, hi


def proportion_interval(successes: int, trials: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Clopper-Pearson: an interval that holds the true probability except with
    probability alpha, from ``successes`` out of ``trials`` (bisection on the binomial CDF)."""
    def solve(f) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) else (lo, mid)
        return (lo + hi) / 2
    low = 0.0 if successes == 0 else solve(lambda p: binomial_sf(successes, trials, p) < alpha / 2)
    high = 1.0 if successes == trials else solve(lambda p: binomial_cdf(successes, trials, p) >= alpha / 2)
    return low, high
