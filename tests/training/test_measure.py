"""Measurements as defined: latency per synchronised call, one training window, the final
training's own steps, spreads, and the verdict's "within noise"."""

import math
import time

import numpy as np
import pytest

from benchmarks.training import measure
from reports.stats import pareto_optimal, within_noise
from tests.helpers import REPO

SLEEP = 0.004


class Deferred:
    """A result whose work happens when it is read, as on a device that queues calls."""

    def numpy(self):
        time.sleep(SLEEP)
        return np.zeros(1)


def test_latency_is_the_median_of_calls_each_waited_for():
    # backends.forward hands back the result on the host: the call waits for the work.
    seconds = measure._call_seconds(lambda batch: Deferred().numpy(), None, measure.LATENCY_CALLS)
    assert len(seconds) == measure.LATENCY_CALLS >= 50
    # Timing 30 calls with one wait after the last would report SLEEP / 30 per call.
    assert np.median(seconds) >= SLEEP
    assert np.median(seconds) < SLEEP * 5


def test_inference_speed_is_the_median_and_spread_of_timed_calls_after_the_warm_up(monkeypatch):
    clock, calls = FakeClock(), []
    single = [0.001, 0.002, 0.003, 0.004]  # seconds of successive batch-1 calls, in turn

    def forward(batch):  # the model's pass on the fake clock: batch 1 or 256
        calls.append(len(batch))
        clock.now += single[sum(c == 1 for c in calls) % 4] if len(batch) == 1 else 0.008

    monkeypatch.setattr(measure.backends, "forward", lambda model, jit_compile: forward)
    monkeypatch.setattr(measure.time, "perf_counter", clock)
    latency, spread, throughput = measure.inference_speed(None, np.zeros((4, 8, 8, 1), "float32"))
    assert calls.count(1) == measure.WARMUP_CALLS + measure.LATENCY_CALLS
    assert calls.count(256) == measure.WARMUP_CALLS + measure.THROUGHPUT_CALLS
    timed = [single[i % 4] * 1000 for i in range(measure.WARMUP_CALLS + 1,
                                                measure.WARMUP_CALLS + 1 + measure.LATENCY_CALLS)]
    assert latency == pytest.approx(np.median(timed))
    assert spread == pytest.approx(np.percentile(timed, 75) - np.percentile(timed, 25))
    assert spread > 0 and throughput == pytest.approx(256 / 0.008)


def test_training_throughput_is_one_window_of_whole_batches_after_the_warm_up(monkeypatch):
    import keras

    monkeypatch.setattr(measure, "TRAIN_WINDOW_SECONDS", 0.0)  # the minimum batches decide
    clock = FakeClock()
    step_seconds = [0.0]

    class Ticking(keras.callbacks.Callback):  # each step takes step_seconds on the clock
        def on_train_batch_end(self, batch, logs=None):  # before TrainingSpeed's end
            clock.now += step_seconds[0]

    monkeypatch.setattr(measure.TrainingSpeed, "clock", clock)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile("adam", "sparse_categorical_crossentropy")
    fits = []
    real_fit = model.fit

    def fit(x, *args, callbacks=(), **kwargs):
        fits.append(len(x))
        step_seconds[0] = 0.5 if len(fits) == 1 else 0.02  # warm-up steps, then the window's
        return real_fit(x, *args, callbacks=[Ticking(), *callbacks], **kwargs)

    monkeypatch.setattr(model, "fit", fit)
    x, y = np.zeros((1000, 8, 8, 1), "float32"), np.zeros(1000, "int64")
    speed, spread = measure.training_throughput(model, x, y, batch_size=32)
    assert fits == [measure.TRAIN_WARMUP_BATCHES * 32, measure.TRAIN_WINDOW_MIN_BATCHES * 32]
    assert speed == pytest.approx(32 / 0.02) and spread == pytest.approx(0.0)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_training_speed_times_steps_after_the_first_and_leaves_validation_out(monkeypatch):
    speed = measure.TrainingSpeed(batch_size=64)
    clock = FakeClock()
    monkeypatch.setattr(speed, "clock", clock)

    def step(seconds):
        speed.on_train_batch_begin(0)
        clock.now += seconds
        speed.on_train_batch_end(0)

    speed.on_train_begin()
    step(30.0)  # the first step: tracing and compiling
    for seconds in (0.5, 0.5, 1.0):
        step(seconds)
    clock.now += 100.0  # a validation pass and the epoch's end
    step(0.5)
    speeds = speed.speeds(epoch_images=1280)
    assert speed.steps == [0.5, 0.5, 1.0, 0.5]
    assert speeds["train_images_per_second"] == pytest.approx(4 * 64 / 2.5)
    assert speeds["epoch_seconds"] == pytest.approx(1280 / (4 * 64 / 2.5))
    assert speeds["train_images_per_second_iqr"] == pytest.approx(128 - 112)  # of 64, 128 x 3
    assert math.isnan(measure.TrainingSpeed(64).speeds(1280)["train_images_per_second"])


def test_training_speed_counts_every_step_of_a_real_training_but_the_first():
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = np.zeros((320, 8, 8, 1), "float32"), np.zeros(320, "int64")
    speed = measure.TrainingSpeed(batch_size=32)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=(x[:64], y[:64]),
              callbacks=[speed])
    assert len(speed.steps) == 2 * 10 - 1
    assert speed.speeds(320)["train_images_per_second"] > 0


def test_within_noise_names_every_value_whose_range_overlaps_the_best():
    latency, spread = [1.00, 1.10, 1.50, math.nan], [0.20, 0.10, 0.10, 0.0]
    assert within_noise(latency, spread, smallest=True) == [True, True, False, False]
    assert within_noise([100.0, 95.0, 50.0], [10.0, 2.0, 1.0], smallest=False) == [True, True, False]
    assert within_noise([3.0, 3.0, 4.0], [0.0] * 3, smallest=True) == [True, True, False]


def test_pareto_counts_latencies_within_noise_as_equal_and_never_a_missing_one():
    accuracy, params = [0.90, 0.89], [1000, 1000]
    assert pareto_optimal(accuracy, [1.00, 0.95], params) == [True, True]  # exact: faster
    assert pareto_optimal(accuracy, [1.00, 0.95], params, [0.2, 0.2]) == [True, False]
    assert pareto_optimal([0.9, 0.8], [math.nan, 1.0], [1, 2]) == [False, True]


@pytest.mark.parametrize("count,expected", [(1, 0.0), (4, 1.5)])
def test_iqr(count, expected):
    assert measure._iqr(np.arange(count, dtype=float)) == pytest.approx(expected)


PEAK_PROBE = """
import json, numpy as np
from benchmarks.training import measure
with measure.PeakMemory() as memory:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del block
with measure.PeakMemory() as quiet:
    pass
print(json.dumps([memory.megabytes, quiet.megabytes]))
"""


@pytest.mark.slow  # a process of its own (Keras' import): the resident peak of a quiet
def test_peak_memory_sees_what_the_block_allocated_and_freed():  # process, no other test's threads
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PEAK_PROBE], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    block, quiet = json.loads(done.stdout.strip().splitlines()[-1])
    if math.isnan(block):
        pytest.skip("no /proc/self/status here")
    assert block >= 60
    assert quiet < block, "the peak is reset at each start"


@pytest.mark.slow  # draws two leaderboards' plots: 2.3 s
def test_accuracy_plots_against_compute_and_memory_when_recorded(tmp_path):
    from reports.leaderboard import load_run, write_leaderboard
    from tests.helpers.runs import ROWS, make_run

    rows = [{**r, "macs_per_image": 1000 * (i + 1), "peak_train_memory_mb": 10.0 * (i + 1)}
            if r["status"] == "ok" else r for i, r in enumerate(ROWS)]
    run = make_run(tmp_path, rows)
    text = write_leaderboard(run).read_text()
    for name in ("accuracy_vs_macs.png", "accuracy_vs_memory.png"):
        assert f"]({name})" in text and (run / name).stat().st_size > 10_000
    assert "train memory MiB" in text and load_run(run).results["peak_train_memory_mb"].max() == 30
    bare = make_run(tmp_path / "bare", ROWS)
    assert "accuracy_vs_memory.png" not in write_leaderboard(bare).read_text()


def test_the_progress_line_of_an_architecture_names_what_is_known_before_timing():
    from benchmarks.run.architecture import summary_line

    row = {"status": "ok", "test_accuracy": 0.85, "val_accuracy": 0.8, "total_params": 78426,
           "macs_per_image": 12_345_678, "inference_latency_ms": math.nan}
    assert summary_line(row) == ("test accuracy 0.8500, val 0.8000, 78,426 params, 12.3 M "
                                 "multiply-accumulates per image")
