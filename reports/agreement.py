"""Does the cheaper budget predict the expensive one? One dataset's leaderboards under two
budgets: the rank agreement of the architectures they share (Kendall's tau-b, Spearman's
rho, permutation p-values), the pairs whose order flips, and whether the cheap budget's
pick is within the expensive run's statistical tie of its winner (the verdict's own test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import rundir
from benchmarks.budget import budget_from_dict
from reports.leaderboard import (
    ReportError,
    RunData,
    check_budgets,
    load_run,
    ranked,
    write_report,
)
from reports.markdown import markdown_table, md_escape
from reports.stats import (
    EXACT_PERMUTATIONS_UP_TO,
    PERMUTATION_SEED,
    SIGNIFICANCE,
    PairedComparison,
    RankAgreement,
    rank_agreement,
)
from reports.verdict import significance

MAX_FLIPS_SHOWN = 20
TEST = "test accuracy"
VALIDATION = "best trial's validation score"
PLAN = ("trials x epochs x tuning images + final seeds x final epochs x final training "
        "images, per architecture")
PLAN_SECONDS = ("trials x trial seconds + final seeds x final seconds of training, per "
                "architecture")
MEASURED_TRAINING = ("the training seconds each run measured (its time breakdown): one budget "
                     "is of epochs, the other of time, so their plans share no unit")


@dataclass(frozen=True)
class BudgetPair:
    """Two runs of one dataset under two budgets, and which one is the cheap one."""

    cheap: RunData
    expensive: RunData
    this_is_cheap: bool  # the run whose leaderboard carries the section is the cheap one
    why: str  # which budget was taken as cheap, and why


def planned_images(manifest: dict[str, Any]) -> tuple[int, str]:
    """The training images one architecture's budget plans to go through, and the sum
    written out: its search (trials x epochs x tuning images) and its final trainings
    (final seeds x final epochs x final training images). The sizes are the splits the run
    used (``split_sizes``), the budget's own where a run recorded none. Early stopping can
    only shorten it; for Hyperband, epochs is the most a trial gets.

    Raises:
        ReportError: neither records a size.
    """
    budget = budget_from_dict(manifest["budget"]["fields"])
    sizes = manifest["dataset"].get("split_sizes") or {}
    tune = sizes.get("tune") or budget.train_size
    final = sizes.get("final_train") or budget.final_train_size
    if not tune or not final:
        raise ReportError(f"run {manifest.get('name')} records no training split sizes: "
                          "the cost of its budget cannot be told")
    total = budget.trials * budget.epochs * tune + budget.final_seeds * budget.final_epochs * final
    return total, (f"{budget.trials} x {budget.epochs} x {tune:,} + {budget.final_seeds} x "
                   f"{budget.final_epochs} x {final:,}")


def planned_seconds(manifest: dict[str, Any]) -> tuple[float, str]:
    """The training seconds a time budget gives one architecture, and the sum written out."""
    budget = budget_from_dict(manifest["budget"]["fields"])
    total = budget.trials * budget.trial_seconds + budget.final_seeds * budget.final_seconds
    return total, (f"{budget.trials} x {budget.trial_seconds:,} s + {budget.final_seeds} x "
                   f"{budget.final_seconds:,} s")


def _training_seconds(manifest: dict[str, Any]) -> float | None:
    """The run's training seconds, its steps' compilation included (runs made before
    compilation was its own phase counted it in training)."""
    run = (manifest.get("time") or {}).get("run") or {}
    if run.get("training") is None:
        return None
    return run["training"] + run.get("compilation", 0.0)


def measured_training(manifest: dict[str, Any]) -> tuple[float, str]:
    """The training seconds a run measured (its time breakdown), whole run.

    Raises:
        ReportError: the run recorded no time breakdown.
    """
    seconds = _training_seconds(manifest)
    if seconds is None:
        raise ReportError(f"run {manifest.get('name')} records no training time: a budget of "
                          "epochs and one of time can only be ranked by what they measured")
    return seconds, f"{seconds:,.0f} s measured"


def costs(mine: dict[str, Any], theirs: dict[str, Any]):
    """Each run's cost in one unit, and how it was counted: the planned training images of
    two epoch budgets, the planned training seconds of two time budgets, else the training
    seconds the runs measured."""
    kinds = {budget_from_dict(m["budget"]["fields"]).budget_by for m in (mine, theirs)}
    if kinds == {"epochs"}:
        return planned_images(mine), planned_images(theirs), PLAN, "training images"
    if kinds == {"time"}:
        return planned_seconds(mine), planned_seconds(theirs), PLAN_SECONDS, "training seconds"
    return measured_training(mine), measured_training(theirs), MEASURED_TRAINING, "training seconds"


def pair_runs(this: RunData, other: RunData, this_dir: Path, other_dir: Path) -> BudgetPair:
    """The two runs, the cheaper budget's first.

    Raises:
        ReportError: other datasets or dataset files, the same budget, or budgets that plan
            the same training.
    """
    mine, theirs = this.manifest, other.manifest
    names = mine["dataset"]["name"], theirs["dataset"]["name"]
    where = f"{this_dir} and {other_dir}"
    if names[0] != names[1]:
        raise ReportError(f"{where} hold different datasets ({names[0]}, {names[1]}); --against "
                          "compares two budgets on one dataset")
    if mine["dataset"].get("checksums") != theirs["dataset"].get("checksums"):
        raise ReportError(f"{where} were made from different files of dataset {names[0]}; "
                          "--against compares two budgets on the same data")
    if mine["budget"]["hash"] == theirs["budget"]["hash"]:
        raise ReportError(f"{where} were made under the same budget ({mine['budget']['hash']}): "
                          "nothing to compare; --against compares two budgets of one dataset")
    (mine_images, mine_sum), (their_images, their_sum), plan, unit = costs(mine, theirs)
    if mine_images == their_images:
        raise ReportError(f"neither budget is cheaper: {where} both cost {mine_images:,} {unit} "
                          f"({plan}); nothing to compare")
    this_is_cheap = mine_images < their_images
    cheap, expensive = (this, other) if this_is_cheap else (other, this)
    cheap_label, expensive_label = labels(cheap, expensive)
    plans = [(mine_images, mine_sum, "this run"), (their_images, their_sum, str(other_dir))]
    (low, low_sum, low_dir), (high, high_sum, high_dir) = sorted(plans)
    why = (f"Taken as cheap: **{md_escape(cheap_label)}** ({md_escape(low_dir)}), whose budget costs "
           f"fewer {unit}: {low:,.0f} ({low_sum}) against {high:,.0f} ({high_sum}) for "
           f"**{md_escape(expensive_label)}** ({md_escape(high_dir)}); {plan}, dataset "
           f"{md_escape(names[0])}.{_measured(cheap, expensive)}")
    return BudgetPair(cheap, expensive, this_is_cheap, why)


def _measured(cheap: RunData, expensive: RunData) -> str:
    seconds = [_training_seconds(run.manifest) for run in (cheap, expensive)]
    if None in seconds:
        return ""
    return f" Training time measured: {seconds[0]:,.0f} s against {seconds[1]:,.0f} s."


def labels(cheap: RunData, expensive: RunData) -> tuple[str, str]:
    """The budgets' names, or their hashes where both have the same name."""
    budgets = cheap.manifest["budget"], expensive.manifest["budget"]
    names = [b["fields"].get("name") or b["hash"] for b in budgets]
    return (names[0], names[1]) if names[0] != names[1] else (budgets[0]["hash"], budgets[1]["hash"])


def scores(data: RunData, column: str) -> pd.Series:
    """``column`` of the architectures with a result, by architecture, in leaderboard order."""
    table = ranked(data)
    return table.set_index("architecture")[column].dropna()


def flipped_pairs(cheap: pd.Series, expensive: pd.Series) -> list[tuple[str, str]]:
    """Pairs ordered one way by ``cheap`` and the other way by ``expensive`` (ties in either
    are no flip), as (ahead under cheap, ahead under expensive), the expensive's best first."""
    names = list(expensive.sort_values(ascending=False, kind="stable").index)
    return [(b, a) for i, a in enumerate(names) for b in names[i + 1:]
            if expensive[a] > expensive[b] and cheap[a] < cheap[b]]


def pick_verdict(pick: str, table: pd.DataFrame, tests: dict[str, PairedComparison]) -> str:
    """What the expensive run's verdict says of the cheap budget's pick."""
    winner = md_escape(table.at[0, "architecture"])
    if pick == table.at[0, "architecture"]:
        return "it is the most accurate there too"
    test = tests.get(pick)
    if test is None:
        return f"not tested: no paired predictions of it and {winner}, the most accurate there"
    p = f"{test.test}, Holm-adjusted p = {test.p_adjusted:.3g}"
    if test.significant:
        return f"outside the statistical tie: {winner} beats it there ({p} < {SIGNIFICANCE})"
    return f"within the statistical tie of {winner}, the most accurate there ({p})"


def _number(value: float | None, form: str = ".3f") -> str:
    return "-" if value is None or math.isnan(value) else format(value, form)


def _row(measure: str, agreement: RankAgreement, flips: int) -> list[str]:
    needed = " / ".join("unreachable" if v is None else f"{v:.3f}"
                        for v in (agreement.kendall_needed, agreement.spearman_needed))
    pairs = agreement.count * (agreement.count - 1) // 2
    return [measure, TEST, str(agreement.count), _number(agreement.kendall_tau),
            _number(agreement.kendall_p, ".3g"), _number(agreement.spearman_rho),
            _number(agreement.spearman_p, ".3g"), needed if agreement.permutations else "-",
            f"{flips} of {pairs}"]


def _uncertainty(agreement: RankAgreement) -> str:
    n, orders = agreement.count, agreement.permutations
    if not orders:
        return ("Every architecture compared has the same test accuracy under one of the "
                "budgets: there is no order to correlate.")
    drawn = (f"all {n}! = {orders:,} orders of the architectures (exact)" if agreement.exact else
             f"{orders:,} random orders of the architectures (seeded Monte-Carlo, seed "
             f"{PERMUTATION_SEED}; every order is enumerated up to {EXACT_PERMUTATIONS_UP_TO} "
             "architectures)")
    return (f"With {n} architectures a rank correlation is very uncertain (without ties, one "
            f"flipped pair moves Kendall's tau by 2/{n * (n - 1) // 2} = "
            f"{2 / (n * (n - 1) / 2):.2f}). p: two-sided permutation p-value over {drawn}, the "
            "share of orders whose correlation is at least as far from 0 as the one observed: "
            "how often an order with no relation to the cheap one agrees as well. Needed: the "
            f"smallest |tau| / |rho| that reaches p < {SIGNIFICANCE} with this many "
            "architectures and these ties (unreachable: no order does).")


def _flip_lines(measure: str, cheap: pd.Series, expensive: pd.Series,
                names: tuple[str, str]) -> list[str]:
    flips = flipped_pairs(cheap, expensive)
    if not flips:
        return [f"- {measure} under {names[0]}: no pair flips."]
    lines = [f"- {measure} under {names[0]}, {len(flips)} pair(s):"]
    for ahead_cheap, ahead_expensive in flips[:MAX_FLIPS_SHOWN]:
        a, b = md_escape(ahead_cheap), md_escape(ahead_expensive)
        lines.append(
            f"  - **{a}** / **{b}**: {a} ahead in {measure} under {names[0]} "
            f"({cheap[ahead_cheap]:.4f} against {cheap[ahead_expensive]:.4f}), {b} ahead in "
            f"test accuracy under {names[1]} "
            f"({expensive[ahead_expensive]:.4f} against {expensive[ahead_cheap]:.4f})")
    if len(flips) > MAX_FLIPS_SHOWN:
        lines.append(f"  - and {len(flips) - MAX_FLIPS_SHOWN} more")
    return lines


def agreement_section(pair: BudgetPair, plot: str | None) -> list[str]:
    """The section's markdown lines."""
    names = tuple(md_escape(n) for n in labels(pair.cheap, pair.expensive))
    heading = ("## Does this budget predict the more expensive one?" if pair.this_is_cheap
               else "## Does the cheaper budget predict this one?")
    expensive = scores(pair.expensive, "test_accuracy")
    cheap = {TEST: scores(pair.cheap, "test_accuracy"),
             VALIDATION: scores(pair.cheap, "val_accuracy")}
    common = [a for a in cheap[TEST].index if a in expensive.index]
    parts = [heading, "", pair.why, "", *_membership(pair, common, names), ""]
    if len(common) < 2:
        return parts + ["_Fewer than two architectures have a result under both budgets: no "
                        "order to compare._", ""]
    measures = {m: s.reindex(common).dropna() for m, s in cheap.items()}
    agreements = {m: rank_agreement(s.to_numpy(), expensive[s.index].to_numpy())
                  for m, s in measures.items()}
    rows = [_row(m, agreements[m], len(flipped_pairs(s, expensive[s.index])))
            for m, s in measures.items()]
    headers = [f"under {names[0]}", f"predicts, under {names[1]}", "architectures",
               "Kendall tau-b", "p", "Spearman rho", "p", f"needed for p < {SIGNIFICANCE}",
               "pairs flipped"]
    parts += [_uncertainty(agreements[TEST]), "", markdown_table(rows, headers), "",
              "### Pairs whose order flips", ""]
    for measure, series in measures.items():
        parts += _flip_lines(measure, series, expensive[series.index], names)
    parts += ["", f"### The cheap budget's pick, judged by the {names[1]} verdict", "",
              f"The architecture the cheap budget ranks first, among those compared, against "
              f"the {names[1]} leaderboard's verdict (its most accurate against each other one, "
              "Holm-corrected): the same test, not a second one.", "",
              *_pick_lines(pair, measures, names), ""]
    if plot:
        parts += [f"![Accuracy under {names[0]} against {names[1]}]({plot})", ""]
    return parts


def _membership(pair: BudgetPair, common: list[str], names: tuple[str, str]) -> list[str]:
    have = [set(scores(run, "test_accuracy").index) for run in (pair.cheap, pair.expensive)]
    everyone = dict.fromkeys([*pair.expensive.results["architecture"],
                              *pair.cheap.results["architecture"]])
    missing = []
    for arch in everyone:
        if arch not in common:
            lacking = " or ".join(name for name, has in zip(names, have, strict=True)
                                  if arch not in has)
            missing.append(f"{md_escape(arch)} (no test accuracy under {lacking})")
    lines = [f"Compared: the {len(common)} architecture(s) with a test accuracy under both: "
             f"{', '.join(md_escape(a) for a in common) or 'none'}."]
    if missing:
        lines.append(f"Not compared: {', '.join(missing)}.")
    return lines


def _pick_lines(pair: BudgetPair, measures: dict[str, pd.Series],
                names: tuple[str, str]) -> list[str]:
    table = ranked(pair.expensive)
    tests = significance(table, pair.expensive.correct, pair.expensive.seed_accuracy)
    # idxmax takes the first of the best: the cheap leaderboard's order breaks ties
    return [f"- By {measure} under {names[0]}: **{md_escape(str(series.idxmax()))}**; under "
            f"{names[1]}, {pick_verdict(str(series.idxmax()), table, tests)}."
            for measure, series in measures.items()]


def plot_points(pair: BudgetPair) -> pd.DataFrame:
    """Per architecture under both budgets: cheap test and validation, expensive test."""
    expensive = scores(pair.expensive, "test_accuracy")
    cheap = scores(pair.cheap, "test_accuracy")
    common = [a for a in cheap.index if a in expensive.index]
    return pd.DataFrame({"cheap_test": cheap[common],
                         "cheap_validation": scores(pair.cheap, "val_accuracy").reindex(common),
                         "expensive_test": expensive[common]})


def write_leaderboard_against(run_dir: Path, other_dir: Path, output: Path | None = None,
                              allow_mixed_budgets: bool = False) -> Path:
    """``run_dir``'s leaderboard (default ``RUN_DIR/leaderboard.md``) with the section that
    compares it with ``other_dir`` (same dataset, another budget) and its plot beside it.

    Raises:
        ReportError, RunDirError: the runs cannot be compared; nothing is written.
    """
    from reports.plots import BUDGET_AGREEMENT, budget_agreement_plot

    this, other = load_run(run_dir), load_run(other_dir)
    check_budgets(this, allow_mixed_budgets)
    check_budgets(other, allow_mixed_budgets)
    pair = pair_runs(this, other, run_dir, other_dir)
    output = output or run_dir / rundir.LEADERBOARD
    output.parent.mkdir(parents=True, exist_ok=True)
    points, plot = plot_points(pair), None
    if not points.empty:
        names = labels(pair.cheap, pair.expensive)
        plot = budget_agreement_plot(points, *names, output.parent / BUDGET_AGREEMENT).name
    return write_report(this, output, allow_mixed_budgets, agreement_section(pair, plot))
