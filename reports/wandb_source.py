"""Leaderboard tables from the runs of a shared W&B project (trials run on several machines)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pandas as pd

from benchmarks.rundir import MEASUREMENT_COLUMNS, public_hyperparameters, seed_summary
from reports.leaderboard import RunData


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    """``mapping[key]`` for dicts and W&B's summary/config objects alike."""
    try:
        value = mapping[key]
    except (KeyError, TypeError, IndexError):
        return default
    return default if value is None else value


def runs_to_data(runs: Iterable[Any], group: str, project: str = "") -> RunData:
    """Convert W&B runs into the tables of a run directory.

    Each run needs ``config``, ``summary``, ``name``, ``id``, ``group`` and ``job_type``, as
    ``wandb.Api().runs(...)`` returns them. Runs of other groups are ignored. No per-image
    predictions exist in W&B, so the significance section is left out.
    """
    mine = [r for r in runs if r.group == group]
    trials, finals, measured = [], defaultdict(list), {}
    for run in mine:
        if run.job_type == "trial":
            trials.append(_trial_row(run))
        elif run.job_type == "final":
            finals[_get(run.config, "architecture", "?")].append(run)
        elif run.job_type == "report":  # the speeds, timed after the final runs ended
            measured.update(dict(_get(run.summary, "measurements", {})))
    if not mine:
        raise ValueError(f"no W&B run in group {group!r}")
    trial_table = pd.DataFrame(trials)
    results = [{**_result_row(arch, runs_, trial_table), **dict(measured.get(arch, {}))}
               for arch, runs_ in sorted(finals.items())]
    finished = set(finals)
    for arch in sorted({t["architecture"] for t in trials} - finished):
        results.append({"architecture": arch, "status": "failed",
                        "error": "no final run in W&B (every trial failed or the run stopped)",
                        "budget_hash": _budget_hash_of(trial_table, arch)})
    config = mine[0].config
    manifest = {
        "name": group,
        "budget": {"fields": dict(_get(config, "budget", {})), "hash": _get(config, "budget_hash", "")},
        "dataset": {"name": _get(config, "dataset", "?"), "source": f"W&B project {project}"},
        "wandb": {"project": project, "group": group, "mode": "online"},
    }
    return RunData(manifest=manifest, results=pd.DataFrame(results), trials=trial_table)


def _trial_row(run: Any) -> dict[str, Any]:
    config, summary = run.config, run.summary
    return {
        "architecture": _get(config, "architecture", "?"),
        "trial_id": str(_get(config, "trial_id", run.name)),
        "status": _get(summary, "status", "UNKNOWN"),
        "score": _get(summary, "score", ""),
        "epochs_run": _get(summary, "epochs_run", ""),
        "train_seconds": _get(summary, "train_seconds", ""),
        "hyperparameters": json.dumps(dict(_get(config, "hyperparameters", {})), sort_keys=True),
        "error": _get(summary, "error", ""),
        "wandb_run_id": run.id,
        "budget_hash": _get(config, "budget_hash", ""),
    }


def _result_row(arch: str, runs: list[Any], trials: pd.DataFrame) -> dict[str, Any]:
    accuracies = [float(_get(r.summary, "test_accuracy")) for r in runs]
    losses = [float(_get(r.summary, "test_loss", float("nan"))) for r in runs]
    first = runs[0]
    hp = public_hyperparameters(dict(_get(first.config, "hyperparameters", {})))
    mine = trials[trials["architecture"] == arch] if not trials.empty else trials
    scores = pd.to_numeric(mine["score"], errors="coerce").dropna() if not mine.empty else []
    completed = int((mine["status"] == "COMPLETED").sum()) if not mine.empty else 0
    return {
        "architecture": arch,
        "status": "ok",
        "error": "",
        "best_trial_id": "",
        "best_hyperparameters": json.dumps(hp, sort_keys=True),
        "val_accuracy": float(max(scores)) if len(scores) else float("nan"),
        **seed_summary(accuracies, losses),
        **{key: _get(first.summary, key, float("nan")) for key in MEASUREMENT_COLUMNS},
        "trials_completed": completed,
        "trials_failed": len(mine) - completed,
        "wandb_run_id": " ".join(r.id for r in runs),
        "budget_hash": _get(first.config, "budget_hash", ""),
    }


def _budget_hash_of(trials: pd.DataFrame, arch: str) -> str:
    rows = trials[trials["architecture"] == arch]
    return str(rows["budget_hash"].iloc[0]) if not rows.empty else ""


def fetch_runs(path: str, group: str) -> list[Any]:  # pragma: no cover - needs a W&B server
    """The runs of ``ENTITY/PROJECT`` in ``group``, through ``wandb.Api`` (needs a login)."""
    import wandb

    return list(wandb.Api().runs(path, filters={"group": group}))

