"""End to end: `archbench run --budget smoke` on the real data, then the same command again."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import rundir, timing
from benchmarks.budget import make_budget
from reports.leaderboard import MAIN_HEADERS
from reports.parity import TIME_HEADERS
from tests.conftest import table_rows, wandb_inspect
from tests.helpers import REPO
from tests.helpers.commands import archbench

# Every test here runs `archbench` on the real data in subprocesses (minutes).
pytestmark = pytest.mark.slow

ARCHS = ["simple_cnn", "mlp"]
TRIALS = 2




@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, fashion_dir):
    work = tmp_path_factory.mktemp("e2e")
    argv = ["run", "--budget", "smoke", "--trials", str(TRIALS), "-a", ",".join(ARCHS),
            "-o", str(work / "runs"), "--name", "smoke-e2e", "--data-dir", str(fashion_dir),
            "--wandb-mode", "offline"]
    first = archbench(*argv, cwd=REPO)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = work / "runs" / "smoke-e2e"
    snapshot = {name: (run_dir / name).read_text() for name in (rundir.TRIALS, rundir.RESULTS)}
    second = archbench(*argv, cwd=REPO)
    return run_dir, first, second, snapshot


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / rundir.WANDB_DIR / "wandb").glob("offline-run-*"))


def test_progress_says_how_long_the_rest_will_take(smoke_run):
    _, first, _, _ = smoke_run
    assert re.search(r"archbench: 1 architecture\(s\) in \d+ s, about \d+ s left for 1 more",
                     first.stdout), first.stdout[-2000:]
    assert "\x1b[" not in first.stdout and "\r" not in first.stdout, "no bar into a pipe"


def test_every_file_of_the_run_directory_is_written(smoke_run):
    run_dir, first, _, _ = smoke_run
    for name in (rundir.MANIFEST, rundir.TRIALS, rundir.RESULTS, rundir.LEADERBOARD):
        assert (run_dir / name).is_file(), name
    for arch in ARCHS:
        assert (run_dir / rundir.TUNER_DIR / arch / "oracle.json").is_file()
    assert f"leaderboard written to {run_dir / rundir.LEADERBOARD}" in first.stdout
    assert f"measuring {len(ARCHS)} saved model(s) in" in first.stdout
    import keras

    import benchmarks.training.recipe  # noqa: F401 - registers the schedule and loss the models use

    results = {r["architecture"]: r for r in rundir.read_rows(run_dir / rundir.RESULTS)}
    for arch in ARCHS:  # each final model can be taken away and reloaded
        saved = keras.saving.load_model(rundir.model_path(run_dir, arch))
        assert saved.count_params() == int(results[arch]["total_params"])
        assert float(results[arch]["inference_latency_ms"]) > 0


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
    from benchmarks.training.measure import SETTINGS

    assert manifest["measurement"] == SETTINGS and manifest["measurement"]["latency_calls"] > 0
    assert len(manifest["dataset"]["split_index_sha256"]) == 64
    [(digest, record)] = manifest["machines"].items()
    assert record["accelerator"] == manifest["accelerator"]
    results = rundir.read_rows(run_dir / rundir.RESULTS)
    assert {r["machine"] for r in results} == {digest}, "every row names its machine"


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


RUNS_PER_BENCHMARK = len(ARCHS) * TRIALS + len(ARCHS) + 1  # trials, finals, one report


def test_one_offline_wandb_run_per_trial_and_final_training_and_one_report(smoke_run):
    run_dir = smoke_run[0]
    runs = offline_runs(run_dir)
    expected_ids = {t["wandb_run_id"] for t in rundir.read_rows(run_dir / rundir.TRIALS)}
    expected_ids |= {r["wandb_run_id"] for r in rundir.read_rows(run_dir / rundir.RESULTS)}
    assert len(runs) == RUNS_PER_BENCHMARK
    ids = {p.name.rsplit("-", 1)[-1] for p in runs}
    assert expected_ids < ids and len(ids - expected_ids) == 1  # the report run
    assert not (REPO / "wandb").exists(), "W&B files must stay in the run dir"


def run_record(records: list[dict]) -> dict:
    return next(r["run"] for r in records if r["type"] == "run")


def history(records: list[dict]) -> list[dict]:
    return [r["history"]["item"] for r in records if r["type"] == "history"]


def runs_by_id(run_dir: Path) -> dict[str, Path]:
    return {p.name.rsplit("-", 1)[-1]: p for p in offline_runs(run_dir)}


def read_back(path: Path) -> tuple[dict, list[dict]]:
    """A run's summary object and its records, as `wandb leet inspect` reads them."""
    return wandb_inspect(path, summary=True), wandb_inspect(path, summary=False)


def test_trial_runs_hold_config_history_and_the_trials_csv_score(smoke_run):
    run_dir = smoke_run[0]
    paths = runs_by_id(run_dir)
    for trial in rundir.read_rows(run_dir / rundir.TRIALS):
        summary, records = read_back(paths[trial["wandb_run_id"]])
        config = summary["config"]
        assert config["architecture"] == trial["architecture"]
        assert config["trial_id"] == trial["trial_id"]
        assert config["hyperparameters"] == json.loads(trial["hyperparameters"])
        assert config["budget_hash"] == trial["budget_hash"] and config["budget"]["trials"] == TRIALS
        assert {"dataset", "trial_seed", "git_commit"} <= set(config)
        assert summary["summary"]["score"] == pytest.approx(float(trial["score"]))
        assert summary["summary"]["status"] == "COMPLETED" and summary["exit_code"] == 0
        assert summary["name"] == f"{trial['architecture']}-t{trial['trial_id']}"
        assert set(summary["tags"]) == {trial["architecture"], "smoke"}
        run = run_record(records)
        assert run["run_group"] == "smoke-e2e" and run["job_type"] == "trial"
        # W&B records the commit itself when run from a git checkout, as the tests are.
        assert run["git"]["commit"] == config["git_commit"]
        epochs = [row for row in history(records) if "epoch/val_accuracy" in row]
        assert len(epochs) == int(trial["epochs_run"])
        assert all(row["epoch/epoch_seconds"] > 0 and "epoch/learning_rate" in row for row in epochs)


def test_final_runs_hold_test_accuracy_predictions_and_gradients(smoke_run):
    run_dir = smoke_run[0]
    paths = runs_by_id(run_dir)
    for result in rundir.read_rows(run_dir / rundir.RESULTS):
        summary, records = read_back(paths[result["wandb_run_id"]])
        assert run_record(records)["job_type"] == "final"
        values = summary["summary"]
        assert values["test_accuracy"] == pytest.approx(float(result["test_accuracy"]))
        assert values["total_params"] == int(result["total_params"])
        assert values["test/predictions"]["_type"] == "table-file"
        assert any(key.startswith("test/confusion_matrix") for key in values)
        rows = history(records)
        assert any(key.startswith("gradients/") and key.endswith("/norm") for row in rows for key in row)


def test_report_run_holds_the_leaderboard(smoke_run):
    run_dir = smoke_run[0]
    known = {t["wandb_run_id"] for t in rundir.read_rows(run_dir / rundir.TRIALS)}
    known |= {r["wandb_run_id"] for r in rundir.read_rows(run_dir / rundir.RESULTS)}
    (report,) = [p for i, p in runs_by_id(run_dir).items() if i not in known]
    summary, records = read_back(report)
    assert run_record(records)["job_type"] == "report"
    assert summary["summary"]["leaderboard"]["_type"] == "table-file"
    assert any(key.startswith("plots/") for key in summary["summary"])


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
    assert len(links) == 7 and all((run_dir / link).is_file() for link in links)
    assert (run_dir / rundir.LEADERBOARD_CSV).is_file()


def test_same_command_again_resumes_without_retraining(smoke_run):
    run_dir, _, second, snapshot = smoke_run
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("already finished, skipped") == len(ARCHS)
    for name, text in snapshot.items():
        assert (run_dir / name).read_text() == text
    # Nothing new ran, so no new W&B run either (not even a second report run).
    assert len(offline_runs(run_dir)) == RUNS_PER_BENCHMARK


def test_kill_9_during_a_trial_then_rerun_gives_the_uninterrupted_results(smoke_run, fashion_dir, tmp_path):
    reference = smoke_run[0]
    argv = ["run", "--budget", "smoke", "--trials", str(TRIALS), "-a", ",".join(ARCHS),
            "-o", str(tmp_path), "--name", "killed", "--data-dir", str(fashion_dir),
            "--wandb-mode", "offline"]
    root, run_dir = REPO, tmp_path / "killed"
    env = {**os.environ, "WANDB_MODE": "offline", "TF_CPP_MIN_LOG_LEVEL": "2"}
    victim = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", *argv], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while not rundir.read_rows(run_dir / rundir.TRIALS) and time.monotonic() < deadline:
        assert victim.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)  # the first trial is written, the second is running
    victim.wait()
    written = rundir.read_rows(run_dir / rundir.TRIALS)
    assert len(written) < len(ARCHS) * TRIALS
    paths = runs_by_id(run_dir)
    for trial in written:  # a written trial's W&B run is complete on disk, killed or not
        summary = wandb_inspect(paths[trial["wandb_run_id"]], summary=True)
        assert summary["summary"]["status"] == "COMPLETED" and summary["exit_code"] == 0
        assert summary["summary"]["score"] == pytest.approx(float(trial["score"]))

    rerun = archbench(*argv, cwd=root)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    def key(rows, *fields):
        return sorted(tuple(r[f] for f in fields) for r in rows)

    trial_fields = ("architecture", "trial_id", "status", "score", "hyperparameters", "epochs_run")
    result_fields = ("architecture", "best_trial_id", "best_hyperparameters", "val_accuracy",
                     "test_accuracy", "total_params")
    for name, fields in ((rundir.TRIALS, trial_fields), (rundir.RESULTS, result_fields)):
        assert key(rundir.read_rows(run_dir / name), *fields) == key(
            rundir.read_rows(reference / name), *fields), name


def test_changed_budget_on_the_same_directory_is_refused(smoke_run, fashion_dir):
    run_dir = smoke_run[0]
    result = archbench(
        "run", "--budget", "smoke", "--trials", "5", "-a", "mlp", "-o", str(run_dir.parent),
        "--name", run_dir.name, "--data-dir", str(fashion_dir), "--wandb-mode", "disabled",
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "different budget trials 2 -> 5" in result.stderr
    assert "--name" in result.stderr


def test_a_second_run_on_a_directory_in_use_is_refused(tmp_path, fashion_dir):
    # The first run has far more trials than the test waits for: it holds its lock from
    # before TensorFlow starts; the second command is refused at the lock, then the first is
    # interrupted (during TensorFlow's start or its training: either stops it cleanly).
    argv = ["run", "--budget", "smoke", "-a", "mlp", "--trials", "500", "-o", str(tmp_path),
            "--name", "busy", "--data-dir", str(fashion_dir), "--wandb-mode", "disabled"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    root = REPO
    first = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", *argv], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".busy.lock"
    try:
        deadline = time.monotonic() + 120
        while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lock.exists(), "the first run never took its lock"
        second = archbench(*argv, cwd=root)
        assert first.poll() is None, "the first run must still be running"
        first.send_signal(signal.SIGINT)  # Ctrl-C
        _, first_err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, first_err[-2000:]
    assert "archbench: stopped by SIGINT; finished trials and architectures are kept" in first_err
    assert second.returncode == 2
    assert f"{tmp_path / 'busy'} is in use by another archbench run (pid {first.pid})" in second.stderr
    assert not lock.exists(), "an interrupted run releases its lock"
    assert not (tmp_path / "busy" / rundir.WANDB_DIR).exists(), "--wandb-mode disabled writes nothing"


def test_time_breakdown_adds_up_to_the_wall_time(smoke_run):
    run_dir = smoke_run[0]
    manifest = json.loads((run_dir / rundir.MANIFEST).read_text())
    book = manifest["time"]
    assert sorted(book["architectures"]) == sorted(ARCHS)
    for name, t in [*book["architectures"].items(), ("run", book["run"])]:
        phases = {p: t[p] for p in timing.PHASES}
        assert all(v >= 0 for v in phases.values()), (name, t)
        assert sum(phases.values()) == pytest.approx(t["wall"], rel=0.02, abs=0.05), (name, t)
        # (Keras Tuner's callbacks take well under a millisecond now that no checkpoint is
        # written: the tuner phase may round to 0.)
        for work in (timing.TRAINING, timing.VALIDATION, timing.EVALUATION, timing.MEASUREMENT,
                     timing.WANDB):
            assert t[work] > 0, (name, work, t)
    run = book["run"]
    assert sum(t["wall"] for t in book["architectures"].values()) < run["wall"]
    for phase in timing.PHASES:
        assert sum(t[phase] for t in book["architectures"].values()) <= run[phase] + 0.01
    # Both invocations of the fixture are in the run's time, as in its wall time.
    assert run["wall"] == pytest.approx(manifest["wall_seconds"], rel=0.05)
    text = (run_dir / rundir.LEADERBOARD).read_text()
    rows = table_rows(text, "## Where the time went")
    assert [row[0].replace("\\_", "_") for row in rows[:-1]] == list(book["architectures"])
    assert all(len(row) == len(TIME_HEADERS) for row in rows)
