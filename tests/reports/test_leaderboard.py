"""The leaderboard, from hand-made run directories with known answers (no TensorFlow)."""

import math
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks import rundir
from reports.leaderboard import ReportError, load_run, md_escape, render, write_leaderboard
from reports.stats import compare_paired, mcnemar_exact, pareto_optimal, wilson_interval
from reports.wandb_source import runs_to_data
from tests.conftest import table_rows
from tests.helpers.runs import (
    HASH,
    ROWS,
    make_run,
    manifest,
    result,
    write_predictions,
    write_seed_predictions,
)


def test_not_applicable_architectures_have_their_own_section(tmp_path):
    rows = [*ROWS, {"architecture": "huge_net", "status": rundir.NOT_APPLICABLE,
                    "error": "needs images of 64x64 or more, got 28x28", "budget_hash": HASH}]
    text = render(load_run(make_run(tmp_path, rows)))
    section = text.split("## Not applicable to this input", 1)[1].split("\n## ", 1)[0]
    assert "- huge\\_net: needs images of 64x64 or more, got 28x28" in section
    failed = text.split("## Failed architectures", 1)[1].split("\n## ", 1)[0]
    assert "huge" not in failed and "broken\\_net" in failed


def test_header_shows_the_measurement_settings_when_recorded(tmp_path):
    run = make_run(tmp_path, ROWS)
    assert "**Measurements**" not in render(load_run(run))  # an older run: no line
    recorded = {**manifest(), "measurement": {"latency_calls": 30, "inference_repeats": 5}}
    # (the manifest is written with sorted keys)
    rundir.write_json(run / rundir.MANIFEST, recorded)
    assert "- **Measurements**: inference\\_repeats=5, latency\\_calls=30" in render(load_run(run))


def test_ranked_by_test_accuracy_with_winners_per_criterion(tmp_path):
    text = render(load_run(make_run(tmp_path, ROWS)))
    ranks = [(r[0], r[1]) for r in table_rows(text)]
    assert ranks == [("1", "big\\_net"), ("2", "mid\\_net"), ("3", "small\\_net")]
    assert "**Most accurate**: big\\_net (test accuracy 0.9000)" in text
    assert "**Fastest at inference**: small\\_net (0.50 ms" in text
    assert "**Fastest to train**: mid\\_net (5,000 training images/s; 0.0500 less test accuracy" in text
    assert "**Smallest**: small\\_net (1,000 parameters; 0.1000 less test accuracy" in text


def test_failed_architecture_is_listed_with_its_error(tmp_path):
    text = render(load_run(make_run(tmp_path, ROWS)))
    assert "## Failed architectures" in text
    assert "- broken\\_net: build failed: boom" in text
    assert "broken" not in " ".join(r[1] for r in table_rows(text))


def test_wilson_interval_matches_hand_computation():
    # p = 0.9, n = 1000, z = 1.96: centre 0.9019208 / 1.0038416 = 0.898469,
    # half-width 1.96 * sqrt(0.00009 + 0.00000096) / 1.0038416 = 0.018622.
    low, high = wilson_interval(0.9, 1000)
    assert low == pytest.approx(0.879847, abs=1e-4)
    assert high == pytest.approx(0.917091, abs=1e-4)


def test_interval_is_shown_in_the_table(tmp_path):
    text = render(load_run(make_run(tmp_path, ROWS[:1])))
    assert table_rows(text)[0][2] == "0.8000 [0.7741, 0.8236]"


def test_mixed_budgets_are_refused_unless_allowed(tmp_path):
    rows = [result("a", 0.8, 10, 1.0, 1.0), result("b", 0.9, 10, 1.0, 1.0, budget_hash="bbbbbbbbbbbb")]
    data = load_run(make_run(tmp_path, rows))
    with pytest.raises(ReportError, match="2 different budgets"):
        render(data)
    text = render(data, allow_mixed_budgets=True)
    assert "| a " in text and "different budget bbbbbbbbbbbb" in text


def test_awkward_names_do_not_break_tables(tmp_path):
    awkward = "a|b*c_d`e\nf"
    text = render(load_run(make_run(tmp_path, [result(awkward, 0.8, 10, 1.0, 1.0), result("plain", 0.7, 10, 1.0, 1.0)])))
    rows = table_rows(text)
    assert all(len(r) == len(rows[0]) for r in rows)
    assert rows[0][1] == "a\\|b\\*c\\_d\\`e f"
    assert md_escape("x\ny") == "x y"


def test_report_writes_file_and_refuses_non_run_dirs(tmp_path):
    run = make_run(tmp_path, ROWS)
    assert write_leaderboard(run) == run / rundir.LEADERBOARD
    assert (run / rundir.LEADERBOARD).read_text().startswith("# archbench leaderboard")
    with pytest.raises(rundir.RunDirError, match="is not an archbench run directory"):
        write_leaderboard(tmp_path)


def test_reports_never_import_tensorflow(tmp_path):
    run = make_run(tmp_path, ROWS)
    code = (
        "import sys; from pathlib import Path; from reports.leaderboard import write_leaderboard; "
        f"write_leaderboard(Path({str(run)!r})); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mcnemar_exact_matches_hand_computation():
    # b=1, c=7: 2 * (C(8,0) + C(8,1)) / 2^8 = 18/256
    assert mcnemar_exact(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_exact(7, 1) == pytest.approx(18 / 256)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    # Large counts (computed in log space) against exact integer arithmetic.
    exact = 2 * sum(math.comb(1000, i) for i in range(451)) / 2**1000
    assert mcnemar_exact(450, 550) == pytest.approx(exact, rel=1e-9)


def correctness(only_best: int, only_other: int, both: int, neither: int):
    best = np.array([True] * only_best + [False] * only_other + [True] * both + [False] * neither)
    other = np.array([False] * only_best + [True] * only_other + [True] * both + [False] * neither)
    return best, other


def test_paired_comparison_of_a_constructed_table():
    comparison = compare_paired(*correctness(10, 2, 80, 8))
    assert (comparison.only_best, comparison.only_other) == (10, 2)
    assert comparison.difference == pytest.approx(0.08)
    # 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 158/4096
    assert comparison.p_value == pytest.approx(158 / 4096)
    assert comparison.significant
    assert comparison.low < 0.08 < comparison.high


def test_pareto_set():
    flags = pareto_optimal([0.9, 0.85, 0.8, 0.8, 0.8], [3, 1, 0.5, 1, 0.5], [1e5, 1e4, 1e3, 1e4, 1e3])
    assert flags == [True, True, True, False, True]




def test_significance_calls_a_noisy_win_a_tie(tmp_path):
    accuracy = {"big_net": 0.93, "mid_net": 0.91, "small_net": 0.74}  # as the predictions say
    run = make_run(tmp_path, [{**r, "test_accuracy": accuracy.get(r["architecture"])} for r in ROWS])
    best, mid = correctness(3, 1, 90, 6)  # p = 0.625: tied
    _, small = correctness(20, 0, 74, 6)  # p < 0.001: a real win
    write_predictions(run, "big_net", best)
    write_predictions(run, "mid_net", mid)
    write_predictions(run, "small_net", small)
    text = render(load_run(run))
    assert ("**no significant difference** from mid\\_net (p = 0.625, Holm 0.625; too few "
            "differing results for any difference to be detectable)") in text
    assert "not training randomness" in text, "one seed: the verdict says what it covers"
    rows = {r[0]: r for r in table_rows(text, "## Is the win real?")}
    assert rows["mid\\_net"][-1] == "no significant difference"
    assert rows["small\\_net"][-1] == "big\\_net's trained model is more accurate"
    line = next(x for x in text.splitlines() if x.startswith("- **Most accurate**"))
    assert "its trained model beats the trained model of small\\_net" in line
    assert "a claim about the trained models on this test set, not about the architectures" in line
    assert "wins" not in line and "beats every other architecture" not in line
    assert rows["small\\_net"][1:4] == ["exact McNemar", "19", "0"]
    # 19 disagreeing of 100 images: 15 to 4 is the closest split still significant (p 0.019;
    # 14 to 5: 0.064), so (15 - 4) / 100; 4 disagreeing can never be (4 to 0: p 0.125)
    assert rows["small\\_net"][7] == "0.1100" and rows["mid\\_net"][7] == "-"
    assert float(rows["small\\_net"][6]) == pytest.approx(2 * float(rows["small\\_net"][5]), rel=1e-3)


def test_with_several_seeds_the_verdict_follows_the_mean_and_its_seed_test(tmp_path):
    """Seed 0 reverses the order of the means: a test on seed 0 alone would call it a win
    (p < 0.001) for the architecture that is worse on that seed."""
    big, mid = [0.70, 0.90, 0.91], [0.80, 0.81, 0.80]
    rows = [result("big_net", float(np.mean(big)), 10, 1, 1, final_seeds=3,
                   test_accuracy_std=float(np.std(big, ddof=1))),
            result("mid_net", float(np.mean(mid)), 10, 1, 1, final_seeds=3,
                   test_accuracy_std=float(np.std(mid, ddof=1)))]
    run = make_run(tmp_path, rows)
    write_seed_predictions(run, "big_net", big)
    write_seed_predictions(run, "mid_net", mid)
    text = render(load_run(run))
    [row] = table_rows(text, "## Is the win real?")
    assert row[1] == "Welch t over seeds" and row[-1] == "no significant difference"
    from scipy import stats as scipy_stats

    expected = scipy_stats.ttest_ind(big, mid, equal_var=False).pvalue
    assert float(row[5]) == pytest.approx(expected, rel=1e-3)
    assert "**Most accurate**: big\\_net" in text and "not training randomness" not in text


def test_a_worse_architecture_never_wins_whatever_the_p_value():
    comparison = compare_paired(*correctness(2, 40, 50, 8))
    assert comparison.p_value < 1e-6 and comparison.difference < 0
    assert not comparison.significant


def test_holm_adjusted_p_values_by_hand():
    from reports.stats import holm

    # sorted 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04, kept monotone: 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


@pytest.mark.parametrize("seeds", [2, 3, 5, 12, 30, 60])
def test_seed_intervals_use_the_exact_t_quantile(seeds):
    from scipy import stats as scipy_stats

    from reports.stats import seed_interval

    low, high = seed_interval(0.9, 0.01, seeds)
    assert (high - low) / 2 == pytest.approx(scipy_stats.t.ppf(0.975, seeds - 1) * 0.01 / seeds**0.5)


def test_budget_parity_flags_failures_and_early_stopping(tmp_path):
    run = make_run(tmp_path, ROWS)
    trials = [
        {"architecture": "big_net", "trial_id": "0", "status": "COMPLETED", "score": 0.89,
         "epochs_run": 2, "steps_run": 40, "train_seconds": 10, "val_accuracy_history": "[0.8, 0.89]",
         "budget_hash": HASH},
        {"architecture": "big_net", "trial_id": "1", "status": "COMPLETED", "score": 0.7,
         "epochs_run": 1, "steps_run": 20, "train_seconds": 5, "val_accuracy_history": "[0.7]",
         "budget_hash": HASH},
        {"architecture": "mid_net", "trial_id": "0", "status": "FAILED", "score": "",
         "epochs_run": 1, "train_seconds": 1, "error": "loss became nan", "budget_hash": HASH},
    ]
    rundir.write_rows(run / rundir.TRIALS, rundir.TRIAL_COLUMNS, trials)
    manifest = rundir.read_json(run / rundir.MANIFEST)
    manifest["budget"]["fields"]["epochs"] = 2
    rundir.write_json(run / rundir.MANIFEST, manifest)
    results = rundir.read_rows(run / rundir.RESULTS)
    for row in results:
        row["search_space_size"] = 72 if row["architecture"] == "big_net" else ""
    rundir.write_rows(run / rundir.RESULTS, rundir.RESULT_COLUMNS, results)
    text = render(load_run(run))
    assert "unless flagged: equal epochs (2 per trial, " in text
    rows = {r[0]: r for r in table_rows(text, "## Budget parity")}
    assert re.search(r"\| trial wall s +\|", text), "the trials' wall time, not the seconds a time budget counts"
    assert rows["big\\_net"][1:9] == ["2", "0", "3", "60", "15.0", "72", "0.8900", "0.7950"]
    assert rows["mid\\_net"][6] == "-", "a continuous space has no count"
    assert rows["big\\_net"][9] == "early-stopped"
    assert rows["mid\\_net"][9] == "1 failed trial(s)"
    assert "no result" in rows["broken\\_net"][9]
    # Under a time budget epochs differ by design: not flagged; the machine is named.
    assert "no configuration over" not in text
    manifest["budget"]["fields"].update(budget_by="time", trial_seconds=30, final_seconds=90,
                                        max_params=250_000, max_macs=9_000_000)
    manifest["environment"] = {"cpu": "Test CPU 3000", "cpu_count": 2, "gpus": []}
    rundir.write_json(run / rundir.MANIFEST, manifest)
    text = render(load_run(run))
    rows = {r[0]: r for r in table_rows(text, "## Budget parity")}
    assert rows["big\\_net"][9] == "ok"
    equal = ("equal training time on this machine (30 s per trial, 90 s per final training; "
             "valid only on Test CPU 3000, 2 CPUs, no GPU)")
    assert equal in text.split("## Verdict")[0], "the header says it"
    assert f"unless flagged: {equal}" in text
    assert ("no configuration over 250,000 parameters (max\\_params) or 9,000,000 "
            "multiply-accumulates per image (max\\_macs), the same cap for every architecture") in text


def test_written_report_has_csv_and_every_linked_plot(tmp_path):
    run = make_run(tmp_path, ROWS)
    rundir.write_rows(run / rundir.TRIALS, rundir.TRIAL_COLUMNS, [
        {"architecture": a, "trial_id": "0", "status": "COMPLETED", "score": 0.8, "epochs_run": 2,
         "train_seconds": 1, "val_accuracy_history": "[0.7, 0.8]", "budget_hash": HASH}
        for a in ("big_net", "mid_net", "small_net")
    ])
    path = write_leaderboard(run)
    text = path.read_text()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(links) == 4
    for link in links:
        assert (run / link).is_file() and (run / link).stat().st_size > 10_000
    table = pd.read_csv(run / "leaderboard.csv")
    assert table["architecture"].tolist() == ["big_net", "mid_net", "small_net"]
    assert table["pareto"].tolist() == [True, True, True]


def stand_in(job_type, arch, run_id, config=None, summary=None, group="g1"):
    base = {"architecture": arch, "budget": {"name": "quick", "trials": 2}, "budget_hash": HASH,
            "dataset": "fashion_mnist", "hyperparameters": {"units": 64, "tuner/epochs": 2}}
    return SimpleNamespace(config={**base, **(config or {})}, summary=summary or {},
                           name=f"{arch}-{run_id}", id=run_id, group=group, job_type=job_type)


def test_wandb_adapter_builds_the_same_tables_from_plain_objects():
    measurements = {"trainable_params": 10, "total_params": 12, "weight_bytes": 48,
                    "train_images_per_second": 100.0, "epoch_seconds": 2.0,
                    "inference_latency_ms": 1.5, "inference_images_per_second": 900.0}
    runs = [
        stand_in("trial", "cnn", "t0", {"trial_id": "0"}, {"status": "COMPLETED", "score": 0.81}),
        stand_in("trial", "cnn", "t1", {"trial_id": "1"}, {"status": "COMPLETED", "score": 0.85}),
        stand_in("trial", "bad", "t2", {"trial_id": "0"}, {"status": "FAILED", "error": "boom"}),
        stand_in("final", "cnn", "f0", {"seed": 0}, {"test_accuracy": 0.84, "test_loss": 0.4, **measurements}),
        stand_in("final", "cnn", "f1", {"seed": 1}, {"test_accuracy": 0.86, "test_loss": 0.5, **measurements}),
        stand_in("final", "cnn", "other", {"seed": 0}, {"test_accuracy": 0.1}, group="g2"),
        stand_in("report", "cnn", "r"),
    ]
    data = runs_to_data(runs, "g1", "team/proj")
    rows = {r["architecture"]: r for _, r in data.results.iterrows()}
    assert rows["cnn"]["test_accuracy"] == pytest.approx(0.85)
    assert rows["cnn"]["test_accuracy_std"] == pytest.approx(0.0141421, abs=1e-6)
    assert rows["cnn"]["val_accuracy"] == pytest.approx(0.85)
    assert rows["cnn"]["final_seeds"] == 2 and rows["cnn"]["wandb_run_id"] == "f0 f1"
    assert rows["cnn"]["best_hyperparameters"] == '{"units": 64}'
    assert rows["bad"]["status"] == "failed"
    assert len(data.trials) == 3
    text = render(data)
    assert "**Most accurate**: cnn (test accuracy 0.8500)" in text
    assert "- bad: no final run in W&B" in text
    with pytest.raises(ValueError, match="no W&B run in group 'nope'"):
        runs_to_data(runs, "nope")


def test_where_the_time_went_shows_each_phase_and_the_suite_overhead(tmp_path):
    run = make_run(tmp_path, ROWS)
    data = rundir.read_json(run / rundir.MANIFEST)
    data["time"] = {
        "architectures": {"big_net": {"wall": 200.0, "training": 130.0, "compilation": 20.0,
                                      "validation": 10.0,
                                      "evaluation": 10.0, "measurement": 10.0, "wandb": 12.0,
                                      "tuner": 2.0, "search": 0.0, "other": 6.0}},
        "run": {"wall": 250.0, "training": 150.0, "validation": 10.0, "evaluation": 10.0,
                "measurement": 10.0, "wandb": 12.0, "tuner": 2.0, "search": 0.0, "other": 56.0},
    }
    rundir.write_json(run / rundir.MANIFEST, data)
    rows = table_rows(render(load_run(run)), "## Where the time went")
    assert rows[0] == ["big\\_net", "200.0", "65.0%", "10.0%", "5.0%", "5.0%", "5.0%", "6.0%", "1.0%",
                       "0.0%", "3.0%", "10.0%"]
    assert rows[1][0].startswith("**whole run**") and rows[1][-1] == "28.0%"  # 70 of 250 s


def test_no_time_section_for_runs_made_before_it_existed(tmp_path):
    assert "## Where the time went" not in render(load_run(make_run(tmp_path, ROWS)))


@pytest.mark.parametrize("n", [60, pytest.param(1000, marks=pytest.mark.slow)])
def test_the_paired_interval_holds_zero_exactly_when_the_exact_test_does_not_reject(n):
    for only_best in range(0, 26):
        for only_other in range(0, 26):
            if only_best + only_other > n:
                continue
            test = compare_paired(*correctness(only_best, only_other, n - only_best - only_other, 0))
            assert test.low <= test.difference <= test.high
            holds_zero = test.low <= 0 <= test.high
            assert holds_zero == (test.p_value >= 0.05), (only_best, only_other, test)
    none = compare_paired(*correctness(0, 0, n, 0))
    assert none.low < 0 < none.high, "no disagreement is not proof of no difference"
    assert none.high == pytest.approx(1 - 0.025 ** (1 / n))  # exact bound for 0 of n


def test_smallest_detectable_difference_by_hand():
    from reports.stats import compare_seeds, mcnemar_detectable

    # 10 disagreeing images: 9 to 1 gives p = 22/1024 < 0.05, 8 to 2 gives 112/1024 > 0.05
    assert mcnemar_detectable(10, 100) == pytest.approx((9 - 1) / 100)
    assert mcnemar_detectable(5, 100) is None  # even 5 to 0 gives p = 0.0625
    assert mcnemar_detectable(6, 100) == pytest.approx(6 / 100)  # 6 to 0: p = 0.03125
    test = compare_seeds([0.90, 0.91, 0.92], [0.90, 0.905, 0.91])
    assert test.detectable == pytest.approx((test.high - test.low) / 2)
    significant = compare_seeds([0.90 + test.detectable * 1.01 + d for d in (0, 0.01, 0.02)],
                                [0.90, 0.905, 0.91])
    assert significant.p_value < 0.05  # just above the detectable difference: detected


def test_fastest_names_every_architecture_within_the_measurement_noise(tmp_path):
    rows = [result("small_net", 0.80, 1_000, 0.5, 900.0, inference_latency_iqr_ms=0.2),
            result("big_net", 0.90, 100_000, 3.0, 100.0, inference_latency_iqr_ms=0.1),
            result("mid_net", 0.85, 10_000, 1.0, 5000.0, inference_latency_iqr_ms=1.0)]
    text = render(load_run(make_run(tmp_path, rows)))
    line = next(x for x in text.splitlines() if x.startswith("- **Fastest at inference**"))
    assert line.startswith("- **Fastest at inference**: small\\_net (0.50 ms")
    assert line.endswith("within its measurement noise (overlapping interquartile ranges): "
                         "mid\\_net (1.00 ms per image at batch 1)")
    [row] = [r for r in table_rows(text) if r[1] == "mid\\_net"]
    assert row[9] == "1.00 (IQR 1.00)"


def test_rows_measured_on_two_machines_are_refused_or_flagged(tmp_path):
    rows = [result("small_net", 0.80, 1_000, 0.5, 900.0, machine="aaaaaaaaaaaa"),
            result("big_net", 0.90, 100_000, 3.0, 100.0, machine="aaaaaaaaaaaa"),
            result("mid_net", 0.85, 10_000, 1.0, 5000.0, machine="bbbbbbbbbbbb")]
    run = make_run(tmp_path, rows)
    manifest = rundir.read_json(run / rundir.MANIFEST)
    manifest["machines"] = {"aaaaaaaaaaaa": {"cpu": "EPYC", "threads": {"intra_op": 0}},
                            "bbbbbbbbbbbb": {"cpu": "EPYC", "threads": {"intra_op": 1}}}
    rundir.write_json(run / rundir.MANIFEST, manifest)
    with pytest.raises(ReportError, match=r"2 different machines or settings \(aaaaaaaaaaaa, "
                       r"bbbbbbbbbbbb; they differ in threads\)"):
        render(load_run(run))
    text = render(load_run(run), allow_mixed_budgets=True)
    flags = {r[0]: r[-1] for r in table_rows(text, "## Budget parity")}
    assert flags["mid\\_net"] == "other machine or settings bbbbbbbbbbbb"
    assert "other machine" not in flags["big\\_net"]


def test_wandb_adapter_takes_the_speeds_from_the_report_run():
    sizes = {"total_params": 12, "trainable_params": 10}  # the final run ends before timing
    speeds = {"inference_latency_ms": 1.5, "inference_latency_iqr_ms": 0.1,
              "train_images_per_second": 100.0}
    runs = [stand_in("trial", "cnn", "t0", {"trial_id": "0"}, {"status": "COMPLETED", "score": 0.8}),
            stand_in("final", "cnn", "f0", {"seed": 0}, {"test_accuracy": 0.84, **sizes}),
            stand_in("report", "cnn", "r", summary={"measurements": {"cnn": speeds}})]
    [row] = [r for _, r in runs_to_data(runs, "g1").results.iterrows()]
    assert row["inference_latency_ms"] == 1.5 and row["train_images_per_second"] == 100.0
    assert row["total_params"] == 12
