"""The markdown leaderboard of one run directory (reads files only; no TensorFlow)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from benchmarks import rundir

Z_95 = 1.959963984540054
# Two-sided 95% Student t quantiles by degrees of freedom (1-10), for intervals over seeds.
T_95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


class ReportError(ValueError):
    """The run directory cannot be reported as asked."""


def wilson_interval(accuracy: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion measured on ``n`` samples."""
    if n <= 0:
        return (math.nan, math.nan)
    centre = (accuracy + Z_95**2 / (2 * n)) / (1 + Z_95**2 / n)
    half = Z_95 * math.sqrt(accuracy * (1 - accuracy) / n + Z_95**2 / (4 * n * n)) / (1 + Z_95**2 / n)
    return centre - half, centre + half


def seed_interval(mean: float, std: float, seeds: int) -> tuple[float, float]:
    """95% Student t interval of a mean over ``seeds`` independent final trainings."""
    t = T_95[min(seeds - 1, len(T_95)) - 1] if seeds <= len(T_95) + 1 else Z_95
    half = t * std / math.sqrt(seeds)
    return mean - half, mean + half


def md_escape(value: Any) -> str:
    """Text that cannot break a markdown table cell or turn into emphasis or code."""
    text = " ".join(str(value).split())  # newlines and tabs become single spaces
    for char in "\\|*_`[]<>":
        text = text.replace(char, "\\" + char)
    return text


def load_run(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The manifest, results and trials of a run directory.

    Raises:
        RunDirError: not a run directory.
    """
    rundir.require_run_dir(run_dir)
    manifest = rundir.read_json(run_dir / rundir.MANIFEST)
    results = pd.DataFrame(rundir.read_rows(run_dir / rundir.RESULTS), columns=rundir.RESULT_COLUMNS)
    trials = pd.DataFrame(rundir.read_rows(run_dir / rundir.TRIALS), columns=rundir.TRIAL_COLUMNS)
    numeric = [
        "val_accuracy", "test_accuracy", "test_accuracy_std", "test_loss", "final_seeds",
        "trainable_params", "total_params", "weight_bytes", "train_images_per_second",
        "epoch_seconds", "inference_latency_ms", "inference_images_per_second",
    ]
    for column in numeric:
        results[column] = pd.to_numeric(results[column], errors="coerce")
    return manifest, results, trials


def check_budgets(manifest: dict[str, Any], results: pd.DataFrame, allow_mixed: bool) -> None:
    """Refuse to rank rows made under different budgets.

    Raises:
        ReportError: more than one budget hash, unless ``allow_mixed``.
    """
    hashes = set(results["budget_hash"]) | {manifest["budget"]["hash"]}
    hashes.discard("")
    if len(hashes) > 1 and not allow_mixed:
        raise ReportError(
            f"results were made under {len(hashes)} different budgets ({', '.join(sorted(hashes))}); "
            "they are not comparable (pass --allow-mixed-budgets to rank them anyway)"
        )


def ranked(results: pd.DataFrame) -> pd.DataFrame:
    """Successful architectures, best test accuracy first, ranks 1..n."""
    ok = results[results["status"] == "ok"].copy()
    ok = ok.sort_values(["test_accuracy", "total_params"], ascending=[False, True], kind="stable")
    ok.insert(0, "rank", range(1, len(ok) + 1))
    return ok.reset_index(drop=True)


def test_interval(row: pd.Series, test_size: int) -> tuple[float, float]:
    seeds = int(row["final_seeds"]) if not math.isnan(row["final_seeds"]) else 1
    if seeds > 1:
        return seed_interval(row["test_accuracy"], row["test_accuracy_std"], seeds)
    return wilson_interval(row["test_accuracy"], test_size)


def verdict(table: pd.DataFrame) -> list[str]:
    """One line per criterion naming the winner."""
    if table.empty:
        return ["No architecture produced a result."]
    criteria = [
        ("Most accurate", "test_accuracy", False, lambda v: f"test accuracy {v:.4f}"),
        ("Fastest at inference", "inference_latency_ms", True, lambda v: f"{v:.2f} ms per image at batch 1"),
        ("Fastest to train", "train_images_per_second", False, lambda v: f"{v:,.0f} training images/s"),
        ("Smallest", "total_params", True, lambda v: f"{int(v):,} parameters"),
    ]
    lines = []
    for label, column, smallest, describe in criteria:
        index = table[column].idxmin() if smallest else table[column].idxmax()
        lines.append(f"- **{label}**: {md_escape(table.at[index, 'architecture'])} ({describe(table.at[index, column])})")
    return lines


def short_hp(text: str) -> str:
    """``{"a": 1, "b": 0.00123}`` -> ``a=1, b=0.00123``."""
    try:
        values = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return text
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def main_table(table: pd.DataFrame, test_size: int) -> str:
    rows = []
    for _, r in table.iterrows():
        low, high = test_interval(r, test_size)
        rows.append([
            r["rank"],
            md_escape(r["architecture"]),
            f"{r['test_accuracy']:.4f} [{low:.4f}, {high:.4f}]",
            f"{r['val_accuracy']:.4f}",
            f"{int(r['total_params']):,}",
            f"{r['weight_bytes'] / 1024:,.0f} KiB",
            f"{r['train_images_per_second']:,.0f}",
            f"{r['epoch_seconds']:.1f}",
            f"{r['inference_latency_ms']:.2f}",
            f"{r['inference_images_per_second']:,.0f}",
            md_escape(short_hp(r["best_hyperparameters"])),
            md_escape(r["wandb_run_id"] or "-"),
        ])
    headers = [
        "rank", "architecture", "test accuracy [95% CI]", "val accuracy", "parameters",
        "weights", "train images/s", "s/epoch", "latency ms (batch 1)", "inference images/s",
        "best hyperparameters", "W&B run",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def header(manifest: dict[str, Any]) -> list[str]:
    budget, dataset, env = manifest["budget"], manifest["dataset"], manifest["environment"]
    git = manifest.get("git", {})
    fields = ", ".join(f"{k}={v}" for k, v in budget["fields"].items())
    sizes = ", ".join(f"{k} {v:,}" for k, v in dataset["split_sizes"].items())
    checksums = ", ".join(f"`{name}` sha256 {digest[:12]}…" for name, digest in dataset["checksums"].items())
    wandb = manifest.get("wandb", {})
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    return [
        f"- **Dataset**: {dataset['name']} from `{dataset['source']}`; splits: {sizes}",
        f"- **Dataset files**: {checksums}",
        f"- **Budget**: {budget['fields'].get('name')} (hash `{budget['hash']}`): {md_escape(fields)}",
        f"- **Environment**: Python {env['python']}, TensorFlow {env['tensorflow']}, Keras "
        f"{env['keras']}, Keras Tuner {env['keras_tuner']}, wandb {env['wandb']}; "
        f"{env['cpu']} ({env['cpu_count']} CPUs), GPUs: {', '.join(env['gpus']) or 'none'}",
        f"- **Code**: git commit `{git.get('commit') or 'unknown'}`{dirty}",
        f"- **Run**: started {manifest['started_at']}, finished {manifest.get('finished_at') or 'not yet'}, "
        f"wall time {manifest.get('wall_seconds') or '?'} s",
        f"- **W&B**: project `{wandb.get('project')}`, group `{wandb.get('group')}`, mode {wandb.get('mode', '?')}",
    ]


def render(run_dir: Path, allow_mixed_budgets: bool = False) -> str:
    """The leaderboard of ``run_dir`` as markdown."""
    manifest, results, _ = load_run(run_dir)
    check_budgets(manifest, results, allow_mixed_budgets)
    table = ranked(results)
    test_size = manifest["dataset"]["split_sizes"]["test"]
    parts = [f"# archbench leaderboard: {md_escape(manifest['name'])}", "", *header(manifest), ""]
    parts += ["## Verdict", "", *verdict(table), ""]
    parts += [
        "## Architectures, ranked by test accuracy",
        "",
        "Test accuracy is the mean over the final seeds, with a 95% interval (Student t over "
        "seeds when there are several, else the Wilson interval over the test images). "
        "Validation accuracy is the best trial's score: its best epoch's validation accuracy.",
        "",
        main_table(table, test_size) if not table.empty else "_No successful architecture._",
        "",
    ]
    failed = results[results["status"] != "ok"]
    if not failed.empty:
        parts += ["## Failed architectures", ""]
        parts += [f"- {md_escape(r['architecture'])}: {md_escape(r['error'])}" for _, r in failed.iterrows()]
        parts.append("")
    return "\n".join(parts)


def write_leaderboard(run_dir: Path, output: Path | None = None, allow_mixed_budgets: bool = False) -> Path:
    """Render the leaderboard and write it (default ``RUN_DIR/leaderboard.md``)."""
    target = output or run_dir / rundir.LEADERBOARD
    rundir.atomic_write_text(target, render(run_dir, allow_mixed_budgets))
    return target
