"""The statistics behind the leaderboard's claims: intervals, McNemar, Pareto front."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054
# Two-sided 95% Student t quantiles for 1..10 degrees of freedom (more: the normal's).
T_95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]
SIGNIFICANCE = 0.05


def wilson_interval(accuracy: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion measured on ``n`` samples."""
    if n <= 0:
        return (math.nan, math.nan)
    z2 = Z_95**2
    centre = (accuracy + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * math.sqrt(accuracy * (1 - accuracy) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def seed_interval(mean: float, std: float, seeds: int) -> tuple[float, float]:
    """95% Student t interval of a mean over ``seeds`` independent final trainings."""
    t = T_95[seeds - 2] if seeds - 1 <= len(T_95) else Z_95
    half = t * std / math.sqrt(seeds)
    return mean - half, mean + half


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts.

    Args:
        only_first: test images the first model classifies right and the second wrong.
        only_second: the other way round.

    Under the null hypothesis each discordant image is a fair coin flip, so the p-value is
    twice the binomial(n, 1/2) tail at min(b, c), capped at 1.
    """
    n = only_first + only_second
    if n == 0:
        return 1.0
    k = min(only_first, only_second)
    # Summed in log space: exact integer binomials of thousands of test images take seconds.
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(log_terms)
    tail = math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedComparison:
    """The most accurate architecture against another, on the same test images."""

    only_best: int  # images the best gets right and the other wrong
    only_other: int
    difference: float  # accuracy of best minus accuracy of other
    low: float  # 95% interval of the difference
    high: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE


def compare_paired(best_correct: np.ndarray, other_correct: np.ndarray) -> PairedComparison:
    """McNemar test and the accuracy difference (normal interval) of paired predictions."""
    if best_correct.shape != other_correct.shape:
        raise ValueError("paired predictions must cover the same test images")
    n = len(best_correct)
    b = int(np.sum(best_correct & ~other_correct))
    c = int(np.sum(~best_correct & other_correct))
    difference = (b - c) / n
    variance = (b + c - (b - c) ** 2 / n) / n**2
    half = Z_95 * math.sqrt(max(variance, 0.0))
    return PairedComparison(b, c, difference, difference - half, difference + half,
                            mcnemar_exact(b, c))


def pareto_optimal(accuracy: list[float], latency: list[float], params: list[float]) -> list[bool]:
    """Which rows no other row dominates.

    A row is dominated when another is at least as good on all three criteria (higher
    accuracy, lower latency, fewer parameters) and strictly better on one.
    """
    points = list(zip(accuracy, latency, params, strict=True))
    flags = []
    for i, (acc, lat, par) in enumerate(points):
        dominated = any(
            a >= acc and la <= lat and p <= par and (a > acc or la < lat or p < par)
            for j, (a, la, p) in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags
