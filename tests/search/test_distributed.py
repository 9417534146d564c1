"""Keras Tuner's distributed mode: cluster settings, the chief's server, local workers."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras_tuner as kt
import pytest

from benchmarks import rundir
from benchmarks.budget import make_budget
from benchmarks.cli.main import build_parser
from benchmarks.run.options import RunOptions
from benchmarks.run.workers import fail_handed_trials, worker_argv
from benchmarks.search.distributed import (
    EXIT_RECYCLE,
    ID_VAR,
    IP_VAR,
    PORT_VAR,
    ChiefServer,
    Cluster,
    DistributedError,
    LocalWorkers,
    WorkersLost,
    free_port_range,
)
from benchmarks.search.tuning import Recycle, TrialQuota
from tests.helpers import REPO


@pytest.fixture
def no_cluster_env(monkeypatch):
    for var in (ID_VAR, IP_VAR, PORT_VAR):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_cluster_reads_the_keras_tuner_variables(no_cluster_env):
    no_cluster_env.setenv(ID_VAR, "chief")
    no_cluster_env.setenv(IP_VAR, "10.0.0.5")
    no_cluster_env.setenv(PORT_VAR, "8000")
    cluster = Cluster.from_environment("chief", timeout=5)
    assert (cluster.tuner_id, cluster.ip, cluster.port, cluster.timeout) == ("chief", "10.0.0.5", 8000, 5)
    assert cluster.is_chief


@pytest.mark.parametrize(
    "env,role,message",
    [
        ({}, "worker", "needs the environment variable(s) KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP"),
        ({ID_VAR: "w0", IP_VAR: "x", PORT_VAR: "http"}, "worker", "must be a port number, got 'http'"),
        ({ID_VAR: "w0", IP_VAR: "x", PORT_VAR: "70000"}, "worker", "must be a port number, got 70000"),
        ({ID_VAR: "w0", IP_VAR: "x", PORT_VAR: "8000"}, "chief", "does not fit --role chief"),
        ({ID_VAR: "chief", IP_VAR: "x", PORT_VAR: "8000"}, "worker", "does not fit --role worker"),
    ],
)
def test_bad_cluster_settings_are_named(no_cluster_env, env, role, message):
    for key, value in env.items():
        no_cluster_env.setenv(key, value)
    with pytest.raises(DistributedError) as error:
        Cluster.from_environment(role)
    assert message in str(error.value)


def test_serving_points_keras_tuner_at_one_architecture_and_restores(no_cluster_env):
    cluster = Cluster("worker3", "127.0.0.1", 9000)
    with cluster.serving(2):
        assert (os.environ[ID_VAR], os.environ[IP_VAR], os.environ[PORT_VAR]) == (
            "worker3", "127.0.0.1", "9002")
    assert ID_VAR not in os.environ and PORT_VAR not in os.environ


def test_a_worker_gets_the_chiefs_options_back_from_its_command_line(tmp_path, monkeypatch):
    import dataclasses

    from benchmarks.cli.main import run_options

    # what LocalWorkers gives each worker's environment; the command line checks it
    for var, value in ((ID_VAR, "worker0"), (IP_VAR, "127.0.0.1"), (PORT_VAR, "9000")):
        monkeypatch.setenv(var, value)
    budget = make_budget("smoke", trials=3, lr_max=0.05, augment=True, trial_timeout=60)
    (tmp_path / "data").mkdir()
    options = RunOptions(["mlp", "vgg"], budget, "folder", tmp_path, "n",
                         data_dir=tmp_path / "data", image_size=(20, 24), test_fraction=0.3, overwrite=True, wandb_mode="offline",
                         wandb_project="p", wandb_entity="team", trial_gradients=True,
                         workers=2, threads=3, chief_timeout=90.0, recycle_after=4)
    argv = worker_argv(options)
    assert argv[:3] == [sys.executable, "-m", "benchmarks.cli"]
    [parsed] = run_options(build_parser().parse_args(argv[3:]))
    assert parsed == dataclasses.replace(options, role="worker", workers=0, overwrite=False,
                                         threads=None)
    assert parsed.budget.hash == budget.hash


def fake_oracle(max_trials: int) -> kt.Oracle:
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("val_accuracy", "max"), max_trials=max_trials, seed=1
    )
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-2)
    oracle._set_project_dir("/tmp/unused", "p")
    oracle.update_space(hp)
    return oracle


def test_a_worker_that_cannot_build_fails_every_trial_and_the_chief_finishes(tmp_path):
    oracle = fake_oracle(max_trials=2)
    oracle._set_project_dir(str(tmp_path), "p")
    cluster = Cluster("worker0", "127.0.0.1", free_port_range(1), timeout=60)
    ended, reported = [], []
    server = ChiefServer(cluster)
    worker = threading.Thread(
        target=fail_handed_trials, args=(cluster, 0, "build failed: boom", reported.append)
    )
    worker.start()
    try:
        server.serve(0, oracle, on_trial_end=ended.append)
    finally:
        worker.join(timeout=30)
        server.close()
    assert not worker.is_alive()
    assert sorted(t.trial_id for t in ended) == ["0", "1"]
    assert {t.status for t in ended} == {"FAILED"}
    assert sorted(t.trial_id for t in reported) == ["0", "1"]
    assert {t.message for t in reported} == {"build failed: boom"}


def test_the_chief_times_out_instead_of_waiting_for_workers_forever(tmp_path, monkeypatch):
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.setattr(oracle_client, "TIMEOUT", 20)  # a broken skip fails, never hangs
    oracle = fake_oracle(max_trials=2)
    oracle._set_project_dir(str(tmp_path), "p")
    server = ChiefServer(Cluster("chief", "127.0.0.1", free_port_range(1), timeout=0.5))
    try:
        with pytest.raises(DistributedError, match=r"no worker reported for \d+ s \(timeout 0 s\)"):
            server.serve(0, oracle)
        server.skip(0)  # the failed search's port now answers "stopped"
        assert len(server._servers) == 1, "one server per architecture, not a second one"
        fail_handed_trials(Cluster("worker0", "127.0.0.1", server.cluster.port, timeout=30), 0, "unused")
    finally:
        server.close()


def test_the_chief_answers_a_worker_still_ending_its_trial_after_the_search(tmp_path, monkeypatch):
    """worker1 was told "stopped" while worker0 ran the last trial: the search is over when
    worker0 ends it, but worker0 has yet to ask again. The chief lingers until it has."""
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.setattr(oracle_client, "TIMEOUT", 10)  # a closed port fails in 10 s, not an hour
    oracle = fake_oracle(max_trials=1)
    oracle._set_project_dir(str(tmp_path), "p")
    server = ChiefServer(Cluster("chief", "127.0.0.1", free_port_range(1), timeout=30))
    serving = threading.Thread(target=server.serve, args=(0, oracle))
    serving.start()
    late: list = []
    try:
        with server.cluster.serving(0):
            client = oracle_client.OracleClient(None)
            trial = client.create_trial("worker0")
            assert client.create_trial("worker1").status == "STOPPED"
            client.end_trial(trial)  # the search is over; worker0 has not been told yet
            serving.join(timeout=30)
            assert not serving.is_alive()
            assert server.waiting_for() == {"worker0"}

            def ask_late():
                time.sleep(1.0)  # still writing its trial's files
                try:
                    late.append(client.create_trial("worker0").status)
                except Exception as exc:  # noqa: BLE001 - the failure this test exists for
                    late.append(repr(exc))

            asker = threading.Thread(target=ask_late)
            asker.start()
            server.close(linger=True)
            asker.join(timeout=30)
    finally:
        server.close()
    assert late == ["STOPPED"]
    assert server.waiting_for() == set()


def test_a_lingering_chief_gives_up_on_a_silent_worker(tmp_path, capsys):
    oracle = fake_oracle(max_trials=1)
    oracle._set_project_dir(str(tmp_path), "p")
    server = ChiefServer(Cluster("chief", "127.0.0.1", free_port_range(1), timeout=0.5))
    server.asked.add("worker7")  # asked once, then died
    server.skip(0)
    server.close(linger=True)  # returns once nobody spoke for the timeout
    assert "waiting for worker7 to hear that every search is over" in capsys.readouterr().out
    assert server.waiting_for() == set()  # closed: nothing left to wait for


def test_worker_trial_rows_are_merged_over_the_chiefs(tmp_path):
    columns = rundir.TRIAL_COLUMNS
    rundir.write_rows(tmp_path / rundir.TRIALS, columns, [
        {"architecture": "mlp", "trial_id": "0", "status": "COMPLETED", "score": 0.5},
        {"architecture": "mlp", "trial_id": "1", "status": "FAILED"},
    ])
    rundir.write_rows(tmp_path / rundir.WORKERS_DIR / "worker1" / rundir.TRIALS, columns, [
        {"architecture": "mlp", "trial_id": "0", "status": "COMPLETED", "score": 0.5,
         "epochs_run": 2, "worker": "worker1"},
    ])
    assert rundir.merge_worker_trials(tmp_path) == 1
    rows = {r["trial_id"]: r for r in rundir.read_rows(tmp_path / rundir.TRIALS)}
    assert sorted(rows) == ["0", "1"]
    assert rows["0"]["epochs_run"] == "2" and rows["0"]["worker"] == "worker1"
    assert rows["1"]["status"] == "FAILED"


def exiting_workers(tmp_path, code: int, max_restarts: int = 3) -> LocalWorkers:
    argv = [sys.executable, "-c", f"import sys; sys.exit({code})"]
    return LocalWorkers(argv, 1, Cluster("chief", "127.0.0.1", 9000), tmp_path,
                        max_restarts=max_restarts)


def wait_all(workers: LocalWorkers) -> None:
    for process in workers.processes.values():
        process.wait(timeout=30)


def test_a_worker_at_its_trial_quota_is_replaced_without_counting_as_a_death(tmp_path):
    workers = exiting_workers(tmp_path, EXIT_RECYCLE, max_restarts=0)
    workers.start()
    for _ in range(3):
        first = workers.processes["worker0"].pid
        wait_all(workers)
        workers.poll()  # no WorkersLost even with max_restarts=0
        assert workers.processes["worker0"].pid != first
    assert workers.restarts == {"worker0": 0}
    workers.kill()


def test_a_worker_that_keeps_dying_stops_the_search(tmp_path):
    workers = exiting_workers(tmp_path, 1, max_restarts=2)
    assert workers.env("worker0")[ID_VAR] == "worker0"
    assert workers.env("worker0")["CUDA_VISIBLE_DEVICES"] == "-1"  # no GPU: CPU only
    workers.start()
    for restarts in (1, 2):
        wait_all(workers)
        workers.poll()
        assert workers.restarts == {"worker0": restarts}
    wait_all(workers)
    with pytest.raises(WorkersLost, match=r"worker0 died 3 times \(last exit code 1\)"):
        workers.poll()


def test_a_trial_quota_asks_for_a_fresh_process_after_its_last_trial():
    quota = TrialQuota(limit=2)
    quota.count()
    with pytest.raises(Recycle, match="ran 2 trial"):
        quota.count()
    unlimited = TrialQuota()
    for _ in range(100):
        unlimited.count()


# --- real processes on loopback -------------------------------------------------------

ARCH = "mlp"
TRIALS = 3


def smoke_argv(fashion_dir: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.cli", "run", "--budget", "smoke", "--trials",
            str(TRIALS), "-a", ARCH, "-o", str(output), "--name", "dist",
            "--data-dir", str(fashion_dir), "--wandb-mode", "offline", *extra]


def cluster_env(tuner_id: str, port: int) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "TF_CPP_MIN_LOG_LEVEL": "2",
            ID_VAR: tuner_id, IP_VAR: "127.0.0.1", PORT_VAR: str(port)}


def check_complete(run_dir: Path, workers: set[str]) -> list[dict]:
    trials = rundir.read_rows(run_dir / rundir.TRIALS)
    assert sorted(t["trial_id"] for t in trials) == [str(i) for i in range(TRIALS)]
    assert all(t["status"] == "COMPLETED" and t["epochs_run"] == "1" for t in trials)
    assert {t["worker"] for t in trials} <= workers
    per_worker = [
        (t["trial_id"], path.parent.name)
        for path in (run_dir / rundir.WORKERS_DIR).glob(f"*/{rundir.TRIALS}")
        for t in rundir.read_rows(path)
    ]
    assert sorted(i for i, _ in per_worker) == [str(i) for i in range(TRIALS)], per_worker
    (result,) = rundir.read_rows(run_dir / rundir.RESULTS)
    assert result["status"] == "ok" and result["trials_completed"] == str(TRIALS)
    assert ARCH in (run_dir / rundir.LEADERBOARD).read_text()
    return trials


@pytest.mark.slow
def test_a_chief_and_two_workers_on_loopback_finish_a_smoke_budget(tmp_path, fashion_dir):
    port = free_port_range(1)
    argv = smoke_argv(fashion_dir, tmp_path, "--chief-timeout", "120")
    logs = {}
    processes = {}
    for tuner_id in ("chief", "worker0", "worker1"):
        role = "chief" if tuner_id == "chief" else "worker"
        logs[tuner_id] = (tmp_path / f"{tuner_id}.log").open("w")
        processes[tuner_id] = subprocess.Popen(
            [*argv, "--role", role, "--threads", "1"], cwd=REPO, env=cluster_env(tuner_id, port),
            stdout=logs[tuner_id], stderr=subprocess.STDOUT,
        )
    try:
        codes = {t: p.wait(timeout=300) for t, p in processes.items()}  # the chief ends by itself
    finally:
        for p in processes.values():
            p.kill()
    text = {t: (tmp_path / f"{t}.log").read_text() for t in processes}
    assert codes == {"chief": 0, "worker0": 0, "worker1": 0}, text
    trials = check_complete(tmp_path / "dist", {"worker0", "worker1"})
    assert "every search is over" in text["worker0"] and "every search is over" in text["worker1"]
    assert len({t["worker"] for t in trials}) >= 1


def ongoing(oracle_file: Path) -> dict[str, str]:
    try:
        return json.loads(oracle_file.read_text()).get("ongoing_trials", {})
    except (OSError, json.JSONDecodeError):  # not written yet, or being written
        return {}


def worker_pid(parent: int, tuner_id: str) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and f"{ID_VAR}={tuner_id}".encode() in environ:
            return int(proc.name)
    return None


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_restarted_and_the_search_completes(tmp_path, fashion_dir):
    chief = subprocess.Popen(
        smoke_argv(fashion_dir, tmp_path, "--workers", "2", "--chief-timeout", "120"),
        cwd=REPO, env={**cluster_env("", 0)} | {ID_VAR: "", IP_VAR: "", PORT_VAR: ""},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    oracle_file = tmp_path / "dist" / rundir.TUNER_DIR / ARCH / "oracle.json"
    killed = None
    deadline = time.monotonic() + 240
    try:
        while killed is None and time.monotonic() < deadline and chief.poll() is None:
            trial = ongoing(oracle_file).get("worker0")
            pid = worker_pid(chief.pid, "worker0") if trial else None
            if pid:
                os.kill(pid, signal.SIGKILL)
                killed = trial
            time.sleep(0.05)
        out, err = chief.communicate(timeout=300)
    finally:
        chief.kill()
    assert killed is not None, "worker0 never ran a trial"
    assert chief.returncode == 0, err[-3000:]
    assert "worker0 died (exit code -9); restarting it (1/3)" in err
    trials = check_complete(tmp_path / "dist", {"worker0", "worker1"})
    # Keras Tuner hands the restarted worker its unfinished trial again.
    assert next(t for t in trials if t["trial_id"] == killed)["worker"] == "worker0"
    log = (tmp_path / "dist" / rundir.WORKERS_DIR / "worker0.log").read_text()
    assert log.count("archbench: worker worker0 of") == 2
