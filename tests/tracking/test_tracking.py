"""W&B modes: how `auto` resolves, and the fall-back to offline when online cannot start."""

import pytest

from benchmarks.tracking.runs import Tracker, TrackingError, resolve_mode

FAKE_KEY = "k" * 40


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from `wandb login`
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def test_auto_is_offline_without_credentials(no_credentials):
    assert resolve_mode("auto") == "offline"


def test_auto_is_online_with_an_api_key(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert resolve_mode("auto") == "online"


def test_auto_follows_wandb_mode(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"


def test_explicit_modes_and_unknown_mode(no_credentials):
    assert [resolve_mode(m) for m in ("online", "offline", "disabled")] == ["online", "offline", "disabled"]
    with pytest.raises(TrackingError, match="unknown --wandb-mode 'loud'"):
        resolve_mode("loud")


@pytest.mark.slow  # starts W&B's service and waits for online to fail
def test_online_that_cannot_start_falls_back_to_offline_without_leaking_the_key(
    no_credentials, monkeypatch, tmp_path, capsys
):
    # A closed port on this machine: the connection is refused at once, nothing leaves it.
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
    tracker = Tracker("online", "proj", "grp", tmp_path / "w")
    run = tracker.start("arch-t0", "trial", {"architecture": "arch"}, ["arch"])
    planned = run.id  # known at once; W&B holds it after the failed online start
    tracker.finish(run)
    run_id = run.id
    assert run_id != planned, "the offline run gets an id of its own"
    err = capsys.readouterr().err
    assert tracker.mode == "offline" and tracker.fell_back
    assert "W&B online run could not start" in err and "logging offline" in err
    warning = [line for line in err.splitlines() if "could not start" in line]
    assert len(warning) == 1
    runs = list((tmp_path / "w" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 1
    assert tracker.sync_command() == f"wandb sync {tmp_path / 'w' / 'wandb'}/offline-run-*"
    for path in (tmp_path / "w").rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), f"API key stored in {path}"
    assert FAKE_KEY not in err


def test_a_run_starts_in_the_background_with_its_id_known_at_once(no_credentials, monkeypatch, tmp_path):
    import threading

    import wandb

    release, calls = threading.Event(), []

    class Started:
        def __init__(self, run_id):
            self.id = run_id

        def finish(self, exit_code=0):
            calls.append(("finish", exit_code))

    def slow_init(**kwargs):
        calls.append(("init", kwargs["name"], kwargs["reinit"]))
        assert release.wait(timeout=30), "start() waited for W&B"
        return Started(kwargs["id"])

    monkeypatch.setattr(wandb, "init", slow_init)
    tracker = Tracker("offline", "proj", "grp", tmp_path / "w")
    run = tracker.start("arch-t0", "trial", {}, [])  # returns while W&B is still starting
    assert len(run.id) == 8 and run.id.isalnum() and run.id.lower() == run.id
    assert not run._future.done()
    release.set()
    assert run.get().id == run.id
    tracker.finish(run)
    assert calls == [("init", "arch-t0", "create_new"), ("finish", 0)]
    assert Tracker("disabled", "p", "g", tmp_path).start("x", "trial", {}, []) is None


def test_two_live_runs_each_get_their_own_epochs_and_learning_rates(no_credentials, tmp_path):
    import keras
    import numpy as np

    from benchmarks.tracking.loggers import EpochLogger
    from tests.conftest import wandb_inspect

    tracker = Tracker("offline", "proj", "grp", tmp_path / "w")
    trained, bystander = (tracker.start(name, "trial", {}, []) for name in ("a-t0", "a-t1"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=8)
    model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).random((16, 3)), np.arange(16) % 2
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[EpochLogger(trained)])
    tracker.finish(trained)
    tracker.finish(bystander)
    runs = {path.name.rsplit("-", 1)[-1]: path
            for path in (tmp_path / "w" / "wandb").glob("offline-run-*")}
    epochs = [r["history"]["item"] for r in wandb_inspect(runs[trained.id], summary=False)
              if r["type"] == "history"]
    assert [e["epoch/epoch"] for e in epochs] == [0, 1]
    # the rate the optimizer ended each epoch at: after 4 and after 8 of 8 decay steps
    assert [e["epoch/learning_rate"] for e in epochs] == pytest.approx(
        [float(schedule(4)), float(schedule(8))], abs=1e-6)
    assert all("epoch/loss" in e for e in epochs)
    assert not [r for r in wandb_inspect(runs[bystander.id], summary=False) if r["type"] == "history"]
