"""The leaderboard's figures read at a glance: plain tick labels, labels apart, the legend
off the data, the dataset and budget in the title."""

import matplotlib.pyplot as plt
import pandas as pd

from reports import plots


def test_counts_and_milliseconds_are_written_plainly():
    assert [plots._count(v) for v in (950, 12_000, 1_500_000, 36_497_146, 2e9)] == [
        "950", "12K", "1.5M", "36.4971M", "2G"]
    fig, ax = plt.subplots()
    ax.scatter([0.7, 4.1], [0.8, 0.9])
    plots._plain_log_axis(ax, plots._count)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all("10^" not in text and "$" not in text for text in labels)
    plt.close(fig)


def test_labels_of_points_at_the_same_place_do_not_overlap():
    fig, ax = plt.subplots()
    ax.scatter([1.0, 1.01, 5.0], [0.85, 0.851, 0.70])
    plots._labels(ax, [(1.0, 0.85, "resnet"), (1.01, 0.851, "wide_resnet"), (5.0, 0.70, "mlp")])
    offsets = {a.get_text(): a.xyann[1] for a in ax.texts}
    assert offsets["resnet"] != offsets["wide_resnet"], "the second label moved up"
    assert abs(offsets["resnet"] - offsets["wide_resnet"]) >= 13 * 72 / plots.DPI - 1e-9
    plt.close(fig)


def test_the_scatter_names_dataset_and_budget_and_keeps_its_legend_below(tmp_path, monkeypatch):
    seen = {}
    real_save = plots._save

    def keep(fig, path):
        ax = fig.axes[0]
        seen["title"] = ax.get_title()
        fig.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        seen["legend_below"] = legend.y1 <= ax.get_window_extent().y0
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    table = pd.DataFrame({"architecture": ["a", "b"], "total_params": [1e4, 1e6],
                          "inference_latency_ms": [1.0, 3.0], "test_accuracy": [0.8, 0.9],
                          "pareto": [True, True], "best_trial_id": ["0", "0"]})
    written = plots.write_plots(table, pd.DataFrame(columns=["architecture", "trial_id", "status", "score"]),
                                tmp_path, "fashion_mnist, budget quick (abc)")
    assert (tmp_path / plots.ACCURACY_VS_PARAMS) in written.values()
    assert seen["title"].endswith("\nfashion_mnist, budget quick (abc)")
    assert seen["legend_below"]
