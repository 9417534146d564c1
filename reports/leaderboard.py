"""The markdown leaderboard: who wins on accuracy, speed and size, and how sure we are.

Reads a run directory's files (or W&B runs converted to the same tables); never imports
TensorFlow.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmarks import rundir, timing
from reports.stats import (
    SIGNIFICANCE,
    PairedComparison,
    compare_paired,
    pareto_optimal,
    seed_interval,
    wilson_interval,
)

NUMERIC_RESULTS = [
    "val_accuracy", "test_accuracy", "test_accuracy_std", "test_loss", "final_seeds",
    "trainable_params", "total_params", "weight_bytes", "train_images_per_second",
    "epoch_seconds", "inference_latency_ms", "inference_images_per_second",
    "trials_completed", "trials_failed",
]


class ReportError(ValueError):
    """The results cannot be reported as asked."""


@dataclass
class RunData:
    """The tables a leaderboard is built from, whatever their source."""

    manifest: dict[str, Any]
    results: pd.DataFrame
    trials: pd.DataFrame
    # architecture -> per-test-image correctness (first final seed); empty when unknown
    correct: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.results = self.results.reindex(columns=rundir.RESULT_COLUMNS)
        self.trials = self.trials.reindex(columns=rundir.TRIAL_COLUMNS)
        for column in NUMERIC_RESULTS:
            self.results[column] = pd.to_numeric(self.results[column], errors="coerce")
        self.results = self.results.fillna({"error": "", "wandb_run_id": "", "budget_hash": ""})
        self.trials = self.trials.fillna("")


def md_escape(value: Any) -> str:
    """Text that cannot break a markdown table cell or turn into emphasis or code."""
    text = " ".join(str(value).split())  # newlines and tabs become single spaces
    for char in "\\|*_`[]<>":
        text = text.replace(char, "\\" + char)
    return text


def load_run(run_dir: Path) -> RunData:
    """The tables of a run directory.

    Raises:
        RunDirError: not a run directory.
    """
    rundir.require_run_dir(run_dir)
    results = pd.DataFrame(rundir.read_rows(run_dir / rundir.RESULTS))
    correct = {}
    for arch in results.get("architecture", []):
        path = rundir.predictions_path(run_dir, arch)
        if path.is_file():
            predictions = pd.read_csv(path)
            first = predictions[predictions["seed"] == predictions["seed"].min()].sort_values("sample")
            correct[arch] = (first["label"] == first["predicted"]).to_numpy()
    return RunData(
        manifest=rundir.read_json(run_dir / rundir.MANIFEST),
        results=results,
        trials=pd.DataFrame(rundir.read_rows(run_dir / rundir.TRIALS)),
        correct=correct,
    )


def check_budgets(data: RunData, allow_mixed: bool) -> None:
    """Refuse to rank rows made under different budgets.

    Raises:
        ReportError: more than one budget hash, unless ``allow_mixed``.
    """
    hashes = set(data.results["budget_hash"]) | {data.manifest["budget"]["hash"]}
    hashes.discard("")
    if len(hashes) > 1 and not allow_mixed:
        raise ReportError(
            f"results were made under {len(hashes)} different budgets "
            f"({', '.join(sorted(hashes))}); they are not comparable "
            "(pass --allow-mixed-budgets to rank them anyway)"
        )


def ranked(data: RunData) -> pd.DataFrame:
    """Successful architectures, best test accuracy first, with rank, interval and Pareto flag."""
    ok = data.results[data.results["status"] == "ok"].copy()
    ok = ok.sort_values(["test_accuracy", "total_params"], ascending=[False, True], kind="stable")
    ok = ok.reset_index(drop=True)
    ok.insert(0, "rank", range(1, len(ok) + 1))
    test_size = data.manifest["dataset"].get("split_sizes", {}).get("test", 0)
    intervals = [_interval(row, test_size) for _, row in ok.iterrows()]
    ok["test_accuracy_low"] = [low for low, _ in intervals]
    ok["test_accuracy_high"] = [high for _, high in intervals]
    ok["pareto"] = pareto_optimal(
        ok["test_accuracy"].tolist(), ok["inference_latency_ms"].tolist(), ok["total_params"].tolist()
    )
    return ok


def _interval(row: pd.Series, test_size: int) -> tuple[float, float]:
    seeds = 1 if math.isnan(row["final_seeds"]) else int(row["final_seeds"])
    if seeds > 1:
        return seed_interval(row["test_accuracy"], row["test_accuracy_std"], seeds)
    return wilson_interval(row["test_accuracy"], test_size)


def significance(table: pd.DataFrame, correct: dict[str, np.ndarray]) -> dict[str, PairedComparison]:
    """The most accurate architecture against each other one with paired predictions."""
    if table.empty or table.at[0, "architecture"] not in correct:
        return {}
    best = correct[table.at[0, "architecture"]]
    return {
        arch: compare_paired(best, correct[arch])
        for arch in table["architecture"].iloc[1:]
        if arch in correct and len(correct[arch]) == len(best)
    }


def verdict(table: pd.DataFrame, tests: dict[str, PairedComparison]) -> list[str]:
    """A few lines naming the winner of each criterion and what it costs."""
    if table.empty:
        return ["No architecture produced a result."]
    top = table.iloc[0]
    tied = [arch for arch, t in tests.items() if not t.significant]
    lines = [f"- **Most accurate**: {md_escape(top['architecture'])} "
             f"(test accuracy {top['test_accuracy']:.4f})" + _tie_text(tied, tests, len(table))]
    criteria = [
        ("Fastest at inference", "inference_latency_ms", True, "{:.2f} ms per image at batch 1"),
        ("Fastest to train", "train_images_per_second", False, "{:,.0f} training images/s"),
        ("Smallest", "total_params", True, "{:,.0f} parameters"),
    ]
    for label, column, smallest, fmt in criteria:
        row = table.loc[table[column].idxmin() if smallest else table[column].idxmax()]
        cost = ""
        if row["architecture"] != top["architecture"]:
            cost = f"; {top['test_accuracy'] - row['test_accuracy']:.4f} less test accuracy than the most accurate"
        lines.append(f"- **{label}**: {md_escape(row['architecture'])} ({fmt.format(row[column])}{cost})")
    front = ", ".join(md_escape(a) for a in table.loc[table["pareto"], "architecture"])
    lines.append(f"- **Pareto-optimal** (no other is at least as accurate, fast and small, and "
                 f"better on one): {front}")
    return lines


def _tie_text(tied: list[str], tests: dict[str, PairedComparison], n: int) -> str:
    if n > 1 and not tests:
        return "; no paired predictions, so significance was not tested"
    if not tied:
        return "; it beats every other architecture (exact McNemar p < 0.05)" if n > 1 else ""
    names = ", ".join(f"{md_escape(a)} (p = {tests[a].p_value:.3f})" for a in tied)
    return f"; **statistically tied** with {names}: the difference may be noise"


def short_hp(text: str) -> str:
    """``{"a": 1, "b": 0.00123}`` -> ``a=1, b=0.00123``."""
    try:
        values = json.loads(text) if text else {}
    except (json.JSONDecodeError, TypeError):
        return str(text)
    return rundir.format_hyperparameters(values)


def markdown_table(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


MAIN_HEADERS = [
    "rank", "architecture", "test accuracy [95% CI]", "val accuracy", "parameters", "weights",
    "train images/s", "s/epoch", "latency ms (batch 1)", "inference images/s", "Pareto",
    "best hyperparameters", "W&B run",
]


def main_table(table: pd.DataFrame) -> str:
    rows = [
        [
            r["rank"], md_escape(r["architecture"]),
            f"{r['test_accuracy']:.4f} [{r['test_accuracy_low']:.4f}, {r['test_accuracy_high']:.4f}]",
            f"{r['val_accuracy']:.4f}", f"{int(r['total_params']):,}",
            f"{r['weight_bytes'] / 1024:,.0f} KiB", f"{r['train_images_per_second']:,.0f}",
            f"{r['epoch_seconds']:.1f}", f"{r['inference_latency_ms']:.2f}",
            f"{r['inference_images_per_second']:,.0f}", "yes" if r["pareto"] else "",
            md_escape(short_hp(r["best_hyperparameters"])), md_escape(r["wandb_run_id"] or "-"),
        ]
        for _, r in table.iterrows()
    ]
    return markdown_table(rows, MAIN_HEADERS)


def significance_table(table: pd.DataFrame, tests: dict[str, PairedComparison]) -> str:
    best = md_escape(table.at[0, "architecture"])
    rows = [
        [
            md_escape(arch), t.only_best, t.only_other,
            f"{t.difference:+.4f} [{t.low:+.4f}, {t.high:+.4f}]", f"{t.p_value:.4g}",
            f"{best} wins" if t.significant else "statistically tied",
        ]
        for arch, t in tests.items()
    ]
    headers = ["against", f"only {best} right", "only the other right",
               "accuracy difference [95% CI]", "McNemar p (exact)", "verdict"]
    return markdown_table(rows, headers)


def parity_table(data: RunData) -> str:
    budget = data.manifest["budget"]
    epochs = budget["fields"].get("epochs")
    rows = []
    for _, r in data.results.iterrows():
        mine = data.trials[data.trials["architecture"] == r["architecture"]]
        scores = pd.to_numeric(mine["score"], errors="coerce").dropna()
        epochs_run = pd.to_numeric(mine["epochs_run"], errors="coerce").fillna(0)
        seconds = pd.to_numeric(mine["train_seconds"], errors="coerce").fillna(0)
        failed = int((mine["status"] != "COMPLETED").sum())
        flags = []
        if r["budget_hash"] and r["budget_hash"] != budget["hash"]:
            flags.append(f"different budget {r['budget_hash']}")
        if epochs and (epochs_run[mine["status"] == "COMPLETED"] < epochs).any():
            flags.append("early-stopped")
        if failed:
            flags.append(f"{failed} failed trial(s)")
        if r["status"] == rundir.NOT_APPLICABLE:
            flags.append("not applicable")
        elif r["status"] != "ok":
            flags.append("no result")
        rows.append([
            md_escape(r["architecture"]), len(mine) - failed, failed, int(epochs_run.sum()),
            f"{seconds.sum():.1f}", f"{scores.max():.4f}" if len(scores) else "-",
            f"{scores.median():.4f}" if len(scores) else "-", md_escape(", ".join(flags)) or "ok",
        ])
    headers = ["architecture", "trials completed", "trials failed", "epochs trained",
               "training s", "best trial score", "median trial score", "flags"]
    return markdown_table(rows, headers)


TIME_HEADERS = ["architecture", "wall s", "training", "validation", "final evaluation",
                "measurement", "W&B", "Keras Tuner", "waiting for workers", "other",
                "suite overhead"]


def time_table(manifest: dict[str, Any]) -> str | None:
    """Where the time went: each architecture's wall time split into phases, in percent.

    The suite's overhead is everything but training, validation, final evaluation,
    measurement and (distributed runs) the chief's wait for its workers.
    """
    book = manifest.get("time") or {}
    entries = [(md_escape(name), t) for name, t in (book.get("architectures") or {}).items()]
    if book.get("run"):
        entries.append(("**whole run** (data loading to leaderboard)", book["run"]))
    if not entries:
        return None
    rows = []
    for name, t in entries:
        wall = t.get("wall") or 0.0
        share = [f"{100 * t.get(p, 0.0) / wall:.1f}%" if wall else "-" for p in timing.PHASES]
        rows.append([name, f"{wall:,.1f}", *share, f"{100 * timing.overhead_share(t):.1f}%"])
    return markdown_table(rows, TIME_HEADERS)


def _classes_line(dataset: dict[str, Any], most: int = 20) -> list[str]:
    names = dataset.get("class_names") or []
    if not names:
        return []
    shown = ", ".join(map(str, names[:most])) + (f", ... ({len(names)} in all)" if len(names) > most else "")
    shape = "x".join(map(str, dataset.get("image_shape") or []))
    return [f"- **Classes**: {md_escape(shown)}" + (f"; images {shape}" if shape else "")]


def header(manifest: dict[str, Any]) -> list[str]:
    budget, dataset = manifest["budget"], manifest["dataset"]
    env, git, wandb = manifest.get("environment", {}), manifest.get("git", {}), manifest.get("wandb", {})
    fields = ", ".join(f"{k}={v}" for k, v in budget["fields"].items())
    sizes = ", ".join(f"{k} {v:,}" for k, v in dataset.get("split_sizes", {}).items())
    checksums = ", ".join(
        f"{name} sha256 {value[:12]}" if len(value) == 64 else f"{name}: {value}"
        for name, value in dataset.get("checksums", {}).items())
    dirty = " (with uncommitted changes)" if git.get("dirty") else ""
    lines = [
        f"- **Dataset**: {md_escape(dataset['name'])} from {md_escape(dataset.get('source', '?'))}; "
        f"splits: {sizes or '?'}",
        f"- **Dataset files**: {md_escape(checksums or '?')}",
        *_classes_line(dataset),
        f"- **Budget**: {md_escape(budget['fields'].get('name'))}, hash {budget['hash']}: {md_escape(fields)}",
    ]
    if env:
        lines.append(
            f"- **Environment**: Python {env.get('python')}, TensorFlow {env.get('tensorflow')}, "
            f"Keras {env.get('keras')}, Keras Tuner {env.get('keras_tuner')}, wandb {env.get('wandb')}; "
            f"{md_escape(env.get('cpu'))} ({env.get('cpu_count')} CPUs), GPUs: "
            f"{md_escape(', '.join(env.get('gpus') or []) or 'none')}")
    measurement = manifest.get("measurement")
    if measurement:  # runs made before it was recorded have none
        settings = ", ".join(f"{k}={v}" for k, v in measurement.items())
        lines.append(f"- **Measurements**: {md_escape(settings)}")
    lines += [
        f"- **Code**: git commit {git.get('commit') or 'unknown'}{dirty}",
        f"- **Run**: started {manifest.get('started_at', '?')}, finished "
        f"{manifest.get('finished_at') or 'not yet'}, wall time {manifest.get('wall_seconds') or '?'} s",
        f"- **W&B**: project {md_escape(wandb.get('project'))}, group "
        f"{md_escape(wandb.get('group'))}, mode {wandb.get('mode', '?')}",
    ]
    return lines


def render(data: RunData, plots: dict[str, str] | None = None, allow_mixed_budgets: bool = False) -> str:
    """The leaderboard as markdown; ``plots`` maps titles to relative image paths."""
    check_budgets(data, allow_mixed_budgets)
    table = ranked(data)
    tests = significance(table, data.correct)
    parts = [f"# archbench leaderboard: {md_escape(data.manifest['name'])}", "",
             *header(data.manifest), "", "## Verdict", "", *verdict(table, tests), ""]
    parts += [
        "## Architectures, ranked by test accuracy", "",
        "Test accuracy: mean over the final seeds with its 95% interval (Student t over seeds "
        "when there are several, else the Wilson interval over the test images). Val accuracy: "
        "the best trial's score, its best epoch's validation accuracy. s/epoch: the final "
        "training split at the measured training throughput.", "",
        main_table(table) if not table.empty else "_No architecture produced a result._", "",
    ]
    if tests:
        parts += [
            "## Is the win real?", "",
            f"The most accurate architecture against each other one, on the same test images "
            f"(first final seed). Exact McNemar test; p >= {SIGNIFICANCE} means statistically tied.",
            "", significance_table(table, tests), "",
        ]
    parts += ["## Budget parity", "", f"Every architecture ran under budget {data.manifest['budget']['hash']}"
              " unless flagged.", "", parity_table(data), ""]
    times = time_table(data.manifest)
    if times:
        parts += ["## Where the time went", "",
                  "Share of each architecture's wall time (this machine, this run). Training "
                  "excludes the validation passes and the logging done inside it.", "", times, ""]
    for status, heading in (("failed", "Failed architectures"),
                            (rundir.NOT_APPLICABLE, "Not applicable to this input")):
        rows = data.results[data.results["status"] == status]
        if not rows.empty:
            parts += [f"## {heading}", ""]
            parts += [f"- {md_escape(r['architecture'])}: {md_escape(r['error'])}"
                      for _, r in rows.iterrows()]
            parts.append("")
    if plots:
        parts += ["## Plots", ""]
        parts += [f"![{title}]({path})" for title, path in plots.items()]
        parts.append("")
    return "\n".join(parts)


def csv_table(table: pd.DataFrame) -> pd.DataFrame:
    columns = ["rank", "architecture", "test_accuracy", "test_accuracy_low", "test_accuracy_high",
               "val_accuracy", "trainable_params", "total_params", "weight_bytes",
               "train_images_per_second", "epoch_seconds", "inference_latency_ms",
               "inference_images_per_second", "pareto", "best_hyperparameters", "wandb_run_id",
               "budget_hash"]
    return table.reindex(columns=columns)


def write_report(data: RunData, output: Path, allow_mixed_budgets: bool = False) -> Path:
    """Write the markdown, ``leaderboard.csv`` and the plots beside it; returns the markdown."""
    from reports.plots import write_plots  # matplotlib only when files are written

    check_budgets(data, allow_mixed_budgets)
    table = ranked(data)
    output.parent.mkdir(parents=True, exist_ok=True)
    images = write_plots(table, data.trials, output.parent)
    relative = {title: path.name for title, path in images.items()}
    rundir.atomic_write_text(output, render(data, relative, allow_mixed_budgets))
    rundir.atomic_write_text(output.parent / rundir.LEADERBOARD_CSV, csv_table(table).to_csv(index=False))
    return output


def write_leaderboard(run_dir: Path, output: Path | None = None, allow_mixed_budgets: bool = False) -> Path:
    """The leaderboard of a run directory (default ``RUN_DIR/leaderboard.md``)."""
    data = load_run(run_dir)
    return write_report(data, output or run_dir / rundir.LEADERBOARD, allow_mixed_budgets)
