"""Does the cheaper budget predict the expensive one? Rank agreement of two runs' leaderboards,
from hand-made run directories with known answers (no TensorFlow)."""

import itertools
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmarks import rundir
from benchmarks.cli.main import EXIT_BAD_INPUT, main
from reports.agreement import flipped_pairs, write_leaderboard_against
from reports.leaderboard import ReportError
from reports.stats import all_orders, permuted_statistics, rank_agreement
from tests.conftest import table_rows
from tests.helpers.runs import manifest, result, write_predictions

CHEAP, EXPENSIVE = "a" * 12, "b" * 12
SECTION = "## Does the cheaper budget predict this one?"
# Planned training images per architecture with 100 tuning and 100 final training images:
# quick 3 x 2 x 100 + 1 x 2 x 100 = 800, standard 4 x 4 x 100 + 1 x 8 x 100 = 2,400.
QUICK = {"name": "quick", "trials": 3, "epochs": 2, "final_seeds": 1, "final_epochs": 2}
STANDARD = {"name": "standard", "trials": 4, "epochs": 4, "final_seeds": 1, "final_epochs": 8}


def make_budget_run(tmp_path, name, fields, budget_hash, rows, dataset="fashion_mnist"):
    run = tmp_path / name
    data = manifest(name=name, budget_hash=budget_hash)
    data["budget"]["fields"] = dict(fields)
    data["dataset"]["name"] = dataset
    rundir.write_json(run / rundir.MANIFEST, data)
    rundir.write_rows(run / rundir.RESULTS, rundir.RESULT_COLUMNS,
                      [{**r, "budget_hash": budget_hash} for r in rows])
    return run


def cheap_rows():
    """b ahead of a on test accuracy (a flip: a wins under standard); on validation c leads,
    ahead of a and b (two flips)."""
    return [result("a", 0.80, 10, 1, 1, val_accuracy=0.82),
            result("b", 0.85, 10, 1, 1, val_accuracy=0.81),
            result("c", 0.70, 10, 1, 1, val_accuracy=0.83),
            result("d", 0.60, 10, 1, 1, val_accuracy=0.60),
            result("only_cheap", 0.50, 10, 1, 1),
            {"architecture": "broken", "status": "failed", "error": "boom"}]


def expensive_rows():
    return [result("a", 0.90, 10, 1, 1), result("b", 0.88, 10, 1, 1),
            result("c", 0.80, 10, 1, 1), result("d", 0.75, 10, 1, 1),
            result("only_expensive", 0.95, 10, 1, 1)]


@pytest.fixture
def two_budgets(tmp_path):
    cheap = make_budget_run(tmp_path, "fm-quick", QUICK, CHEAP, cheap_rows())
    expensive = make_budget_run(tmp_path, "fm-standard", STANDARD, EXPENSIVE, expensive_rows())
    return cheap, expensive


def section(text, heading=SECTION):
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("first,second", [
    ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]),
    ([1, 2, 2, 3, 4, 5], [3, 1, 2, 2, 6, 5]),  # ties in both
    ([0.8, 0.8, 0.7, 0.9], [0.9, 0.85, 0.85, 0.95]),
    ([1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1]),
    ([1, 1, 2, 2, 3, 3, 4, 4, 5], [2, 1, 2, 3, 3, 5, 4, 6, 6]),  # beyond exact: Monte-Carlo
])
def test_kendall_and_spearman_are_scipys(first, second):
    agreement = rank_agreement(first, second)
    assert agreement.kendall_tau == pytest.approx(scipy_stats.kendalltau(first, second).statistic)
    assert agreement.spearman_rho == pytest.approx(scipy_stats.spearmanr(first, second).statistic)
    assert agreement.count == len(first)


def test_every_permuted_statistic_equals_scipys_with_ties():
    first, second = np.array([1, 2, 2, 3, 4.0]), np.array([3, 1, 1, 2, 5.0])
    orders = all_orders(5)
    taus, rhos = permuted_statistics(first, second, orders)
    for order, tau, rho in zip(orders, taus, rhos, strict=True):
        assert tau == pytest.approx(scipy_stats.kendalltau(first, second[order]).statistic)
        assert rho == pytest.approx(scipy_stats.spearmanr(first, second[order]).statistic)


def test_the_exact_p_value_is_the_brute_force_one():
    first, second = np.array([1, 2, 2, 3, 4, 5.0]), np.array([2, 1, 3, 3, 6, 4.0])
    observed_tau = scipy_stats.kendalltau(first, second).statistic
    observed_rho = scipy_stats.spearmanr(first, second).statistic
    as_strong = {"tau": 0, "rho": 0}
    orders = list(itertools.permutations(range(6)))
    for order in orders:
        shuffled = second[list(order)]
        as_strong["tau"] += abs(scipy_stats.kendalltau(first, shuffled).statistic) >= abs(observed_tau) - 1e-9
        as_strong["rho"] += abs(scipy_stats.spearmanr(first, shuffled).statistic) >= abs(observed_rho) - 1e-9
    agreement = rank_agreement(first, second)
    assert agreement.exact and agreement.permutations == 720
    assert agreement.kendall_p == pytest.approx(as_strong["tau"] / 720, abs=1e-12)
    assert agreement.spearman_p == pytest.approx(as_strong["rho"] / 720, abs=1e-12)
    assert 0 < agreement.kendall_p < 1


def test_without_ties_the_exact_p_value_is_scipys_exact_kendall_test():
    first, second = [1, 2, 3, 4, 5, 6, 7], [2, 1, 3, 5, 4, 7, 6]
    expected = scipy_stats.kendalltau(first, second, method="exact").pvalue
    assert rank_agreement(first, second).kendall_p == pytest.approx(expected)


def test_beyond_eight_a_seeded_monte_carlo_sample_close_to_the_exact_answer():
    first, second = np.arange(9.0), np.array([1, 0, 3, 2, 4, 6, 5, 8, 7.0])
    sampled = rank_agreement(first, second)
    assert not sampled.exact and sampled.permutations == 10_000
    assert rank_agreement(first, second) == sampled, "seeded: the same answer every time"
    exact = rank_agreement(first, second, exact_up_to=9)
    assert exact.exact and exact.permutations == 362_880
    assert sampled.kendall_p == pytest.approx(exact.kendall_p, abs=0.01)
    assert sampled.spearman_p == pytest.approx(exact.spearman_p, abs=0.01)
    assert sampled.kendall_p >= 1 / 10_001


def test_what_a_correlation_needs_to_reach_p_005():
    # 4 architectures: the perfect orders are 2 of 24 (p = 0.083): no order reaches 0.05.
    four = rank_agreement([1, 2, 3, 4], [1, 2, 3, 4])
    assert four.kendall_p == pytest.approx(2 / 24) and four.kendall_needed is None
    # 5: |tau| = 1 is 2 of 120 orders (0.017); |tau| >= 0.8 is 10 of 120 (0.083).
    assert rank_agreement([1, 2, 3, 4, 5], [1, 2, 3, 5, 4]).kendall_needed == pytest.approx(1.0)


def test_flipped_pairs_ignore_ties():
    import pandas as pd

    cheap = pd.Series({"a": 0.8, "b": 0.85, "c": 0.7, "d": 0.7})
    expensive = pd.Series({"a": 0.9, "b": 0.88, "c": 0.8, "d": 0.85})
    assert flipped_pairs(cheap, expensive) == [("b", "a")]


def test_the_section_names_the_flipped_pair_and_the_missing(two_budgets):
    cheap, expensive = two_budgets
    text = write_leaderboard_against(expensive, cheap).read_text()
    part = section(text)
    assert "Taken as cheap: **quick**" in part and "800 (3 x 2 x 100 + 1 x 2 x 100) against 2,400" in part
    assert "- test accuracy under quick, 1 pair(s):" in part
    assert "**b** / **a**: b ahead in test accuracy under quick (0.8500 against 0.8000), a ahead in test accuracy under standard (0.9000 against 0.8800)" in part
    assert "best trial's validation score under quick, 2 pair(s)" in part
    assert "**c** / **a**" in part and "**c** / **b**" in part
    assert "Compared: the 4 architecture(s) with a test accuracy under both: b, a, c, d." in part
    assert "only\\_cheap (no test accuracy under standard)" in part
    assert "only\\_expensive (no test accuracy under quick)" in part
    assert "broken (no test accuracy under quick or standard)" in part
    assert "all 4! = 24 orders" in part and "very uncertain" in part
    rows = {r[0]: r for r in table_rows(text, SECTION)}
    tau = scipy_stats.kendalltau([0.85, 0.80, 0.70, 0.60], [0.88, 0.90, 0.80, 0.75]).statistic
    assert rows["test accuracy"][2:4] == ["4", f"{tau:.3f}"]
    assert rows["test accuracy"][-1] == "1 of 6" and rows["best trial's validation score"][-1] == "2 of 6"
    [link] = re.findall(r"!\[[^]]*\]\(([^)]+)\)", part)
    assert (expensive / link).stat().st_size > 10_000
    assert text.index("## Verdict") < text.index(SECTION) < text.index("## Budget parity")


def test_the_cheap_run_is_found_whichever_comes_first(two_budgets):
    cheap, expensive = two_budgets
    text = write_leaderboard_against(cheap, expensive).read_text()
    assert SECTION not in text
    part = section(text, "## Does this budget predict the more expensive one?")
    assert "Taken as cheap: **quick** (this run)" in part
    assert "**b** / **a**" in part


def test_the_cheap_pick_is_judged_by_the_expensive_verdict(two_budgets):
    cheap, expensive = two_budgets
    best = np.array([True] * 95 + [False] * 5)  # only_expensive: 0.95, as its results row
    a, tied, beaten = best.copy(), best.copy(), best.copy()
    a[:5] = False  # 0.90: 5 against 0, exact McNemar p = 0.0625
    tied[:9], tied[95:97] = False, True  # 0.88: 9 against 2, p = 0.065
    beaten[:15] = False  # 0.80: 15 against 0
    for arch, correct in (("a", a), ("b", tied), ("c", beaten), ("only_expensive", best)):
        write_predictions(expensive, arch, correct)
    part = section(write_leaderboard_against(expensive, cheap).read_text())
    # under standard only_expensive is the most accurate, and a, b and c are measured against it
    assert "By test accuracy under quick: **b**; under standard, within the statistical tie of only\\_expensive" in part
    assert "By best trial's validation score under quick: **c**; under standard, outside the statistical tie: only\\_expensive beats it" in part


def test_the_verdicts_winner_among_the_compared(tmp_path):
    rows = [r for r in expensive_rows() if r["architecture"] != "only_expensive"]
    cheap = make_budget_run(tmp_path, "q", QUICK, CHEAP, cheap_rows())
    expensive = make_budget_run(tmp_path, "s", STANDARD, EXPENSIVE, rows)
    best = np.array([True] * 90 + [False] * 10)  # a: 0.90, as its results row
    tied = best.copy()
    tied[:3], tied[90] = False, True  # b: 0.88, 3 against 1
    write_predictions(expensive, "a", best)
    write_predictions(expensive, "b", tied)
    part = section(write_leaderboard_against(expensive, cheap).read_text())
    assert "**b**; under standard, within the statistical tie of a, the most accurate there (exact McNemar, Holm-adjusted p = 0.625)" in part
    assert "**c**; under standard, not tested" in part


SAME_PLAN = {"name": "other", "trials": 2, "epochs": 8, "final_seeds": 1, "final_epochs": 8}


@pytest.mark.parametrize("change,message", [
    ({"dataset": "digits"}, "hold different datasets (fashion_mnist, digits)"),
    ({"budget_hash": EXPENSIVE}, "were made under the same budget (bbbbbbbbbbbb): nothing to compare"),
    # 2 x 8 x 100 + 1 x 8 x 100 = 2,400 training images, as standard's
    ({"fields": SAME_PLAN}, "neither budget is cheaper: "),
])
def test_runs_that_cannot_be_compared_are_refused_in_one_line(capsys, tmp_path, change, message):
    other = make_budget_run(tmp_path, "other", change.get("fields", QUICK),
                            change.get("budget_hash", CHEAP), cheap_rows(),
                            dataset=change.get("dataset", "fashion_mnist"))
    expensive = make_budget_run(tmp_path, "fm-standard", STANDARD, EXPENSIVE, expensive_rows())
    code = main(["report", str(expensive), "--against", str(other)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert message in err and err.startswith("archbench: error: ") and err.count("\n") == 1
    assert not (expensive / rundir.LEADERBOARD).exists(), "nothing is written"


def test_other_dataset_files_are_refused(two_budgets):
    cheap, expensive = two_budgets
    data = rundir.read_json(cheap / rundir.MANIFEST)
    data["dataset"]["checksums"] = {"f.gz": "cd" * 32}
    rundir.write_json(cheap / rundir.MANIFEST, data)
    with pytest.raises(ReportError, match="different files of dataset fashion_mnist"):
        write_leaderboard_against(expensive, cheap)


def test_the_command_writes_the_section_and_refuses_several_run_dirs(capsys, two_budgets):
    cheap, expensive = two_budgets
    assert main(["report", str(expensive), "--against", str(cheap)]) == 0
    assert capsys.readouterr().out.strip() == str(expensive / rundir.LEADERBOARD)
    assert SECTION in (expensive / rundir.LEADERBOARD).read_text()
    code = main(["report", str(expensive), str(cheap), "--against", str(cheap)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "give one RUN_DIR" in err and err.count("\n") == 1


def test_the_comparison_never_imports_tensorflow(two_budgets):
    cheap, expensive = two_budgets
    code = (
        "import sys; from pathlib import Path; "
        "from reports.agreement import write_leaderboard_against; "
        f"write_leaderboard_against(Path({str(expensive)!r}), Path({str(cheap)!r})); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


QUICK_TIME = {"name": "quick", "trials": 2, "epochs": 1, "final_seeds": 1, "final_epochs": 1,
              "budget_by": "time", "trial_seconds": 10, "final_seconds": 30}
STANDARD_TIME = {**QUICK_TIME, "name": "standard", "trials": 3, "trial_seconds": 40,
                 "final_seconds": 180}


def with_training_seconds(run, seconds):
    data = rundir.read_json(run / rundir.MANIFEST)
    data["time"] = {"run": {"training": seconds}}
    rundir.write_json(run / rundir.MANIFEST, data)
    return run


def test_two_time_budgets_are_ranked_by_their_planned_training_seconds(tmp_path):
    # epochs alone would call this pair equal (1 per trial, 1 per final training)
    cheap = make_budget_run(tmp_path, "q", QUICK_TIME, CHEAP, cheap_rows())
    expensive = make_budget_run(tmp_path, "s", STANDARD_TIME, EXPENSIVE, expensive_rows())
    part = section(write_leaderboard_against(cheap, expensive).read_text(),
                   "## Does this budget predict the more expensive one?")
    assert "Taken as cheap: **quick** (this run), whose budget costs fewer training seconds: " \
           "50 (2 x 10 s + 1 x 30 s) against 300 (3 x 40 s + 1 x 180 s)" in part


def test_a_budget_of_epochs_and_one_of_time_are_ranked_by_measured_training(tmp_path):
    # planned images would take the time budget (1-epoch plan) as the cheap one
    cheap = with_training_seconds(
        make_budget_run(tmp_path, "q", QUICK, CHEAP, cheap_rows()), 500.0)
    expensive = make_budget_run(tmp_path, "s", STANDARD_TIME, EXPENSIVE, expensive_rows())
    with pytest.raises(ReportError, match="records no training time"):
        write_leaderboard_against(cheap, expensive)
    with_training_seconds(expensive, 2400.0)
    part = section(write_leaderboard_against(expensive, cheap).read_text())
    assert "Taken as cheap: **quick**" in part and "500 (500 s measured) against 2,400" in part
