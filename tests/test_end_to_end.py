"""End to end: `archbench run --budget smoke` on the real data, then the same command again."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import rundir
from benchmarks.budget import make_budget
from reports.leaderboard import LEADERBOARD_CSV, MAIN_HEADERS
from tests.conftest import table_rows

ARCHS = ["simple_cnn", "mlp"]
TRIALS = 2


def archbench(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, fashion_dir):
    work = tmp_path_factory.mktemp("e2e")
    argv = ["run", "--budget", "smoke", "--trials", str(TRIALS), "-a", ",".join(ARCHS),
            "-o", str(work / "runs"), "--name", "smoke-e2e", "--data-dir", str(fashion_dir),
            "--wandb-mode", "offline"]
    first = archbench(*argv, cwd=Path(__file__).parents[1])
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = work / "runs" / "smoke-e2e"
    snapshot = {name: (run_dir / name).read_text() for name in (rundir.TRIALS, rundir.RESULTS)}
    second = archbench(*argv, cwd=Path(__file__).parents[1])
    return run_dir, first, second, snapshot


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / rundir.WANDB_DIR / "wandb").glob("offline-run-*"))


def test_every_file_of_the_run_directory_is_written(smoke_run):
    run_dir, first, _, _ = smoke_run
    for name in (rundir.MANIFEST, rundir.TRIALS, rundir.RESULTS, rundir.LEADERBOARD):
        assert (run_dir / name).is_file(), name
    for arch in ARCHS:
        assert (run_dir / rundir.TUNER_DIR / arch / "oracle.json").is_file()
    assert f"leaderboard written to {run_dir / rundir.LEADERBOARD}" in first.stdout


def test_manifest_records_budget_dataset_and_environment(smoke_run):
    run_dir = smoke_run[0]
    manifest = json.loads((run_dir / rundir.MANIFEST).read_text())
    budget = make_budget("smoke", trials=TRIALS)
    assert manifest["budget"]["hash"] == budget.hash
    assert manifest["budget"]["fields"]["trials"] == TRIALS
    assert manifest["dataset"]["split_sizes"] == {
        "tune": budget.train_size, "validation": budget.val_size,
        "final_train": budget.final_train_size, "test": 10000,
    }
    assert len(manifest["dataset"]["checksums"]) == 4
    assert manifest["environment"]["tensorflow"] and manifest["environment"]["cpu_count"] >= 1
    assert manifest["finished_at"] and manifest["wall_seconds"] > 0
    assert manifest["architectures"] == ARCHS


def test_one_trial_row_per_trial_and_one_result_per_architecture(smoke_run):
    run_dir = smoke_run[0]
    trials = rundir.read_rows(run_dir / rundir.TRIALS)
    assert sorted((t["architecture"], t["trial_id"]) for t in trials) == sorted(
        (a, str(i)) for a in ARCHS for i in range(TRIALS)
    )
    assert all(t["status"] == "COMPLETED" and 0 <= float(t["score"]) <= 1 for t in trials)
    results = rundir.read_rows(run_dir / rundir.RESULTS)
    assert sorted(r["architecture"] for r in results) == sorted(ARCHS)
    for r in results:
        assert r["status"] == "ok"
        assert 0 <= float(r["test_accuracy"]) <= 1 and 0 <= float(r["val_accuracy"]) <= 1
        assert int(r["total_params"]) > 0 and float(r["inference_latency_ms"]) > 0
        best = max((t for t in trials if t["architecture"] == r["architecture"]),
                   key=lambda t: float(t["score"]))
        assert float(r["val_accuracy"]) == pytest.approx(float(best["score"]))
        predictions = rundir.read_rows(run_dir / rundir.PREDICTIONS_DIR / f"{r['architecture']}.csv")
        assert len(predictions) == 10000
        correct = sum(p["label"] == p["predicted"] for p in predictions)
        assert float(r["test_accuracy"]) == pytest.approx(correct / 10000)


def test_one_offline_wandb_run_per_trial_and_per_final_training(smoke_run):
    run_dir = smoke_run[0]
    runs = offline_runs(run_dir)
    expected_ids = {t["wandb_run_id"] for t in rundir.read_rows(run_dir / rundir.TRIALS)}
    expected_ids |= {r["wandb_run_id"] for r in rundir.read_rows(run_dir / rundir.RESULTS)}
    assert len(runs) == len(ARCHS) * TRIALS + len(ARCHS)
    assert {p.name.rsplit("-", 1)[-1] for p in runs} == expected_ids
    assert not (Path(__file__).parents[1] / "wandb").exists(), "W&B files must stay in the run dir"


def test_leaderboard_ranks_both_architectures(smoke_run):
    run_dir = smoke_run[0]
    text = (run_dir / rundir.LEADERBOARD).read_text()
    table = table_rows(text)
    assert sorted(row[1].replace("\\_", "_") for row in table) == sorted(ARCHS)
    assert all(len(row) == len(MAIN_HEADERS) for row in table)
    header = text.split("## Architectures, ranked", 1)[1].split("\n| ", 1)[1].split("\n", 1)[0]
    assert [c.strip() for c in header.strip(" |").split(" | ")] == MAIN_HEADERS
    assert "## Verdict" in text and "**Most accurate**" in text
    assert len(table_rows(text, "## Budget parity")) == len(ARCHS)
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(links) == 4 and all((run_dir / link).is_file() for link in links)
    assert (run_dir / LEADERBOARD_CSV).is_file()


def test_same_command_again_resumes_without_retraining(smoke_run):
    run_dir, _, second, snapshot = smoke_run
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("already finished, skipped") == len(ARCHS)
    for name, text in snapshot.items():
        assert (run_dir / name).read_text() == text
    assert len(offline_runs(run_dir)) == len(ARCHS) * TRIALS + len(ARCHS)


def test_changed_budget_on_the_same_directory_is_refused(smoke_run, fashion_dir):
    run_dir = smoke_run[0]
    result = archbench(
        "run", "--budget", "smoke", "--trials", "5", "-a", "mlp", "-o", str(run_dir.parent),
        "--name", run_dir.name, "--data-dir", str(fashion_dir), "--wandb-mode", "disabled",
        cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 2
    assert "different budget trials 2 -> 5" in result.stderr
    assert "--name" in result.stderr
