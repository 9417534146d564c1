"""The verdict's claims, each fault an independent review found built as a run directory:
a claim the evidence does not support is never printed (issue 35)."""

import numpy as np
import pytest

from reports import ReportError
from reports.leaderboard import load_run, render
from tests.conftest import table_rows
from tests.helpers.runs import make_run, result, write_predictions, write_seed_predictions


def _most_accurate(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("- **Most accurate**"))


def _seeded(arch, accuracies, **extra):
    return result(arch, float(np.mean(accuracies)), 10, 1, 1, final_seeds=len(accuracies),
                  test_accuracy_std=float(np.std(accuracies, ddof=1)) if len(accuracies) > 1
                  else 0.0, **extra)


def test_seeds_without_spread_are_no_evidence_of_a_win(tmp_path):
    """Fault 1: Welch's test is undefined without spread; it used to give p = 0."""
    a, b = [0.91, 0.91], [0.90, 0.90]
    run = make_run(tmp_path, [_seeded("a", a), _seeded("b", b)])
    write_seed_predictions(run, "a", a)
    write_seed_predictions(run, "b", b)
    text = render(load_run(run))
    line = _most_accurate(text)
    assert "beats" not in line and "no spread between the seeds" in line
    [row] = table_rows(text, "## Is the win real?")
    assert row[-1] == "not testable"


def test_an_architecture_without_predictions_is_not_counted_as_beaten(tmp_path):
    """Fault 2: c was never tested, yet 'a beats every other architecture'."""
    run = make_run(tmp_path, [result("a", 0.92, 10, 1, 1), result("c", 0.919, 10, 1, 1),
                              result("b", 0.80, 10, 1, 1)])
    write_predictions(run, "a", [True] * 92 + [False] * 8)
    write_predictions(run, "b", [True] * 80 + [False] * 20)
    line = _most_accurate(render(load_run(run)))
    assert "every other" not in line
    assert "c was not tested (no per-image predictions)" in line


def test_a_seed_interval_stays_within_0_and_1_and_is_never_a_point(tmp_path):
    """Fault 3: seeds [1.0, 0.98] printed 0.9900 [0.9002, 1.0798]; equal seeds a point."""
    run = make_run(tmp_path, [_seeded("a", [1.0, 0.98]), _seeded("b", [0.9, 0.9])])
    rows = {r[1]: r for r in table_rows(render(load_run(run)))}
    low, high = (float(v) for v in rows["a"][2].split("[")[1].rstrip("]").split(", "))
    assert 0.0 <= low < 0.99 and high == 1.0
    low, high = (float(v) for v in rows["b"][2].split("[")[1].rstrip("]").split(", "))
    assert low < 0.9 < high, "no spread between seeds still leaves the test images' sampling"


def test_mixed_seed_counts_say_what_was_compared(tmp_path):
    """Fault 4: 3 seeds against 1 compared the first seeds only, under a sentence about
    'one final training per architecture' and a difference of +0.0000 beside means
    0.91 and 0.90."""
    a = [0.90, 0.92, 0.91]
    run = make_run(tmp_path, [_seeded("a", a), result("b", 0.90, 10, 1, 1)])
    write_seed_predictions(run, "a", a)
    write_predictions(run, "b", [True] * 90 + [False] * 10)
    line = _most_accurate(render(load_run(run)))
    assert "one final training per architecture" not in line
    assert "compares the first final training of each" in line


def test_a_row_without_test_accuracy_is_neither_ranked_nor_tested(tmp_path):
    """Fault 5: status ok with NaN accuracy was ranked last and tested; all NaN gave
    'Most accurate: a (test accuracy nan)'."""
    run = make_run(tmp_path, [result("a", 0.92, 10, 1, 1), result("b", float("nan"), 10, 1, 1)])
    write_predictions(run, "a", [True] * 92 + [False] * 8)
    text = render(load_run(run))
    assert [r[1] for r in table_rows(text)] == ["a"]
    assert "b: no test accuracy" in text
    every_nan = render(load_run(make_run(tmp_path / "nan", [result("a", float("nan"), 10, 1, 1)])))
    assert "No architecture produced a result." in every_nan and "accuracy nan" not in every_nan


def test_a_significantly_better_other_is_not_called_no_difference(tmp_path):
    """Fault 5: with means ranking a first, b's first seed was significantly better than a's,
    and the line said 'no significant difference'."""
    a = [0.60, 0.99, 0.99]  # mean 0.86; its first seed far below b's
    run = make_run(tmp_path, [_seeded("a", a), result("b", 0.85, 10, 1, 1)])
    write_seed_predictions(run, "a", a)
    write_predictions(run, "b", [True] * 85 + [False] * 15)
    line = _most_accurate(render(load_run(run)))
    assert "no significant difference" not in line
    assert "b is more accurate on the compared predictions" in line


def test_results_that_disagree_with_their_predictions_are_refused(tmp_path):
    """Fault 5: nothing checked that results.csv's accuracy is the predictions' one."""
    run = make_run(tmp_path, [result("a", 0.92, 10, 1, 1), result("b", 0.80, 10, 1, 1)])
    write_predictions(run, "a", [True] * 50 + [False] * 50)
    write_predictions(run, "b", [True] * 80 + [False] * 20)
    with pytest.raises(ReportError, match=r"a's test accuracy in results.csv \(0.9200\) is not "
                                          r"that of predictions/a.csv \(0.5000\)"):
        render(load_run(run))


def test_an_exact_tie_of_parameter_counts_is_called_a_tie_not_noise(tmp_path):
    """Fault 7: equal counts were 'within its measurement noise'."""
    run = make_run(tmp_path, [result("a", 0.92, 1_000, 1, 1), result("b", 0.80, 1_000, 1, 1)])
    line = next(x for x in render(load_run(run)).splitlines() if x.startswith("- **Smallest**"))
    assert "noise" not in line and "the same count: b" in line


def _possibly_best(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("- **Possibly best**"))


def test_the_possibly_best_set_keeps_one_within_noise_and_drops_one_beyond_it(tmp_path):
    """a 0.93, b 0.92 (4 images against 3: noise), c 0.80 (shown worse than both)."""
    a = np.array([True] * 93 + [False] * 7)
    b, c = a.copy(), a.copy()
    b[:4], b[93:96] = False, True  # 0.92
    c[:13] = False  # 0.80
    run = make_run(tmp_path, [result("a", 0.93, 10, 1, 1), result("b", 0.92, 10, 1, 1),
                              result("c", 0.80, 10, 1, 1)])
    for arch, right in (("a", a), ("b", b), ("c", c)):
        write_predictions(run, arch, right)
    line = _possibly_best(render(load_run(run)))
    assert line.endswith("3 pairs, p < 0.05): a, b; the data do not tell these trained models apart")


def test_the_possibly_best_set_names_one_only_when_it_has_one_member(tmp_path):
    a = np.array([True] * 95 + [False] * 5)
    b = a.copy()
    b[:20] = False  # 20 against 0
    run = make_run(tmp_path, [result("a", 0.95, 10, 1, 1), result("b", 0.75, 10, 1, 1)])
    write_predictions(run, "a", a)
    write_predictions(run, "b", b)
    assert "**a** alone of the trained models compared" in _possibly_best(render(load_run(run)))


def test_the_possibly_best_set_holds_whoever_could_not_be_tested(tmp_path):
    run = make_run(tmp_path, [result("a", 0.95, 10, 1, 1), result("b", 0.75, 10, 1, 1),
                              result("c", 0.70, 10, 1, 1)])
    write_predictions(run, "a", [True] * 95 + [False] * 5)
    write_predictions(run, "b", [False] * 20 + [True] * 75 + [False] * 5)
    line = _possibly_best(render(load_run(run)))
    assert line.endswith(": a, c; the data do not tell these trained models apart")


@pytest.mark.parametrize("successes,trials", [(0, 12), (1, 12), (4, 12), (12, 12), (333, 997)])
def test_the_closed_form_exact_interval_is_scipys_root_search(successes, trials):
    from scipy import stats as scipy_stats

    from reports.stats import clopper_pearson

    expected = scipy_stats.binomtest(successes, trials).proportion_ci(0.95, "exact")
    assert clopper_pearson(successes, trials) == pytest.approx((expected.low, expected.high),
                                                               abs=1e-10)


def test_the_powered_difference_is_found_with_80_percent_probability_the_critical_half():
    """Item 6: 'smallest detectable' was a critical value; beside it now stands the
    difference found with 80% power, by its definition."""
    from scipy import stats as scipy_stats

    from reports.stats import compare_paired, compare_seeds

    best = np.array([True] * 15 + [False] * 4 + [True] * 74 + [False] * 7)
    other = np.array([False] * 15 + [True] * 4 + [True] * 74 + [False] * 7)
    test = compare_paired(best, other)  # 19 disagreeing of 100: 15 to 4 still significant
    assert test.detectable == pytest.approx(0.11)
    q = (1 + test.powered * 100 / 19) / 2  # the better one's share of the 19
    assert scipy_stats.binom.cdf(4, 19, 1 - q) == pytest.approx(0.8)  # finds it 80% of the time
    assert scipy_stats.binom.cdf(4, 19, 1 - (1 + 0.11 * 100 / 19) / 2) < 0.7  # the critical one
    seeds = compare_seeds([0.90, 0.91, 0.92], [0.88, 0.89, 0.91])
    t = scipy_stats.t
    df = scipy_stats.ttest_ind([0.90, 0.91, 0.92], [0.88, 0.89, 0.91], equal_var=False).df
    assert seeds.powered == pytest.approx(
        seeds.detectable * (t.ppf(0.975, df) + t.ppf(0.8, df)) / t.ppf(0.975, df))
