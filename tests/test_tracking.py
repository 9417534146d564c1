"""W&B modes: how `auto` resolves, and the fall-back to offline when online cannot start."""

import pytest

from benchmarks.tracking import Tracker, TrackingError, resolve_mode

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
    run_id = run.id
    tracker.finish(run)
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
