"""The leaderboard, from hand-made run directories with known answers (no TensorFlow)."""

import subprocess
import sys

import pytest

from benchmarks import rundir
from reports.leaderboard import ReportError, md_escape, render, wilson_interval, write_leaderboard

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


def table_rows(markdown: str) -> list[list[str]]:
    lines = [ln for ln in markdown.splitlines() if ln.startswith("| ") and "---" not in ln]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[1:]]


def test_ranked_by_test_accuracy_with_winners_per_criterion(tmp_path):
    text = render(make_run(tmp_path, ROWS))
    ranks = [(r[0], r[1]) for r in table_rows(text)]
    assert ranks == [("1", "big\\_net"), ("2", "mid\\_net"), ("3", "small\\_net")]
    assert "**Most accurate**: big\\_net (test accuracy 0.9000)" in text
    assert "**Fastest at inference**: small\\_net (0.50 ms" in text
    assert "**Fastest to train**: mid\\_net (5,000 training images/s)" in text
    assert "**Smallest**: small\\_net (1,000 parameters)" in text


def test_failed_architecture_is_listed_with_its_error(tmp_path):
    text = render(make_run(tmp_path, ROWS))
    assert "## Failed architectures" in text
    assert "- broken\\_net: build failed: boom" in text
    assert "broken" not in " ".join(r[1] for r in table_rows(text))


def test_wilson_interval_matches_hand_computation():
    # p = 0.9, n = 1000, z = 1.96: centre 0.9019208 / 1.0038416 = 0.898469,
    # half-width 1.96 * sqrt(0.00009 + 0.00000096) / 1.0038416 = 0.018622.
    low, high = wilson_interval(0.9, 1000)
    assert low == pytest.approx(0.879847, abs=1e-4)
    assert high == pytest.approx(0.917091, abs=1e-4)


def test_interval_is_shown_in_the_table(tmp_path):
    text = render(make_run(tmp_path, ROWS[:1]))
    assert table_rows(text)[0][2] == "0.8000 [0.7741, 0.8236]"


def test_mixed_budgets_are_refused_unless_allowed(tmp_path):
    rows = [result("a", 0.8, 10, 1.0, 1.0), result("b", 0.9, 10, 1.0, 1.0, budget_hash="bbbbbbbbbbbb")]
    run = make_run(tmp_path, rows)
    with pytest.raises(ReportError, match="2 different budgets"):
        render(run)
    assert len(table_rows(render(run, allow_mixed_budgets=True))) == 2


def test_awkward_names_do_not_break_tables(tmp_path):
    awkward = "a|b*c_d`e\nf"
    text = render(make_run(tmp_path, [result(awkward, 0.8, 10, 1.0, 1.0), result("plain", 0.7, 10, 1.0, 1.0)]))
    rows = table_rows(text)
    assert all(len(r) == len(rows[0]) for r in rows)
    assert rows[0][1] == "a\\|b\\*c\\_d\\`e f"
    assert md_escape("x\ny") == "x y"


def test_report_writes_file_and_refuses_non_run_dirs(tmp_path):
    run = make_run(tmp_path, ROWS)
    assert write_leaderboard(run) == run / rundir.LEADERBOARD
    assert (run / rundir.LEADERBOARD).read_text().startswith("# archbench leaderboard")
    with pytest.raises(rundir.RunDirError, match="is not an archbench run directory"):
        write_leaderboard(tmp_path)


def test_reports_never_import_tensorflow(tmp_path):
    run = make_run(tmp_path, ROWS)
    code = (
        "import sys; from pathlib import Path; from reports.leaderboard import render; "
        f"render(Path({str(run)!r})); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
