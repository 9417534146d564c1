"""Across datasets: one budget's leaderboards side by side, mean ranks and a performance
profile (Dolan and More 2002, the score AlgoPerf uses): for each architecture, the share
of datasets on which its test error is within a factor tau of the best architecture's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from benchmarks import rundir
from reports.leaderboard import ReportError, load_run
from reports.markdown import markdown_table, md_escape
from reports.stats import SIGNIFICANCE

ACROSS_MD = "across-datasets.md"
PROFILE_TAUS = (1.0, 1.1, 1.25, 1.5, 2.0)
MIN_ERROR = 1e-4  # a perfect score still leaves a ratio to divide by


def accuracy_table(run_dirs: list[Path], allow_mixed_budgets: bool = False) -> pd.DataFrame:
    """Test accuracy per architecture (rows) and dataset (columns); NaN where none.

    Raises:
        ReportError: the runs were made under different budgets, or two runs share a dataset.
    """
    columns, budgets = {}, {}
    for run_dir in run_dirs:
        data = load_run(run_dir)
        name = data.manifest["dataset"]["name"]
        if name in columns:
            raise ReportError(f"two run directories hold dataset {name}: {budgets[name][1]} and "
                              f"{run_dir}; give one run per dataset")
        budgets[name] = (data.manifest["budget"]["hash"], run_dir)
        results = data.results.set_index("architecture")
        columns[name] = results["test_accuracy"].where(results["status"] == "ok")
    hashes = {h for h, _ in budgets.values()}
    if len(hashes) > 1 and not allow_mixed_budgets:
        raise ReportError(
            f"the run directories were made under {len(hashes)} different budgets "
            f"({', '.join(f'{d}: {h}' for d, (h, _) in sorted(budgets.items()))}); they are not "
            "comparable (pass --allow-mixed-budgets to compare them anyway)")
    return pd.DataFrame(columns).sort_index()


def mean_ranks(accuracy: pd.DataFrame) -> pd.Series:
    """Each architecture's rank per dataset (1 = most accurate, ties share the mean rank,
    no result = last), averaged over the datasets."""
    worst = len(accuracy)
    ranks = accuracy.rank(ascending=False, method="average").fillna(worst)
    return ranks.mean(axis=1).sort_values()


@dataclass(frozen=True)
class Friedman:
    """Friedman's test of the architectures' ranks over datasets, and the Nemenyi critical
    difference of mean ranks (Demsar 2006), over the architectures with a result on every
    dataset."""

    architectures: int
    datasets: int
    statistic: float  # Friedman's chi-square (SciPy's, with its tie correction)
    p_value: float
    critical_difference: float  # mean ranks further apart than this differ (p < 0.05)
    mean_ranks: pd.Series

    def apart(self) -> list[tuple[str, str]]:
        """The pairs whose mean ranks differ by more than the critical difference, when the
        Friedman test rejects; none otherwise."""
        if not self.p_value < SIGNIFICANCE:
            return []
        names = list(self.mean_ranks.index)
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                if self.mean_ranks[b] - self.mean_ranks[a] > self.critical_difference]


def nemenyi_critical_difference(architectures: int, datasets: int) -> float:
    """q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the studentized range quantile over sqrt 2."""
    q = float(scipy_stats.studentized_range.ppf(1 - SIGNIFICANCE, architectures, np.inf)) / math.sqrt(2)
    return q * math.sqrt(architectures * (architectures + 1) / (6 * datasets))


def friedman(accuracy: pd.DataFrame) -> Friedman | None:
    """Friedman's test and the Nemenyi critical difference; None with fewer than three
    architectures with a result on every dataset, or fewer than two datasets."""
    complete = accuracy.dropna()
    k, n = len(complete), len(complete.columns)
    if k < 3 or n < 2:
        return None
    result = scipy_stats.friedmanchisquare(*complete.to_numpy())
    ranks = complete.rank(ascending=False, method="average").mean(axis=1).sort_values()
    return Friedman(k, n, float(result.statistic), float(result.pvalue),
                    nemenyi_critical_difference(k, n), ranks)


def friedman_text(accuracy: pd.DataFrame) -> str:
    """The sentence the cross-dataset report gives the test."""
    test = friedman(accuracy)
    if test is None:
        return ("Friedman's test needs at least three architectures with a result on each of "
                "at least two datasets.")
    text = (f"Friedman's test over the {test.datasets} datasets, {test.architectures} "
            f"architectures with a result on each: chi-square {test.statistic:.2f}, "
            f"p = {test.p_value:.3g} (SciPy). Nemenyi critical difference of mean ranks at "
            f"{SIGNIFICANCE}: {test.critical_difference:.2f} (Demsar 2006). ")
    pairs = test.apart()
    if not test.p_value < SIGNIFICANCE:
        return text + "No difference between the architectures is shown."
    if not pairs:
        return text + "The ranks differ, but no pair by more than the critical difference."
    return text + "Shown apart: " + "; ".join(
        f"{md_escape(a)} ahead of {md_escape(b)}" for a, b in pairs) + "."


def performance_profile(accuracy: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """rho(tau): per architecture (rows), the share of datasets where its error is at most
    tau times the best error on that dataset; no result counts as never within."""
    error = (1.0 - accuracy).clip(lower=MIN_ERROR)
    ratio = (error / error.min(axis=0)).fillna(np.inf)
    return pd.DataFrame({tau: (ratio <= tau).mean(axis=1) for tau in taus})


def render_across(accuracy: pd.DataFrame, budget_hash: str, plot: str | None) -> str:
    ranks = mean_ranks(accuracy)
    profile = performance_profile(accuracy, np.array(PROFILE_TAUS))
    order = list(ranks.index)
    rows = [[md_escape(a), f"{ranks[a]:.2f}",
             *(f"{accuracy.at[a, d]:.4f}" if pd.notna(accuracy.at[a, d]) else "-"
               for d in accuracy.columns),
             *(f"{profile.at[a, t]:.2f}" for t in PROFILE_TAUS)] for a in order]
    headers = ["architecture", "mean rank", *(md_escape(d) for d in accuracy.columns),
               *(f"rho({t:g})" for t in PROFILE_TAUS)]
    parts = [
        "# archbench across datasets", "",
        f"Budget {budget_hash} on {len(accuracy.columns)} dataset(s): "
        f"{', '.join(md_escape(d) for d in accuracy.columns)}. Test accuracy per dataset; the "
        "mean rank over datasets (1 = best; an architecture without result ranks last there); "
        "rho(tau), the share of datasets on which the architecture's test error is within a "
        "factor tau of the best one's (a performance profile, Dolan and More 2002).", "",
        markdown_table(rows, headers), "", friedman_text(accuracy), "",
    ]
    if plot:
        parts += [f"![performance profile]({plot})", ""]
    return "\n".join(parts)


def write_across(run_dirs: list[Path], output: Path, allow_mixed_budgets: bool = False) -> Path:
    """Write the cross-dataset report (markdown and its performance-profile plot)."""
    from reports.plots import PERFORMANCE_PROFILE, performance_profile_plot

    accuracy = accuracy_table(run_dirs, allow_mixed_budgets)
    budget_hash = rundir.read_json(run_dirs[0] / rundir.MANIFEST)["budget"]["hash"]
    output.parent.mkdir(parents=True, exist_ok=True)
    taus = np.linspace(1.0, 3.0, 201)
    plot = performance_profile_plot(performance_profile(accuracy, taus), output.parent / PERFORMANCE_PROFILE)
    rundir.atomic_write_text(output, render_across(accuracy, budget_hash, plot.name))
    return output
