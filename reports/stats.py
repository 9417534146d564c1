"""The statistics behind the leaderboard's claims: intervals, McNemar, Welch, Holm, Pareto,
and the rank agreement of two scorings (Kendall, Spearman, permutation p-values).

Distributions come from SciPy (Student t quantiles, Welch's test, the binomial tail of the
exact McNemar test, Kendall's tau-b and Spearman's rho).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

Z_95 = 1.959963984540054
SIGNIFICANCE = 0.05
POWER = 0.8  # the probability of finding a difference that "powered" differences are found with
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
    """95% Student t interval of a mean over ``seeds`` independent final trainings, within
    [0, 1] (an accuracy cannot leave it)."""
    half = float(scipy_stats.t.ppf(0.975, seeds - 1)) * std / math.sqrt(seeds)
    return max(0.0, mean - half), min(1.0, mean + half)


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
    return min(1.0, 2 * float(scipy_stats.binom.cdf(min(only_first, only_second), n, 0.5)))


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
    # The critical difference: the smallest accuracy difference this test could have called
    # significant (p < 0.05) with the same discordant images (McNemar) or the same spread
    # (Welch); None: none could. A true difference of that size is missed nearly half the time.
    detectable: float | None = None
    # The true difference the test finds with POWER probability, under the same conditions.
    powered: float | None = None

    @property
    def testable(self) -> bool:
        """Whether the test could be computed (Welch's cannot without any spread)."""
        return not math.isnan(self.p_value)

    @property
    def _p(self) -> float:
        return self.p_value if self.p_adjusted is None else self.p_adjusted

    @property
    def significant(self) -> bool:
        """The best is better, beyond chance after the correction (the sign counts)."""
        return self.difference > 0 and self._p < SIGNIFICANCE

    @property
    def reversed(self) -> bool:
        """The other is better on what the test compared, beyond chance after the correction
        (possible when the test compares first seeds and the ranking means)."""
        return self.difference < 0 and self._p < SIGNIFICANCE


def compare_paired(best_correct: np.ndarray, other_correct: np.ndarray) -> PairedComparison:
    """Exact McNemar test of paired predictions, with the interval that inverts it.

    The interval is conditional on the ``b + c`` discordant images: the Clopper-Pearson
    interval of the share ``b / (b + c)`` (the equal-tailed inversion of the same binomial
    test, so it holds 0 exactly when p >= 0.05), mapped to the accuracy difference
    ``(b - c) / n``. With no discordant image it is the exact bound on how many of ``n``
    images could disagree unseen.
    """
    if best_correct.shape != other_correct.shape:
        raise ValueError("paired predictions must cover the same test images")
    n = len(best_correct)
    b = int(np.sum(best_correct & ~other_correct))
    c = int(np.sum(~best_correct & other_correct))
    if b + c:
        share_low, share_high = clopper_pearson(b, b + c)
        low, high = ((b + c) * (2 * share_low - 1) / n, (b + c) * (2 * share_high - 1) / n)
    else:
        unseen = clopper_pearson(0, n)[1]
        low, high = -unseen, unseen
    return PairedComparison(b, c, (b - c) / n, low, high, mcnemar_exact(b, c),
                            detectable=mcnemar_detectable(b + c, n),
                            powered=mcnemar_powered(b + c, n))


def clopper_pearson(successes: int, trials: int) -> tuple[float, float]:
    """The exact (Clopper-Pearson) 95% interval of a binomial proportion, from the beta
    quantiles (what ``scipy.stats.binomtest(...).proportion_ci("exact")`` finds by root
    search, in closed form)."""
    alpha = SIGNIFICANCE / 2
    low = 0.0 if successes == 0 else float(
        scipy_stats.beta.ppf(alpha, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(
        scipy_stats.beta.ppf(1 - alpha, successes + 1, trials - successes))
    return low, high


def mcnemar_detectable(discordant: int, n: int) -> float | None:
    """The smallest accuracy difference ``(b - c) / n`` with ``b + c = discordant`` that the
    exact McNemar test calls significant; None when even ``discordant`` to 0 would not be."""
    critical = _critical_minority(discordant)
    return None if critical is None else (discordant - 2 * critical) / n


def _critical_minority(discordant: int) -> int | None:
    """The largest minority count of ``discordant`` images that the exact McNemar test still
    calls significant; None when even none is not."""
    minority = np.arange(discordant // 2 + 1)  # every split c of the discordant images
    p_values = np.minimum(1.0, 2 * scipy_stats.binom.cdf(minority, discordant, 0.5))
    significant = np.flatnonzero(p_values < SIGNIFICANCE)  # the tail grows with c
    return int(significant[-1]) if discordant and len(significant) else None


def mcnemar_powered(discordant: int, n: int) -> float | None:
    """The true accuracy difference ``(2q - 1) * discordant / n`` (``q``: the share of the
    discordant images that the better one gets right) that the exact McNemar test finds
    with probability ``POWER`` among ``discordant`` images; None when none can be found."""
    critical = _critical_minority(discordant)
    if critical is None:
        return None
    # P(Binomial(d, p) <= k) = POWER at p = the beta quantile below; p is 1 - q
    other = float(scipy_stats.beta.ppf(1 - POWER, critical + 1, discordant - critical))
    return discordant * (1 - 2 * other) / n


def compare_seeds(best: list[float], other: list[float]) -> PairedComparison:
    """Welch's t-test on the test accuracies of independent final trainings (one per seed):
    it accounts for the seed-to-seed spread that a test on one pair of models ignores."""
    difference = float(np.mean(best) - np.mean(other))
    if np.ptp(best) == 0 and np.ptp(other) == 0:  # no spread on either side: undefined
        return PairedComparison(None, None, difference, math.nan, math.nan, math.nan, WELCH)
    result = scipy_stats.ttest_ind(best, other, equal_var=False)
    if math.isnan(result.pvalue):
        return PairedComparison(None, None, difference, math.nan, math.nan, math.nan, WELCH)
    interval = result.confidence_interval(1 - SIGNIFICANCE)
    critical = float(interval.high - interval.low) / 2  # t quantile x standard error
    t_critical = float(scipy_stats.t.ppf(1 - SIGNIFICANCE / 2, result.df))
    powered = critical * (t_critical + float(scipy_stats.t.ppf(POWER, result.df))) / t_critical
    return PairedComparison(None, None, difference, float(interval.low), float(interval.high),
                            float(result.pvalue), WELCH, detectable=critical, powered=powered)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, kept monotone, capped at 1); a NaN (a
    test that could not be computed) stays NaN and is not counted among the tests."""
    tested = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    order = sorted(tested, key=lambda i: p_values[i])
    adjusted, running = [math.nan] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pareto_optimal(accuracy: list[float], latency: list[float], params: list[float],
                   latency_spread: list[float] | None = None) -> list[bool]:
    """Which rows no other row dominates.

    A row is dominated when another is at least as good on all three criteria (higher
    accuracy, lower latency, fewer parameters) and strictly better on one. With
    ``latency_spread`` (each latency's interquartile range), latencies whose ranges overlap
    count as equal: a latency is better only beyond the noise. A row missing any criterion
    is never optimal and dominates none.
    """
    spread = [0.0] * len(latency) if latency_spread is None else [
        0.0 if math.isnan(v) else v for v in latency_spread]
    points = list(zip(accuracy, latency, params, spread, strict=True))
    complete = [not any(math.isnan(v) for v in point[:3]) for point in points]
    flags = []
    for i, (acc, lat, par, noise) in enumerate(points):
        if not complete[i]:
            flags.append(False)
            continue
        dominated = False
        for j, (a, la, p, other_noise) in enumerate(points):
            if j == i or not complete[j]:
                continue
            tolerance = (noise + other_noise) / 2  # the two ranges overlap within this
            if (a >= acc and la <= lat + tolerance and p <= par
                    and (a > acc or la < lat - tolerance or p < par)):
                dominated = True
                break
        flags.append(not dominated)
    return flags


def within_noise(values: list[float], spreads: list[float], smallest: bool) -> list[bool]:
    """Which values are as good as the best one within the measurement's noise: their
    interquartile ranges overlap the best's. Missing values never are; a missing spread
    counts as none."""
    present = [i for i, v in enumerate(values) if not math.isnan(v)]
    if not present:
        return [False] * len(values)
    best = (min if smallest else max)(present, key=lambda i: values[i])
    half = [0.0 if math.isnan(s) else s / 2 for s in spreads]
    flags = []
    for i, value in enumerate(values):
        if math.isnan(value):
            flags.append(False)
        elif smallest:
            flags.append(value - half[i] <= values[best] + half[best])
        else:
            flags.append(value + half[i] >= values[best] - half[best])
    return flags


EXACT_PERMUTATIONS_UP_TO = 8  # every order of up to 8 architectures: 8! = 40,320
PERMUTATION_RESAMPLES = 10_000  # orders drawn beyond that, Monte-Carlo
PERMUTATION_SEED = 0
_CHUNK = 4096  # orders scored at once, to bound memory
_SAME = 1e-9  # statistics closer than this are equal (floating-point noise)


@dataclass(frozen=True)
class RankAgreement:
    """How well two scorings of the same architectures agree on their order.

    The p-values are two-sided permutation p-values: the share of orders of the second
    scoring, relative to the first, whose statistic is at least as far from 0 as the one
    observed. ``*_needed`` is the smallest absolute statistic that reaches p < SIGNIFICANCE
    at this number of architectures and these ties (None: no order reaches it).
    """

    count: int
    kendall_tau: float  # tau-b: ties in either scoring allowed
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    permutations: int  # orders the p-values were computed over
    exact: bool  # every order (True), or a seeded Monte-Carlo sample of them
    kendall_needed: float | None
    spearman_needed: float | None


def rank_agreement(first, second, exact_up_to: int = EXACT_PERMUTATIONS_UP_TO,
                   resamples: int = PERMUTATION_RESAMPLES,
                   seed: int = PERMUTATION_SEED) -> RankAgreement:
    """Kendall's tau-b and Spearman's rho (SciPy) of two scorings, with permutation p-values:
    exact over all n! orders up to ``exact_up_to`` architectures, else over ``resamples``
    orders drawn with ``seed``. NaN when either scoring has fewer than two distinct values."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if len(np.unique(first)) < 2 or len(np.unique(second)) < 2:
        return RankAgreement(len(first), math.nan, math.nan, math.nan, math.nan, 0, True, None, None)
    tau = float(scipy_stats.kendalltau(first, second).statistic)
    rho = float(scipy_stats.spearmanr(first, second).statistic)
    exact = len(first) <= exact_up_to
    orders = all_orders(len(first)) if exact else random_orders(len(first), resamples, seed)
    taus, rhos = permuted_statistics(first, second, orders)
    return RankAgreement(len(first), tau, permutation_p_value(taus, tau, exact), rho,
                         permutation_p_value(rhos, rho, exact), len(orders), exact,
                         _needed(taus, exact), _needed(rhos, exact))


def all_orders(n: int) -> np.ndarray:
    """Every permutation of ``range(n)``, one per row (the identity first)."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.intp).reshape(-1, n)


def random_orders(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` random permutations of ``range(n)``, one per row, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(np.arange(n), (count, 1)), axis=1)


def permuted_statistics(first: np.ndarray, second: np.ndarray,
                        orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kendall's tau-b and Spearman's rho of ``first`` against ``second[order]`` for every
    row of ``orders``, vectorised: a SciPy call per order would be slow for the 8! orders
    of nine architectures. Neither denominator changes under a permutation (tau-b's counts
    of tied pairs, rho's spread of average ranks), so only the numerators are permuted."""
    n = len(first)
    sign_first = np.sign(first[:, None] - first[None, :]).astype(np.int64)
    sign_second = np.sign(second[:, None] - second[None, :]).astype(np.int8)
    pairs = n * (n - 1) / 2
    tied_first = (np.count_nonzero(sign_first == 0) - n) / 2
    tied_second = (np.count_nonzero(sign_second == 0) - n) / 2
    tau_denominator = math.sqrt((pairs - tied_first) * (pairs - tied_second))
    rank_first = scipy_stats.rankdata(first) - (n + 1) / 2
    rank_second = scipy_stats.rankdata(second) - (n + 1) / 2
    rho_denominator = math.sqrt(np.sum(rank_first**2) * np.sum(rank_second**2))
    taus, rhos = [], []
    for start in range(0, len(orders), _CHUNK):
        chunk = orders[start:start + _CHUNK]
        shuffled = sign_second[chunk[:, :, None], chunk[:, None, :]]
        # every pair is counted twice in the full matrix
        taus.append(np.einsum("pij,ij->p", shuffled, sign_first) / 2 / tau_denominator)
        rhos.append(rank_second[chunk] @ rank_first / rho_denominator)
    return np.concatenate(taus), np.concatenate(rhos)


def permutation_p_value(distribution: np.ndarray, observed: float, exact: bool) -> float:
    """Two-sided: the share of ``distribution`` at least as far from 0 as ``observed``.
    Exact (every order, the observed one included): that share. Monte-Carlo: (k + 1) /
    (N + 1), which never says 0 for what a sample merely did not draw."""
    at_least = int(np.count_nonzero(np.abs(distribution) >= abs(observed) - _SAME))
    return at_least / len(distribution) if exact else (at_least + 1) / (len(distribution) + 1)


def _needed(distribution: np.ndarray, exact: bool) -> float | None:
    magnitudes = np.sort(np.abs(distribution))
    for value in np.unique(np.round(magnitudes, 9)):
        if permutation_p_value(magnitudes, float(value), exact) < SIGNIFICANCE:
            return float(value)
    return None


def expected_best(scores: list[float] | np.ndarray,
                  fixed: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Expected best score of a search of n = 1..N trials, and its standard deviation,
    estimated from N observed trial scores (Dodge et al. 2019, "Show your work"): the
    maximum of n draws with replacement from the empirical distribution of the scores.
    ``fixed``: the score of a trial that every search contains rather than draws (its
    first, at the defaults), not among ``scores``: n trials are then that one and the best
    of n - 1 draws from ``scores``, and N is one more than them.

    Returns:
        (means, standard deviations), each of length N; entry n - 1 is for n trials.
    """
    values = np.sort(np.asarray(scores, dtype=float))
    count = len(values)
    means, stds = ([float(fixed)], [0.0]) if fixed is not None else ([], [])
    if count == 0:
        return np.array(means), np.array(stds)
    if fixed is not None:
        values = np.maximum(values, fixed)  # still in order: the best of it and the draws
    share = np.arange(count + 1) / count  # P(score <= v_(i)) = i / N
    for n in range(1, count + 1):
        weights = np.diff(share**n)  # P(max of n draws = v_(i))
        mean = float(weights @ values)
        means.append(mean)
        stds.append(math.sqrt(max(float(weights @ values**2) - mean**2, 0.0)))
    return np.array(means), np.array(stds)
