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

from benchmarks import rundir
from reports import ReportError
from reports.enough import enough_section, expected_best_curves, reorder_warning
from reports.markdown import markdown_table, md_escape
from reports.parity import cap_sentence, equal_part, parity_table, time_table
from reports.stats import (
    POWER,
    SIGNIFICANCE,
    pareto_optimal,
    seed_interval,
    wilson_interval,
)
from reports.verdict import possibly_best, significance, significance_table, verdict

NUMERIC_RESULTS = [
    "val_accuracy", "test_accuracy", "test_accuracy_std", "test_loss", "final_seeds",
    "trainable_params", "total_params", "weight_bytes", "train_images_per_second",
    "epoch_seconds", "inference_latency_ms", "inference_images_per_second",
    "inference_latency_iqr_ms", "train_images_per_second_iqr", "peak_train_memory_mb",
    "trials_completed",
    "trials_failed",
]


@dataclass
class RunData:
    """The tables a leaderboard is built from, whatever their source."""

    manifest: dict[str, Any]
    results: pd.DataFrame
    trials: pd.DataFrame
    # architecture -> per-test-image correctness (first final seed); empty when unknown
    correct: dict[str, np.ndarray] = field(default_factory=dict)
    # architecture -> test accuracy of each final seed, from the predictions files
    seed_accuracy: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.results = self.results.reindex(columns=rundir.RESULT_COLUMNS)
        self.trials = self.trials.reindex(columns=rundir.TRIAL_COLUMNS)
        for column in NUMERIC_RESULTS:
            self.results[column] = pd.to_numeric(self.results[column], errors="coerce")
        self.results = self.results.fillna({"error": "", "wandb_run_id": "", "budget_hash": "",
                                            "machine": ""})
        self.trials = self.trials.fillna("")


def load_run(run_dir: Path) -> RunData:
    """The tables of a run directory.

    Raises:
        RunDirError: not a run directory.
    """
    rundir.require_run_dir(run_dir)
    results = pd.DataFrame(rundir.read_rows(run_dir / rundir.RESULTS))
    correct, seed_accuracy = {}, {}
    for arch in results.get("architecture", []):
        path = rundir.predictions_path(run_dir, arch)
        if path.is_file():
            predictions = pd.read_csv(path)
            right = predictions["label"] == predictions["predicted"]
            seed_accuracy[arch] = right.groupby(predictions["seed"]).mean().tolist()
            first = predictions[predictions["seed"] == predictions["seed"].min()].sort_values("sample")
            correct[arch] = (first["label"] == first["predicted"]).to_numpy()
    _check_predictions(results, seed_accuracy, run_dir)
    return RunData(
        manifest=rundir.read_json(run_dir / rundir.MANIFEST),
        results=results,
        trials=pd.DataFrame(rundir.read_rows(run_dir / rundir.TRIALS)),
        correct=correct,
        seed_accuracy=seed_accuracy,
    )


def _check_predictions(results: pd.DataFrame, seed_accuracy: dict[str, list[float]],
                       run_dir: Path) -> None:
    """Each test accuracy in ``results.csv`` is the one its predictions file gives (the mean
    over its seeds), so the tests, which read the predictions, test what is ranked.

    Raises:
        ReportError: naming the architecture, both figures and the file.
    """
    for row in results.to_dict("records") if not results.empty else []:
        arch, accuracies = row["architecture"], seed_accuracy.get(row["architecture"])
        try:
            reported = float(row.get("test_accuracy", "nan"))
        except ValueError:
            continue
        if accuracies and not math.isnan(reported) and abs(reported - np.mean(accuracies)) > 1e-6:
            path = rundir.predictions_path(run_dir, arch).relative_to(run_dir)
            raise ReportError(
                f"{arch}'s test accuracy in {rundir.RESULTS} ({reported:.4f}) is not that of "
                f"{path} ({np.mean(accuracies):.4f}); the run directory was edited or mixed "
                "with another run's files: rerun the architecture (delete its results row)")


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
    machines = sorted(set(data.results["machine"]) - {""})
    if len(machines) > 1 and not allow_mixed:
        records = [data.manifest.get("machines", {}).get(m, {}) for m in machines]
        differ = sorted({k for r in records for k in r if any(o.get(k) != r[k] for o in records)})
        raise ReportError(
            f"results were measured on {len(machines)} different machines or settings "
            f"({', '.join(machines)}; they differ in {', '.join(differ) or 'unrecorded ways'}); "
            "their speeds are not comparable (pass --allow-mixed-budgets to rank them anyway, "
            "flagged)")


def ranked(data: RunData) -> pd.DataFrame:
    """Successful architectures with a test accuracy, best first, with rank, interval and
    Pareto flag."""
    ok = data.results[(data.results["status"] == "ok") & data.results["test_accuracy"].notna()].copy()
    ok = ok.sort_values(["test_accuracy", "total_params"], ascending=[False, True], kind="stable")
    ok = ok.reset_index(drop=True)
    ok.insert(0, "rank", range(1, len(ok) + 1))
    test_size = data.manifest["dataset"].get("split_sizes", {}).get("test", 0)
    intervals = [_interval(row, test_size) for _, row in ok.iterrows()]
    ok["test_accuracy_low"] = [low for low, _ in intervals]
    ok["test_accuracy_high"] = [high for _, high in intervals]
    ok["pareto"] = pareto_optimal(
        ok["test_accuracy"].tolist(), ok["inference_latency_ms"].tolist(),
        ok["total_params"].tolist(), ok["inference_latency_iqr_ms"].tolist())
    return ok


def _interval(row: pd.Series, test_size: int) -> tuple[float, float]:
    seeds = 1 if math.isnan(row["final_seeds"]) else int(row["final_seeds"])
    if seeds > 1 and row["test_accuracy_std"] > 0:
        return seed_interval(row["test_accuracy"], row["test_accuracy_std"], seeds)
    # one seed, or seeds that agree: the test images' sampling is what is left to count
    return wilson_interval(row["test_accuracy"], test_size)


def short_hp(text: str) -> str:
    """``{"a": 1, "b": 0.00123}`` -> ``a=1, b=0.00123``."""
    try:
        values = json.loads(text) if text else {}
    except (json.JSONDecodeError, TypeError):
        return str(text)
    return rundir.format_hyperparameters(values)


MAIN_HEADERS = [
    "rank", "architecture", "test accuracy [95% CI]", "val accuracy", "parameters", "weights",
    "train images/s", "s/epoch", "train memory MiB", "latency ms (batch 1, median)", "inference images/s", "Pareto",
    "best hyperparameters", "W&B run",
]


def main_table(table: pd.DataFrame) -> str:
    rows = [
        [
            r["rank"], md_escape(r["architecture"]),
            f"{r['test_accuracy']:.4f} [{r['test_accuracy_low']:.4f}, {r['test_accuracy_high']:.4f}]",
            f"{r['val_accuracy']:.4f}", f"{int(r['total_params']):,}",
            f"{r['weight_bytes'] / 1024:,.0f} KiB", f"{r['train_images_per_second']:,.0f}",
            f"{r['epoch_seconds']:.1f}", _or_dash(r["peak_train_memory_mb"], "{:,.0f}"),
            _with_spread(r["inference_latency_ms"],
                                                      r["inference_latency_iqr_ms"]),
            f"{r['inference_images_per_second']:,.0f}", "yes" if r["pareto"] else "",
            md_escape(short_hp(r["best_hyperparameters"])), md_escape(r["wandb_run_id"] or "-"),
        ]
        for _, r in table.iterrows()
    ]
    return markdown_table(rows, MAIN_HEADERS)


def _or_dash(value: float, fmt: str) -> str:
    return "-" if math.isnan(value) else fmt.format(value)


def _with_spread(value: float, spread: float) -> str:
    return f"{value:.2f}" if math.isnan(spread) else f"{value:.2f} (IQR {spread:.2f})"


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
        f"- **Budget**: {md_escape(budget['fields'].get('name'))}, hash {budget['hash']}, "
        f"{md_escape(equal_part(manifest))}: {md_escape(fields)}",
    ]
    lines.append(backend_line(budget["fields"], env, manifest.get("accelerator") or {}))
    if env:
        lines.append(
            f"- **Environment**: Python {env.get('python')}, "
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


def backend_line(fields: dict, env: dict, accelerator: dict) -> str:
    """Which Keras backend computed, its versions, and the precision and XLA in effect."""
    backend = fields.get("backend", "tensorflow")  # runs made before the choice: TensorFlow
    versions = env.get("backend_versions") or {"tensorflow": env.get("tensorflow")}
    ordered = sorted(versions.items(), key=lambda kv: kv[0] != backend)  # the backend's first
    detail = ", ".join(f"{k} {v}" for k, v in ordered if v)
    policy = accelerator.get("policy") or (
        "mixed_float16" if accelerator.get("mixed_precision") else "float32")
    xla = {True: "on", False: "off"}.get(accelerator.get("xla"), "?")
    return (f"- **Backend**: Keras on {md_escape(backend)}{f' ({md_escape(detail)})' if detail else ''}; "
            f"precision {policy}, XLA {xla}")


def time_section(manifest: dict[str, Any]) -> list[str]:
    """"Where the time went", where the run recorded its time."""
    times = time_table(manifest)
    if not times:
        return []
    return ["## Where the time went", "",
            "Share of each architecture's wall time (this machine, this run). Training "
            "excludes the validation passes and the logging done inside it; compilation is "
            "the tracing and compiling of each training's steps (its first training and first "
            "validation batch, less one step).", "", times, ""]


def render(data: RunData, plots: dict[str, str] | None = None, allow_mixed_budgets: bool = False,
           sections: list[str] | None = None) -> str:
    """The leaderboard as markdown; ``plots`` maps titles to relative image paths;
    ``sections``: markdown lines of further sections (a comparison with another run),
    placed after the significance tests."""
    check_budgets(data, allow_mixed_budgets)
    table = ranked(data)
    tests = significance(table, data.correct, data.seed_accuracy)
    members = possibly_best(table, data.correct, data.seed_accuracy)
    parts = [f"# archbench leaderboard: {md_escape(data.manifest['name'])}", "",
             *header(data.manifest), "", "## Verdict", "", *verdict(table, tests, members)]
    order = list(table["architecture"]) if not table.empty else []
    curves = expected_best_curves(data.trials)
    warning = reorder_warning(curves, order)
    parts += [warning, ""] if warning else [""]
    parts += [
        "## Architectures, ranked by test accuracy", "",
        "Test accuracy: mean over the final seeds with its 95% interval (Student t over seeds "
        "when there are several, else the Wilson interval over the test images). Val accuracy: "
        "the best trial's score, its best epoch's validation accuracy. s/epoch: the final "
        "training split at the measured training throughput.", "",
        main_table(table) if not table.empty else "_No architecture produced a result._", "",
    ]
    parts += significance_section(table, tests) if tests else []
    parts += enough_section(curves, order)
    parts += sections or []
    parts += ["## Budget parity", "", f"Every architecture ran under budget {data.manifest['budget']['hash']}"
              f" unless flagged: {equal_part(data.manifest)}.{cap_sentence(data.manifest)}", "",
              parity_table(data), ""]
    parts += time_section(data.manifest)
    results = data.results
    for heading, rows, why in (
            ("Failed architectures", results[results["status"] == "failed"], None),
            ("Not ranked", results[(results["status"] == "ok") & results["test_accuracy"].isna()],
             "no test accuracy in results.csv"),
            ("Not applicable to this input", results[results["status"] == rundir.NOT_APPLICABLE],
             None)):
        if not rows.empty:
            parts += [f"## {heading}", ""]
            parts += [f"- {md_escape(r['architecture'])}: {md_escape(why or r['error'])}"
                      for _, r in rows.iterrows()]
            parts.append("")
    if plots:
        parts += ["## Plots", ""]
        parts += [f"![{title}]({path})" for title, path in plots.items()]
        parts.append("")
    return "\n".join(parts)


def significance_section(table: pd.DataFrame, tests: dict) -> list[str]:
    """"Is the win real?": the most accurate against each other one, and how to read it."""
    return [
        "## Is the win real?", "",
        "The most accurate architecture against each other one. With two or more final "
        "seeds each: Welch's t-test on the seeds' test accuracies (it counts training "
        "randomness); else the exact McNemar test on the same test images (it counts only "
        "which test images were drawn). p (Holm): corrected for the number of comparisons; "
        f"\"wins\" needs it below {SIGNIFICANCE} and a positive difference. The interval "
        "agrees with the test: McNemar's is the exact (Clopper-Pearson) interval over the "
        "images the two disagree on, Welch's the t interval. Critical difference: the "
        "smallest difference the test would have called significant (before Holm) with "
        "the same disagreeing images or the same seed spread; a true difference of that "
        f"size is missed nearly half the time. Found with {POWER:.0%} power: the true "
        "difference the test finds that often under the same conditions.",
        "", significance_table(table, tests), "",
    ]


def csv_table(table: pd.DataFrame) -> pd.DataFrame:
    columns = ["rank", "architecture", "test_accuracy", "test_accuracy_low", "test_accuracy_high",
               "val_accuracy", "trainable_params", "total_params", "weight_bytes",
               "train_images_per_second", "epoch_seconds", "inference_latency_ms",
               "inference_images_per_second", "pareto", "best_hyperparameters", "wandb_run_id",
               "budget_hash"]
    return table.reindex(columns=columns)


def write_report(data: RunData, output: Path, allow_mixed_budgets: bool = False,
                 sections: list[str] | None = None) -> Path:
    """Write the markdown, ``leaderboard.csv`` and the plots beside it; returns the markdown.
    ``sections``: as for ``render``."""
    from reports.plots import write_plots  # matplotlib only when files are written

    check_budgets(data, allow_mixed_budgets)
    table = ranked(data)
    output.parent.mkdir(parents=True, exist_ok=True)
    fields = data.manifest["budget"]["fields"]
    subtitle = (f"{data.manifest['dataset']['name']}, budget {fields.get('name')} "
                f"({data.manifest['budget']['hash']})")
    images = write_plots(table, data.trials, output.parent, subtitle)
    relative = {title: path.name for title, path in images.items()}
    rundir.atomic_write_text(output, render(data, relative, allow_mixed_budgets, sections))
    rundir.atomic_write_text(output.parent / rundir.LEADERBOARD_CSV, csv_table(table).to_csv(index=False))
    return output


def write_leaderboard(run_dir: Path, output: Path | None = None, allow_mixed_budgets: bool = False) -> Path:
    """The leaderboard of a run directory (default ``RUN_DIR/leaderboard.md``)."""
    data = load_run(run_dir)
    return write_report(data, output or run_dir / rundir.LEADERBOARD, allow_mixed_budgets)
