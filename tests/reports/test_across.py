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
