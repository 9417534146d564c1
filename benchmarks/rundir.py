"""The run directory: the contract between ``benchmarks/`` (writer) and ``reports/`` (reader).

File and column names are defined here once. This module must not import TensorFlow:
``reports/`` imports it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import statistics
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
TRIALS = "trials.csv"
RESULTS = "results.csv"
LEADERBOARD = "leaderboard.md"
LEADERBOARD_CSV = "leaderboard.csv"
PREDICTIONS_DIR = "predictions"
MODELS_DIR = "models"  # each architecture's first final model, as .keras
TUNER_DIR = "tuner"
WANDB_DIR = "wandb_files"  # wandb.init(dir=...) adds its own "wandb/" below

TRIAL_COLUMNS = [
    "architecture",
    "trial_id",
    "status",
    "score",  # best-epoch validation accuracy of the trial
    "epochs_run",
    "steps_run",  # optimizer steps: under a time budget the last epoch may be partial
    "train_seconds",
    "hyperparameters",  # JSON object
    "val_accuracy_history",  # JSON list, one value per epoch trained in this trial
    "error",
    "wandb_run_id",
    "worker",  # distributed runs: the tuner id of the worker that trained it
    "origin",  # ORIGIN_DEFAULTS: the search's first trial, at the defaults; else ORIGIN_TUNER
    "budget_hash",
]
ORIGIN_DEFAULTS, ORIGIN_TUNER = "defaults", "tuner"  # where a trial's configuration came from

TRIAL_KEY = ["architecture", "trial_id"]
WORKERS_DIR = "workers"  # distributed runs: workers/<tuner id>/trials.csv and logs

RESULT_COLUMNS = [
    "architecture",
    "status",  # "ok", "failed" or "not applicable" (to the dataset's input shape)
    "error",
    "best_trial_id",
    "best_hyperparameters",  # JSON object
    "val_accuracy",  # best trial's score
    "test_accuracy",  # mean over final seeds
    "test_accuracy_std",
    "test_loss",
    "final_seeds",
    "trainable_params",
    "total_params",
    "weight_bytes",
    "macs_per_image",  # multiply-accumulates of one forward pass (convolutions, dense)
    "train_images_per_second",
    "epoch_seconds",
    "inference_latency_ms",
    "inference_images_per_second",
    "inference_latency_iqr_ms",  # interquartile range of the batch-1 calls
    "train_images_per_second_iqr",  # of the first final training's timed steps
    "peak_train_memory_mb",  # the final training's peak memory above its start
    "trials_completed",
    "trials_failed",
    "search_space_size",  # distinct configurations of its space, learning rate aside
    "search_seconds",  # wall time of the search (of the invocation that finished it)
    "final_epochs_run",  # per final seed, space-separated: epochs and optimizer steps
    "final_steps_run",  # trained (under a time budget the last epoch may be partial)
    "wandb_run_id",
    "budget_hash",
    "machine",  # hash of the hardware, versions, threads and accelerator settings in effect
]

# The measurements of results.csv (benchmarks.training.measure.Measurements), also in final W&B runs.
MEASUREMENT_COLUMNS = [
    "trainable_params", "total_params", "weight_bytes", "macs_per_image", "train_images_per_second",
    "epoch_seconds", "inference_latency_ms", "inference_images_per_second",
    "inference_latency_iqr_ms", "train_images_per_second_iqr", "peak_train_memory_mb",
]
RESULT_KEY = ["architecture"]
NOT_APPLICABLE = "not applicable"  # a results.csv status besides "ok" and "failed"
PREDICTION_COLUMNS = ["seed", "sample", "label", "predicted", "confidence", "label_name",
                      "predicted_name"]


class RunDirError(ValueError):
    """A run directory is missing, not a run directory, or inconsistent."""


def safe_name(name: str) -> str:
    """A file-name-safe form of ``name``: it cannot leave the directory it is joined to."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "unnamed"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` so that a crash leaves either the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings; no file means no rows."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    atomic_write_text(path, buffer.getvalue())


def upsert_row(path: Path, columns: list[str], row: dict[str, Any], key: list[str]) -> None:
    """Add ``row`` to a CSV file, replacing any row with the same ``key`` values.

    The whole file is rewritten atomically, so a kill at any instant leaves it parseable
    and a rerun of the same trial never leaves two rows.
    """
    wanted = tuple(str(_cell(row.get(k))) for k in key)
    rows = [r for r in read_rows(path) if tuple(r.get(k, "") for k in key) != wanted]
    rows.append(row)
    write_rows(path, columns, rows)


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""  # not known (yet): an empty cell
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def write_result(run_dir: Path, row: dict[str, Any]) -> None:
    """Add or replace one architecture's ``results.csv`` row."""
    upsert_row(run_dir / RESULTS, RESULT_COLUMNS, row, RESULT_KEY)


def predictions_path(run_dir: Path, architecture: str) -> Path:
    """Where the per-test-image predictions of ``architecture`` are kept."""
    return run_dir / PREDICTIONS_DIR / f"{safe_name(architecture)}.csv"


def model_path(run_dir: Path, architecture: str) -> Path:
    """Where the first final model of ``architecture`` is saved (Keras' ``.keras`` format)."""
    return run_dir / MODELS_DIR / f"{safe_name(architecture)}.keras"


def measurements(run_dir: Path) -> dict[str, dict[str, float]]:
    """Architecture -> its measured columns (``MEASUREMENT_COLUMNS``), from ``results.csv``."""
    return {row["architecture"]: {k: float(row[k]) for k in MEASUREMENT_COLUMNS if row.get(k)}
            for row in read_rows(run_dir / RESULTS) if row["status"] == "ok"}


def finished_architectures(run_dir: Path) -> set[str]:
    """Architectures whose result is already written: a resumed run skips them."""
    return {r["architecture"] for r in read_rows(run_dir / RESULTS)
            if r["status"] in ("ok", NOT_APPLICABLE)}


def public_hyperparameters(values: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters without Keras Tuner's own bookkeeping entries (``tuner/...``)."""
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


def format_hyperparameters(values: dict[str, Any]) -> str:
    """``{"a": 1, "b": 0.00123}`` -> ``a=1, b=0.00123``."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def seed_summary(accuracies: Sequence[float], losses: Sequence[float]) -> dict[str, Any]:
    """The ``results.csv`` fields that summarise the final trainings, one per seed."""
    return {
        "test_accuracy": statistics.fmean(accuracies),
        "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "test_loss": statistics.fmean(losses),
        "final_seeds": len(accuracies),
    }


def one_line(exc: BaseException) -> str:
    """An exception as the one line an ``error`` cell or message holds."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def is_run_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def require_run_dir(path: Path) -> Path:
    """``path`` if it holds a manifest; raises RunDirError otherwise."""
    if not path.is_dir():
        raise RunDirError(f"run directory {path} does not exist")
    if not is_run_dir(path):
        raise RunDirError(f"{path} is not an archbench run directory (no {MANIFEST})")
    return path


def merge_worker_trials(run_dir: Path) -> int:
    """Fold the trial rows written by the workers of a distributed run into ``trials.csv``.

    A worker's row replaces the chief's row of the same trial (the chief knows a trial
    only from its oracle; the worker also knows its epochs, seconds and history).

    Returns:
        The number of worker rows merged.
    """
    worker_rows = [
        row
        for path in sorted((run_dir / WORKERS_DIR).glob(f"*/{TRIALS}"))
        for row in read_rows(path)
    ]
    if not worker_rows:
        return 0
    merged = {tuple(r[k] for k in TRIAL_KEY): r for r in read_rows(run_dir / TRIALS)}
    for row in worker_rows:
        merged[tuple(row[k] for k in TRIAL_KEY)] = row
    write_rows(run_dir / TRIALS, TRIAL_COLUMNS, merged.values())
    return len(worker_rows)


def orphan_wandb_runs(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Ids of local W&B runs that no results file names: runs of interrupted trainings.

    They stay on disk (W&B may still sync them) but are not counted anywhere.
    """
    known = {row["wandb_run_id"] for row in read_rows(run_dir / TRIALS)}
    for row in read_rows(run_dir / RESULTS):
        known.update(row["wandb_run_id"].split())
    known.add(manifest.get("wandb", {}).get("report_run_id") or "")
    local = (run_dir / WANDB_DIR / "wandb").glob("*run-*")
    return sorted({p.name.rsplit("-", 1)[-1] for p in local if p.is_dir()} - known)
