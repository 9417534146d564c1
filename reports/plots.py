"""The leaderboard's figures (matplotlib, PNG, 800 px wide); no TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402

from reports.enough import expected_best_curves  # noqa: E402

WIDTH_INCHES, HEIGHT_INCHES, DPI = 8, 5, 100  # 800 x 500 px

ACCURACY_VS_PARAMS = "accuracy_vs_parameters.png"
ACCURACY_VS_LATENCY = "accuracy_vs_latency.png"
ACCURACY_VS_MACS = "accuracy_vs_macs.png"
ACCURACY_VS_MEMORY = "accuracy_vs_memory.png"
VALIDATION_CURVES = "validation_curves.png"
TRIAL_SCORES = "trial_scores.png"
EXPECTED_BEST = "expected_best.png"


def _figure(title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
    ax.set_title(title, fontsize=13)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel(ylabel, fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # the legend below the axes included
    plt.close(fig)
    return path


def _legend(ax) -> None:
    """The legend below the axes, where it covers no point."""
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              frameon=False)


def _count(value: float, _position=None) -> str:
    """A count as people write it: 950, 12K, 1.5M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _plain_log_axis(ax, formatter) -> None:
    """Log-scale x ticks at 1, 2 and 5 times the powers of ten, labelled plainly (no
    8x10^-1): ``formatter(value, position) -> text``."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(formatter))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _labels(ax, points: list[tuple[float, float, str]], min_gap_px: float = 13.0) -> None:
    """Name each point beside it; a label that would sit on an earlier one moves up by a
    line until it is free."""
    ax.figure.canvas.draw()  # the final limits, so that display positions are known
    placed: list[tuple[float, float]] = []
    for x, y, text in sorted(points, key=lambda p: (p[1], p[0])):
        px, py = ax.transData.transform((x, y))
        dy = 4.0
        while any(abs(px - qx) < 70 and abs(py + dy - qy) < min_gap_px for qx, qy in placed):
            dy += min_gap_px
        placed.append((px, py + dy))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, dy * 72 / DPI),
                    fontsize=10)


def _scatter(table: pd.DataFrame, x: str, title: str, xlabel: str, path: Path,
             formatter) -> Path:
    fig, ax = _figure(title, xlabel, "test accuracy")
    pareto = table["pareto"].astype(bool)
    ax.scatter(table.loc[~pareto, x], table.loc[~pareto, "test_accuracy"], s=60,
               color="tab:gray", label="dominated")
    ax.scatter(table.loc[pareto, x], table.loc[pareto, "test_accuracy"], s=80,
               color="tab:red", label="Pareto-optimal (accuracy, latency, parameters)")
    front = _front(table, x)
    ax.step(front[x], front["test_accuracy"], where="post", color="tab:red", alpha=0.5,
            label=f"front of accuracy vs {xlabel.split(' (')[0]}")
    _plain_log_axis(ax, formatter)
    _labels(ax, [(row[x], row["test_accuracy"], str(row["architecture"]))
                 for _, row in table.iterrows()])
    _legend(ax)
    return _save(fig, path)


def _front(table: pd.DataFrame, x: str) -> pd.DataFrame:
    """Rows not beaten on both accuracy and ``x`` (lower is better), sorted by ``x``."""
    ordered = table.sort_values([x, "test_accuracy"], ascending=[True, False])
    best, keep = -1.0, []
    for index, row in ordered.iterrows():
        if row["test_accuracy"] > best:
            keep.append(index)
            best = row["test_accuracy"]
    return ordered.loc[keep]


def validation_curves(trials: pd.DataFrame, best_ids: dict[str, str], path: Path,
                      subtitle: str = "") -> Path | None:
    fig, ax = _figure(_titled("Validation accuracy per epoch of each best trial", subtitle),
                      "epoch", "validation accuracy")
    drawn = 0
    for arch, trial_id in best_ids.items():
        rows = trials[(trials["architecture"] == arch) & (trials["trial_id"] == str(trial_id))]
        if rows.empty or not rows.iloc[0].get("val_accuracy_history"):
            continue
        history = json.loads(rows.iloc[0]["val_accuracy_history"])
        ax.plot(range(1, len(history) + 1), history, marker="o", label=arch)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend(ax)
    return _save(fig, path)


def trial_scores(trials: pd.DataFrame, path: Path, subtitle: str = "") -> Path | None:
    done = trials[trials["status"] == "COMPLETED"].copy()
    done["score"] = pd.to_numeric(done["score"], errors="coerce")
    done = done.dropna(subset=["score"])
    if done.empty:
        return None
    archs = sorted(done["architecture"].unique())
    fig, ax = _figure(_titled("Score of every completed trial", subtitle),
                      "architecture", "trial score (best-epoch validation accuracy)")
    data = [done.loc[done["architecture"] == a, "score"].to_numpy() for a in archs]
    ax.boxplot(data, tick_labels=archs, showfliers=False)
    for i, values in enumerate(data, start=1):
        ax.scatter([i] * len(values), values, color="tab:blue", alpha=0.7, s=25, zorder=3)
    ax.tick_params(axis="x", rotation=20)
    return _save(fig, path)


def expected_best_plot(curves: dict, path: Path, subtitle: str = "") -> Path | None:
    """Each architecture's expected best validation score against the number of trials,
    with a band of one standard deviation; None when no architecture has two trials."""
    if not any(len(means) > 1 for means, _ in curves.values()):
        return None
    fig, ax = _figure(_titled("Expected best validation score vs number of trials", subtitle),
                      "trials", "expected best validation accuracy")
    for arch, (means, stds) in sorted(curves.items()):
        n = range(1, len(means) + 1)
        (line,) = ax.plot(n, means, marker="o", markersize=3, label=arch)
        ax.fill_between(n, means - stds, means + stds, color=line.get_color(), alpha=0.12)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    _legend(ax)
    return _save(fig, path)


def _titled(title: str, subtitle: str) -> str:
    return f"{title}\n{subtitle}" if subtitle else title


def write_plots(table: pd.DataFrame, trials: pd.DataFrame, directory: Path,
                subtitle: str = "") -> dict[str, Path]:
    """Every figure that the data allows, as PNG files in ``directory``; title -> path.
    ``subtitle`` (the dataset and budget) goes under every title."""
    directory.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path | None] = {}
    if not table.empty:
        milliseconds = lambda value, _position=None: f"{value:g}"  # noqa: E731
        for column, what, label, name, formatter in (
                ("total_params", "model size", "parameters (log scale)", ACCURACY_VS_PARAMS,
                 _count),
                ("inference_latency_ms", "inference latency",
                 "latency at batch 1 (ms, log scale)", ACCURACY_VS_LATENCY, milliseconds),
                ("macs_per_image", "compute", "multiply-accumulates per image (log scale)",
                 ACCURACY_VS_MACS, _count),
                ("peak_train_memory_mb", "training memory",
                 "peak training memory (MiB above its start, log scale)", ACCURACY_VS_MEMORY,
                 _count)):
            if column not in table:
                continue
            values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
            measured = table.reset_index(drop=True).assign(**{column: values})[values > 0]
            if len(measured):  # what a run did not record (or not yet) has no plot
                plots[f"Test accuracy vs {what}"] = _scatter(
                    measured, column, _titled(f"Test accuracy vs {what}", subtitle), label,
                    directory / name, formatter)
        best_ids = dict(zip(table["architecture"], table["best_trial_id"], strict=True))
        plots["Validation accuracy per epoch"] = validation_curves(
            trials, best_ids, directory / VALIDATION_CURVES, subtitle)
    plots["Trial scores"] = trial_scores(trials, directory / TRIAL_SCORES, subtitle)
    plots["Expected best validation score vs trials"] = expected_best_plot(
        expected_best_curves(trials), directory / EXPECTED_BEST, subtitle)
    return {title: path for title, path in plots.items() if path is not None}


PERFORMANCE_PROFILE = "performance_profile.png"


def performance_profile_plot(profile: pd.DataFrame, path: Path) -> Path:
    """rho(tau) per architecture (rows of ``profile``, columns the taus), as step curves."""
    fig, ax = _figure("Performance profile across datasets",
                      "tau (test error within this factor of the best)", "share of datasets")
    taus = [float(t) for t in profile.columns]
    for architecture, row in profile.iterrows():
        ax.step(taus, row.to_numpy(), where="post", label=str(architecture))
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=9, loc="lower right")
    return _save(fig, path)


BUDGET_AGREEMENT = "cheap_vs_expensive.png"


def budget_agreement_plot(points: pd.DataFrame, cheap: str, expensive: str, path: Path) -> Path:
    """Each architecture's accuracy under the cheap budget (x) against its test accuracy
    under the expensive one (y). ``points``: one row per architecture (the index), columns
    ``cheap_test``, ``cheap_validation`` (best trial's score) and ``expensive_test``."""
    fig, ax = _figure(f"Accuracy under {cheap} (cheap) against {expensive}",
                      f"accuracy under {cheap}", f"test accuracy under {expensive}")
    ax.scatter(points["cheap_test"], points["expensive_test"], s=70, color="tab:blue",
               label=f"test accuracy under {cheap}", zorder=3)
    ax.scatter(points["cheap_validation"], points["expensive_test"], s=50, marker="x",
               color="tab:gray", label=f"best trial's validation score under {cheap}", zorder=3)
    for architecture, row in points.iterrows():
        ax.annotate(str(architecture), (row["cheap_test"], row["expensive_test"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=10)
    values = points[["cheap_test", "cheap_validation", "expensive_test"]].stack()
    low, high = float(values.min()), float(values.max())
    ax.plot([low, high], [low, high], linestyle="--", color="tab:red", alpha=0.5,
            label="same accuracy under both")
    ax.legend(fontsize=9, loc="lower right")
    return _save(fig, path)
