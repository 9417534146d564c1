"""The cross-dataset report: accuracies side by side, mean ranks, a performance profile."""

import numpy as np
import pytest

from reports.across import accuracy_table, mean_ranks, performance_profile, write_across
from reports.leaderboard import ReportError
from tests.conftest import table_rows
from tests.helpers.runs import HASH, make_dataset_run, result


@pytest.fixture
def two_datasets(tmp_path):
    a = make_dataset_run(tmp_path, "A", [result("x", 0.90, 10, 1, 1), result("y", 0.80, 10, 1, 1),
                                         result("z", 0.95, 10, 1, 1)])
    b = make_dataset_run(tmp_path, "B", [
        result("x", 0.99, 10, 1, 1), result("y", 0.98, 10, 1, 1),
        {"architecture": "z", "status": "failed", "error": "boom", "budget_hash": HASH}])
    return [a, b]


def test_mean_ranks_and_the_performance_profile_by_hand(two_datasets):
    accuracy = accuracy_table(two_datasets)
    assert list(accuracy.columns) == ["A", "B"] and np.isnan(accuracy.at["z", "B"])
    # A: z, x, y; B: x, y, and z without result ranks last (3)
    assert mean_ranks(accuracy).to_dict() == {"x": 1.5, "z": 2.0, "y": 2.5}
    # error ratios to the best: A: x 2, y 4, z 1; B: x 1, y 2, z never
    profile = performance_profile(accuracy, np.array([1.0, 1.5, 2.0, 4.0]))
    assert profile.loc["x"].tolist() == pytest.approx([0.5, 0.5, 1.0, 1.0])
    assert profile.loc["y"].tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0])
    assert profile.loc["z"].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5])


def test_the_report_is_written_with_its_table_and_plot(two_datasets, tmp_path):
    path = write_across(two_datasets, tmp_path / "across" / "across-datasets.md")
    text = path.read_text()
    rows = table_rows(text, "# archbench across datasets")
    assert [r[0] for r in rows] == ["x", "z", "y"]
    assert rows[1][:4] == ["z", "2.00", "0.9500", "-"]
    assert (tmp_path / "across" / "performance_profile.png").stat().st_size > 1000
    assert "![performance profile](performance_profile.png)" in text


def test_mixed_budgets_and_a_dataset_twice_are_refused(tmp_path):
    a = make_dataset_run(tmp_path, "A", [result("x", 0.9, 10, 1, 1)])
    b = make_dataset_run(tmp_path, "B", [result("x", 0.9, 10, 1, 1, budget_hash="b" * 12)],
                         budget_hash="b" * 12)
    with pytest.raises(ReportError, match="2 different budgets"):
        accuracy_table([a, b])
    assert list(accuracy_table([a, b], allow_mixed_budgets=True).columns) == ["A", "B"]
    with pytest.raises(ReportError, match="two run directories hold dataset A"):
        accuracy_table([a, a])


def test_nemenyi_critical_difference_is_demsars_for_four_classifiers_on_fourteen_datasets():
    from reports.across import nemenyi_critical_difference

    # Demsar 2006, section 3.2.2: k = 4, N = 14, q_0.05 = 2.569, CD = 1.25
    assert nemenyi_critical_difference(4, 14) == pytest.approx(2.569 * (20 / 84) ** 0.5, abs=1e-3)
    assert round(nemenyi_critical_difference(4, 14), 2) == 1.25


def test_friedman_is_the_rank_formula_and_names_only_pairs_beyond_the_critical_difference():
    import pandas as pd

    from reports.across import friedman

    rng = np.random.default_rng(0)
    datasets = [f"d{i}" for i in range(12)]
    accuracy = pd.DataFrame({d: [0.95, 0.90 + rng.uniform(-0.01, 0.01), 0.90 + rng.uniform(-0.01, 0.01), 0.80]
                             for d in datasets}, index=["a", "b", "c", "d"])
    test = friedman(accuracy)
    ranks = accuracy.rank(ascending=False).mean(axis=1)
    k, n = 4, 12
    expected = 12 * n / (k * (k + 1)) * (float((ranks**2).sum()) - k * (k + 1) ** 2 / 4)
    assert test.statistic == pytest.approx(expected)  # no ties: the textbook formula
    assert test.p_value < 0.05
    assert ("a", "d") in test.apart() and ("b", "c") not in test.apart()
    assert friedman(accuracy.iloc[:, :1]) is None and friedman(accuracy.iloc[:2]) is None
    from reports.across import friedman_text

    text = friedman_text(accuracy)
    assert "Shown apart: " in text and "a ahead of d" in text
    assert "b ahead of c" not in text and "c ahead of b" not in text
    assert "needs at least three architectures" in friedman_text(accuracy.iloc[:2])
