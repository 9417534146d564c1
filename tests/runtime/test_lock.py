"""The run directory's lock: one ``archbench run`` at a time, a dead owner's lock taken over."""

import json
import os
import socket
import subprocess
import sys

import pytest

from benchmarks.rundir import RunDirError
from benchmarks.runtime.lock import RunLock


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def test_a_stale_lock_from_a_dead_process_is_taken_over(tmp_path):
    lock_path = tmp_path / ".x.lock"
    lock_path.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with RunLock(lock_path, tmp_path / "x"):
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    assert not lock_path.exists()


def test_a_live_owner_keeps_its_lock_and_is_named(tmp_path):
    lock_path = tmp_path / ".x.lock"
    with RunLock(lock_path, tmp_path / "x"):
        with pytest.raises(RunDirError, match=rf"x is in use by another archbench run "
                                              rf"\(pid {os.getpid()}\); wait for it"):
            RunLock(lock_path, tmp_path / "x").acquire()
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()  # still its owner's


def test_an_owner_on_another_host_is_never_taken_over(tmp_path):
    lock_path = tmp_path / ".x.lock"
    lock_path.write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere"}))
    with pytest.raises(RunDirError, match="on host elsewhere"):
        RunLock(lock_path, tmp_path / "x").acquire()
    assert lock_path.exists()


def test_a_lock_naming_no_owner_is_refused_with_what_to_do(tmp_path):
    lock_path = tmp_path / ".x.lock"
    lock_path.write_text("not json")
    with pytest.raises(RunDirError, match="names no owner; delete it if no run is active"):
        RunLock(lock_path, tmp_path / "x").acquire()
