"""The measurement phase: saved models timed after the last training, interleaved, and
measured again on resume when a run was stopped during it."""

import math

import keras
import numpy as np
import pytest

from benchmarks import rundir
from benchmarks.run import speeds
from tests.helpers.runs import result


def save_tiny(run_dir, name):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile("adam", "sparse_categorical_crossentropy")
    path = rundir.model_path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def unmeasured_row(name):
    row = result(name, 0.8, 100, 1.0, 10.0)
    for column in ("inference_latency_ms", "inference_images_per_second",
                   "train_images_per_second", "epoch_seconds"):
        row[column] = math.nan  # written as an empty cell: not measured yet
    return row


@pytest.fixture
def run_dir(tmp_path):
    for name in ("a", "b", "c"):
        save_tiny(tmp_path, name)
        rundir.write_result(tmp_path, unmeasured_row(name))
    rundir.write_result(tmp_path, result("done", 0.7, 100, 2.0, 5.0))  # measured before
    rundir.write_result(tmp_path, unmeasured_row("no_model"))  # nothing saved to time
    return tmp_path


def test_rounds_are_interleaved_across_architectures(run_dir, monkeypatch):
    order = []

    class Recording:
        def __init__(self, model, *args):
            self.name = model.name_for_test

        def round(self, share):
            order.append(self.name)

        def speeds(self):
            return {"inference_latency_ms": 1.0}

    names = iter("abc")

    def load(path):
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.name_for_test = next(names)
        return model

    monkeypatch.setattr(speeds, "Meter", Recording)
    monkeypatch.setattr(keras.saving, "load_model", load)
    measured = speeds.measure_saved(run_dir, None, rounds=3, notice=lambda _: None)
    assert measured == ["a", "b", "c"]
    assert order == ["a", "b", "c"] * 3


@pytest.mark.slow  # times three models: 2.4 s
def test_the_phase_fills_only_what_is_missing_and_a_rerun_has_nothing_left(run_dir):
    x = np.zeros((256, 8, 8, 1), "float32")
    lines = []
    measured = speeds.measure_saved(run_dir, x, rounds=2, notice=lines.append)
    assert measured == ["a", "b", "c"] and "3 saved model(s) in 2 interleaved rounds" in lines[0]
    rows = {r["architecture"]: r for r in rundir.read_rows(run_dir / rundir.RESULTS)}
    for name in "abc":
        assert float(rows[name]["inference_latency_ms"]) > 0
        assert rows[name]["inference_latency_iqr_ms"] != ""
        # the training's own speed (measure.TrainingSpeed): never timed again here
        assert rows[name]["train_images_per_second"] == ""
    assert rows["done"]["inference_latency_ms"] == "2.0", "measured rows are left alone"
    assert rows["no_model"]["inference_latency_ms"] == ""
    assert speeds.measure_saved(run_dir, x, notice=lines.append) == []
    assert set(rundir.measurements(run_dir)["a"]) >= {"inference_latency_ms", "total_params"}


def test_a_run_stopped_before_its_speeds_still_reports(tmp_path):
    from reports.leaderboard import write_leaderboard
    from tests.helpers.runs import make_run

    run = make_run(tmp_path, [unmeasured_row("a"), unmeasured_row("b")])
    text = write_leaderboard(run).read_text()
    assert "- **Fastest at inference**: not measured" in text
    assert "accuracy_vs_latency.png" not in text and "accuracy_vs_parameters.png" in text
