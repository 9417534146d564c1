"""Was the budget enough? The expected best score against the number of trials."""

import itertools

import numpy as np
import pandas as pd
import pytest

from reports.enough import enough_section, enough_table, expected_best_curves, reorder_warning
from reports.stats import expected_best


@pytest.mark.parametrize("scores", [[0.5], [0.7, 0.9], [0.8, 0.6, 0.9], [0.3, 0.3, 0.8, 0.5]])
def test_expected_best_against_every_possible_draw(scores):
    means, stds = expected_best(scores)
    for n in range(1, len(scores) + 1):
        best = [max(draw) for draw in itertools.product(scores, repeat=n)]  # equally likely
        assert means[n - 1] == pytest.approx(np.mean(best))
        assert stds[n - 1] == pytest.approx(np.std(best))
    assert means[0] == pytest.approx(np.mean(scores)), "one trial: the mean trial"
    assert all(np.diff(means) >= -1e-12), "more trials never expect less"


@pytest.mark.parametrize("fixed, scores", [(0.77, []), (0.77, [0.27]), (0.6, [0.9, 0.5]),
                                           (0.8, [0.3, 0.8, 0.95])])
def test_a_trial_every_search_contains_is_not_a_draw(fixed, scores):
    """A search's first trial at the defaults is in every search: n trials are it and the
    best of n - 1 draws from the other scores."""
    means, stds = expected_best(scores, fixed=fixed)
    assert len(means) == len(scores) + 1
    assert (means[0], stds[0]) == (fixed, 0.0), "one trial: the defaults' own score"
    for n in range(2, len(scores) + 2):
        best = [max(fixed, *draw) for draw in itertools.product(scores, repeat=n - 1)]
        assert means[n - 1] == pytest.approx(np.mean(best))
        assert stds[n - 1] == pytest.approx(np.std(best))


def test_the_trial_at_the_defaults_is_read_from_its_origin():
    table = trials({"a": [0.77, 0.27]})
    table["origin"] = ["defaults", "tuner"]
    means, _ = expected_best_curves(table)["a"]
    assert list(means) == pytest.approx([0.77, 0.77])  # as draws: 0.52, then 0.645
    table["origin"] = ""  # a run made before the column, or a search without defaults
    means, _ = expected_best_curves(table)["a"]
    assert list(means) == pytest.approx([0.52, 0.645])


def trials(scores: dict[str, list[float]], failed: int = 0) -> pd.DataFrame:
    rows = [{"architecture": arch, "trial_id": str(i), "status": "COMPLETED", "score": str(s)}
            for arch, values in scores.items() for i, s in enumerate(values)]
    rows += [{"architecture": "a", "trial_id": f"f{i}", "status": "FAILED", "score": ""}
             for i in range(failed)]
    return pd.DataFrame(rows)


def test_failed_trials_do_not_count():
    curves = expected_best_curves(trials({"a": [0.8, 0.9]}, failed=3))
    assert len(curves["a"][0]) == 2


def test_no_warning_when_the_top_two_are_far_apart_and_flat():
    curves = expected_best_curves(trials({"a": [0.90, 0.90, 0.91], "b": [0.80, 0.80, 0.80]}))
    assert reorder_warning(curves, ["a", "b"]) is None


def test_a_warning_when_the_curves_cross():
    # a: one lucky trial, b: steady; with one trial b is expected better, with three a is
    curves = expected_best_curves(trials({"a": [0.70, 0.70, 0.95], "b": [0.85, 0.85, 0.85]}))
    assert curves["a"][0][0] < curves["b"][0][0] and curves["a"][0][-1] > curves["b"][0][-1]
    assert "their expected-best validation curves cross" in reorder_warning(curves, ["a", "b"])


def test_a_warning_when_the_last_trial_gained_more_than_the_gap():
    curves = expected_best_curves(trials({"a": [0.86, 0.87], "b": [0.76, 0.90]}))
    means_a, means_b = curves["a"][0], curves["b"][0]  # 0.865, 0.8675 and 0.83, 0.865
    assert all(means_a > means_b), "no crossing here"
    warning = reorder_warning(curves, ["a", "b"])
    assert warning and "more than the" in warning and "with 2 trial(s) each" in warning


def test_the_table_follows_the_ranking_and_shows_the_last_gain():
    curves = expected_best_curves(trials({"a": [0.8, 0.9], "b": [0.7]}))
    table = enough_table(curves, ["b", "a", "gone"])
    lines = table.splitlines()
    assert lines[2].startswith("| b ") and lines[3].startswith("| a ")
    assert "+0.0250" in lines[3] and lines[2].rstrip(" |").endswith("-")  # 0.875 - 0.85


def test_the_leaderboard_shows_the_curves_the_warning_and_the_plot(tmp_path):
    from benchmarks import rundir
    from reports.leaderboard import load_run, render, write_leaderboard
    from tests.helpers.runs import ROWS, make_run

    run = make_run(tmp_path, ROWS)  # ranked big_net, mid_net, small_net
    rows = [{"architecture": arch, "trial_id": str(i), "status": "COMPLETED", "score": score,
             "epochs_run": 1, "steps_run": 10, "train_seconds": 1.0, "hyperparameters": "{}"}
            for arch, scores in {"big_net": [0.70, 0.70, 0.95], "mid_net": [0.85] * 3,
                                 "small_net": [0.6, 0.7, 0.8]}.items()
            for i, score in enumerate(scores)]
    rundir.write_rows(run / rundir.TRIALS, rundir.TRIAL_COLUMNS, rows)
    text = render(load_run(run))
    assert "- **More trials could reorder big\\_net and mid\\_net**: their expected-best" in text
    section = text.split("## Was the budget enough?", 1)[1].split("\n## ", 1)[0]
    ranked = [line.split("|")[1].strip() for line in section.splitlines()
              if line.startswith("| ") and "architecture" not in line]
    assert ranked == ["big\\_net", "mid\\_net", "small\\_net"]
    write_leaderboard(run)
    assert (run / "expected_best.png").stat().st_size > 10_000
    assert "expected_best.png" in (run / "leaderboard.md").read_text()


def test_one_trial_each_says_so_instead_of_a_table_of_flat_curves():
    one = {"a": (np.array([0.8]), np.array([0.0])), "b": (np.array([0.7]), np.array([0.0]))}
    section = "\n".join(enough_section(one, ["a", "b"]))
    assert "Every search ran one trial" in section and "|" not in section
    two = {**one, "b": (np.array([0.7, 0.75]), np.array([0.0, 0.01]))}
    assert "| b " in "\n".join(enough_section(two, ["a", "b"]))
