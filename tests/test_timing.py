"""The time breakdown: every instant is charged to exactly one phase."""

import keras
import numpy as np
import pytest

from benchmarks import timing
from benchmarks.training.callbacks import TimedCallback, TrialTimeLimit


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def phases(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.Phases, "clock", staticmethod(clock))
    return timing.Phases(), clock


def test_the_innermost_phase_is_charged_and_the_phases_sum_to_the_wall(phases):
    clock_phases, clock = phases
    clock.now = 1.0  # 1 s outside any phase: other
    with clock_phases.phase(timing.TRAINING):
        clock.now = 4.0  # 3 s training
        with clock_phases.phase(timing.WANDB):
            clock.now = 4.5  # 0.5 s W&B inside training, not training
        clock.now = 6.0  # 1.5 s more training
    clock.now = 6.25
    summary = clock_phases.summary()
    assert summary["wall"] == 6.25
    assert summary[timing.TRAINING] == 4.5 and summary[timing.WANDB] == 0.5
    assert summary[timing.OTHER] == 1.25
    assert sum(summary[p] for p in timing.PHASES) == summary["wall"]
    assert timing.overhead_share(summary) == pytest.approx(1.75 / 6.25)


def test_timed_charges_only_while_a_clock_records(phases):
    clock_phases, clock = phases

    @timing.timed(timing.MEASUREMENT)
    def work():
        clock.now += 2.0
        return "done"

    assert work() == "done"  # no clock recording: nothing charged anywhere
    with timing.recording(clock_phases):
        assert work() == "done"
    assert timing.current() is None
    assert clock_phases.summary()[timing.MEASUREMENT] == 2.0


class EpochOnly(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_wrapped_callbacks_keep_default_batch_hooks_and_are_charged(phases):
    clock_phases, _ = phases
    inner = EpochOnly()
    wrapped = TimedCallback(inner, clock_phases, timing.WANDB)
    # Keras skips per-batch work for callbacks whose batch hooks are its defaults.
    assert getattr(wrapped.on_train_batch_end, "_is_default", False)
    assert not getattr(wrapped.on_epoch_end, "_is_default", False)
    # Batch hooks are never passed on: they would make Keras wait for every batch.
    limit = TimedCallback(TrialTimeLimit(60), clock_phases, timing.TUNER)
    assert getattr(limit.on_train_batch_end, "_is_default", False)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[wrapped])
    assert inner.epochs == 2 and inner.model is model
    assert timing.WANDB in clock_phases.totals


def test_time_left_is_the_mean_so_far_for_each_architecture_left():
    from benchmarks.timing import duration, time_left

    assert time_left([60.0, 120.0], remaining=3) == 270.0
    assert time_left([], remaining=3) == 0.0
    assert [duration(s) for s in (44.6, 725, 3780)] == ["45 s", "12 min 5 s", "1 h 3 min"]
