"""The statistics behind the leaderboard's claims: intervals, McNemar, Welch, Holm, Pareto.

Distributions come from SciPy (Student t quantiles, Welch's test); the exact McNemar test is
summed here in log space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

Z_95 = 1.959963984540054
SIGNIFICANCE = 0.05
MCNEMAR = "exact McNemar"
WELCH = "Welch t over seeds"


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
    half = float(scipy_stats.t.ppf(0.975, seeds - 1)) * std / math.sqrt(seeds)
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

    only_best: int | None  # images the best gets right and the other wrong (McNemar)
    only_other: int | None
    difference: float  # accuracy of best minus accuracy of other (means over seeds)
    low: float  # 95% interval of the difference
    high: float
    p_value: float
    test: str = MCNEMAR
    p_adjusted: float | None = None  # Holm-corrected over the winner's comparisons

    @property
    def significant(self) -> bool:
        """The best is better, beyond chance after the correction (the sign counts)."""
        p = self.p_value if self.p_adjusted is None else self.p_adjusted
        return self.difference > 0 and p < SIGNIFICANCE


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


def compare_seeds(best: list[float], other: list[float]) -> PairedComparison:
    """Welch's t-test on the test accuracies of independent final trainings (one per seed):
    it accounts for the seed-to-seed spread that a test on one pair of models ignores."""
    result = scipy_stats.ttest_ind(best, other, equal_var=False)
    difference = float(np.mean(best) - np.mean(other))
    if math.isnan(result.pvalue):  # no spread on either side
        return PairedComparison(None, None, difference, difference, difference,
                                0.0 if difference else 1.0, WELCH)
    interval = result.confidence_interval(0.95)
    return PairedComparison(None, None, difference, float(interval.low), float(interval.high),
                            float(result.pvalue), WELCH)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, kept monotone, capped at 1)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


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
