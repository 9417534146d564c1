"""Private Keras Tuner and TensorFlow names: present in the installed versions, patched
only when asked, and doing what archbench relies on."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.runtime import workarounds


def test_every_private_name_archbench_uses_exists_in_the_installed_versions():
    assert workarounds.missing() == [], (
        "a private name moved: update benchmarks/runtime/workarounds.py for the installed version"
    )


def test_a_moved_private_name_is_reported_with_what_it_was_written_for(monkeypatch):
    gone = workarounds.PrivateName("keras_tuner.src.utils", "no_such_function", "keras-tuner 9",
                                   "test")
    monkeypatch.setattr(workarounds, "PRIVATE_NAMES", [*workarounds.PRIVATE_NAMES, gone])
    assert workarounds.missing() == [
        "keras_tuner.src.utils.no_such_function (written for keras-tuner 9)"]


@pytest.fixture
def keras_tuner_save_json():
    from keras_tuner.src import utils as kt_utils

    original = kt_utils.save_json
    yield kt_utils
    kt_utils.save_json = original


def test_keras_tuner_state_is_written_atomically_once_installed(
    tmp_path, monkeypatch, keras_tuner_save_json
):
    kt_utils = keras_tuner_save_json
    workarounds.install()
    patched = kt_utils.save_json
    workarounds.install()
    assert kt_utils.save_json is patched, "installing twice wraps once"

    path = tmp_path / "oracle.json"
    kt_utils.save_json(str(path), {"ongoing_trials": {}})
    assert json.loads(path.read_text()) == {"ongoing_trials": {}}

    def disk_fails(fd):
        raise OSError("disk failed")

    monkeypatch.setattr(os, "fsync", disk_fails)  # a crash half-way through the write
    with pytest.raises(OSError, match="disk failed"):
        kt_utils.save_json(str(path), {"ongoing_trials": {"tuner0": "3"}})
    assert json.loads(path.read_text()) == {"ongoing_trials": {}}, "the old state stays whole"
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"], "no temporary file left"


@pytest.mark.slow
def test_importing_archbench_patches_nothing():
    code = ("import benchmarks.run.runner, benchmarks.search.tuning, benchmarks.run.workers\n"
            "from keras_tuner.src import utils\n"
            "print(getattr(utils.save_json, '_archbench_atomic', False))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
