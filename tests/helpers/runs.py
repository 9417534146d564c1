"""Run directories made by hand: a manifest, results rows, predictions, a run per dataset."""

from __future__ import annotations

from benchmarks import rundir

HASH = "aaaaaaaaaaaa"


def manifest(name="demo", budget_hash=HASH):
    return {
        "name": name,
        "budget": {"fields": {"name": "quick", "trials": 3}, "hash": budget_hash},
        "dataset": {
            "name": "fashion_mnist", "source": "/data", "checksums": {"f.gz": "ab" * 32},
            "split_sizes": {"tune": 100, "validation": 50, "final_train": 100, "test": 1000},
        },
        "environment": {"python": "3.11", "tensorflow": "2.x", "keras": "3.x",
                        "keras_tuner": "1.4", "wandb": "0.31", "cpu": "cpu", "cpu_count": 2, "gpus": []},
        "git": {"commit": "abc123", "dirty": False},
        "wandb": {"project": "archbench", "group": name, "mode": "offline"},
        "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:10:00+00:00",
        "wall_seconds": 600.0,
    }


def result(arch, acc, params, latency, train_speed, budget_hash=HASH, **extra):
    return {
        "architecture": arch, "status": "ok", "error": "", "best_trial_id": "0",
        "best_hyperparameters": '{"units": 64, "learning_rate": 0.001234}',
        "val_accuracy": acc - 0.01, "test_accuracy": acc, "test_accuracy_std": 0.0,
        "test_loss": 0.5, "final_seeds": 1, "trainable_params": params, "total_params": params,
        "weight_bytes": params * 4, "train_images_per_second": train_speed, "epoch_seconds": 1.0,
        "inference_latency_ms": latency, "inference_images_per_second": 1000.0,
        "trials_completed": 3, "trials_failed": 0, "wandb_run_id": f"run-{arch}",
        "budget_hash": budget_hash, **extra,
    }


def make_run(tmp_path, rows, budget_hash=HASH):
    run = tmp_path / "run"
    rundir.write_json(run / rundir.MANIFEST, manifest(budget_hash=budget_hash))
    rundir.write_rows(run / rundir.RESULTS, rundir.RESULT_COLUMNS, rows)
    return run


ROWS = [
    result("small_net", 0.80, 1_000, 0.5, 900.0),
    result("big_net", 0.90, 100_000, 3.0, 100.0),
    result("mid_net", 0.85, 10_000, 1.0, 5000.0),
    {"architecture": "broken_net", "status": "failed", "error": "build failed: boom", "budget_hash": HASH},
]


def write_predictions(run, arch, correct):
    rows = [{"seed": 0, "sample": i, "label": 0, "predicted": 0 if ok else 1, "confidence": 0.9}
            for i, ok in enumerate(correct)]
    rundir.write_rows(run / rundir.PREDICTIONS_DIR / f"{arch}.csv", rundir.PREDICTION_COLUMNS, rows)


def make_dataset_run(tmp_path, dataset, rows, budget_hash=HASH):
    run = tmp_path / dataset
    data = manifest(name=dataset, budget_hash=budget_hash)
    data["dataset"]["name"] = dataset
    rundir.write_json(run / rundir.MANIFEST, data)
    rundir.write_rows(run / rundir.RESULTS, rundir.RESULT_COLUMNS, rows)
    return run


def write_seed_predictions(run, arch, accuracies, n=100):
    rows = [{"seed": seed, "sample": i, "label": 0, "predicted": 0 if i < round(acc * n) else 1,
             "confidence": 0.9} for seed, acc in enumerate(accuracies) for i in range(n)]
    rundir.write_rows(run / rundir.PREDICTIONS_DIR / f"{arch}.csv", rundir.PREDICTION_COLUMNS, rows)
