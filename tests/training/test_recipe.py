"""The shared recipe: AdamW, the warm-up and cosine schedule, label smoothing, augmentation
by dataset, and the best validation epoch's weights kept."""

import io
import math

import keras
import keras_tuner as kt
import numpy as np
import pytest

from benchmarks.budget import make_budget
from benchmarks.data.dataset import DataRequest
from benchmarks.data.sources import load_dataset
from benchmarks.training.recipe import (
    LEARNING_RATE,
    WEIGHT_DECAY,
    SmoothedSparseCrossentropy,
    SuiteHyperModel,
    WarmupCosine,
)
from models.registry import get_architecture

SHAPE = (8, 8, 1)


def _hypermodel(flips=False, **budget):
    return SuiteHyperModel(get_architecture("mlp"), SHAPE, 2, make_budget("smoke", **budget),
                           flips=flips)


def test_the_schedule_warms_up_linearly_then_follows_a_cosine_to_zero():
    schedule = WarmupCosine(0.01, warmup_steps=4, total_steps=20)
    rate = [float(schedule(step)) for step in range(22)]
    assert rate[0] == pytest.approx(0.01 / 4), "step 0 already trains"
    assert rate[3] == pytest.approx(0.01), "the peak at the warm-up's last step"
    assert rate[4] == pytest.approx(0.01), "the cosine starts at the peak"
    assert rate[12] == pytest.approx(0.005), "half-way through the cosine: half the peak"
    assert rate[19] == pytest.approx(0.005 * (1 + math.cos(math.pi * 15 / 16)), rel=1e-5)
    assert rate[20] == rate[21] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(rate[3:-1], rate[4:], strict=True)), "never rises again"
    assert WarmupCosine.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_a_training_follows_the_schedule_over_its_own_steps():
    keras.utils.set_random_seed(0)
    hypermodel = _hypermodel(batch_size=4, warmup=0.25, lr_min=0.02, lr_max=0.02)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    x, y = np.random.rand(16, *SHAPE).astype("float32"), np.arange(16) % 2
    hypermodel.fit(hp, model, x, y, validation_data=(x, y), epochs=2, callbacks=[Record()])
    # 16 images at batch 4 for 2 epochs: 8 steps, the first 2 warming up
    assert hp.get(LEARNING_RATE) == pytest.approx(0.02)
    assert len(seen) == 8
    assert seen[0] == pytest.approx(0.01) and seen[1] == pytest.approx(0.02)
    assert seen[7] == pytest.approx(0.01 * (1 + math.cos(math.pi * 5 / 6)), rel=1e-5)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.0)


def test_adamw_with_a_searched_decay_or_adam_without_one():
    hp = kt.HyperParameters()
    model = _hypermodel(weight_decay_min=1e-4, weight_decay_max=1e-2).build(hp)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == pytest.approx(1e-3) == hp.get(WEIGHT_DECAY)
    plain = kt.HyperParameters()
    model = _hypermodel(weight_decay_max=0.0).build(plain)
    assert isinstance(model.optimizer, keras.optimizers.Adam)  # AdamW is an Adam too
    assert not isinstance(model.optimizer, keras.optimizers.AdamW)
    assert WEIGHT_DECAY not in plain.values


def test_label_smoothing_spreads_that_share_over_every_class():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype="float32")
    labels = np.array([0, 2])
    loss = float(SmoothedSparseCrossentropy(0.3)(labels, probabilities))
    targets = np.full((2, 3), 0.1) + 0.7 * np.eye(3)[labels]
    assert loss == pytest.approx(np.mean(-(targets * np.log(probabilities)).sum(axis=1)), rel=1e-5)
    model = _hypermodel(label_smoothing=0.3).build(kt.HyperParameters())
    assert isinstance(model.loss, SmoothedSparseCrossentropy) and model.loss.smoothing == 0.3


@pytest.mark.parametrize("flips", [False, True])
def test_augmentation_flips_only_where_declared_and_never_at_inference(flips):
    model = _hypermodel(flips=flips, augment=True).build(kt.HyperParameters())
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "RandomTranslation" in kinds
    assert ("RandomFlip" in kinds) is flips
    inner = model.layers[-1]
    x = np.random.default_rng(0).random((5, *SHAPE), dtype="float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), inner.predict(x, verbose=0), rtol=1e-6)
    shifted = keras.ops.convert_to_numpy(model.layers[1](x, training=True))
    assert not np.allclose(shifted, x), "training sees moved images"


def test_digits_are_never_flipped_clothes_are_and_a_folder_when_declared(tmp_path, fashion):
    assert not load_dataset(DataRequest("digits")).mirror_invariant
    assert fashion.mirror_invariant
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.new("L", (6, 6), 40 * i).save(tmp_path / c / f"{i}.png")
    assert not load_dataset(DataRequest("folder", tmp_path, test_fraction=0.34)).mirror_invariant
    declared = DataRequest("folder", tmp_path, test_fraction=0.34, mirror_invariant=True)
    assert load_dataset(declared).mirror_invariant


def test_a_training_ends_with_its_best_validation_epochs_weights():
    hypermodel = _hypermodel(schedule="constant", lr_min=1e-9, lr_max=1e-9, epochs=3)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    dense = model.layers[-1]
    x, y = np.random.rand(8, *SHAPE).astype("float32"), np.zeros(8, int)
    kept = {}

    class Steer(keras.callbacks.Callback):  # epoch 2 predicts class 0 (right), 1 and 3 class 1
        def on_epoch_begin(self, epoch, logs=None):
            kernel, bias = dense.get_weights()
            dense.set_weights([kernel * 0, np.array([5.0, -5.0] if epoch == 1 else [-5.0, 5.0])])

        def on_epoch_end(self, epoch, logs=None):
            kept[epoch] = dense.get_weights()[1].copy()

    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), callbacks=[Steer()])
    assert history.history["val_accuracy"] == [0.0, 1.0, 0.0]
    np.testing.assert_allclose(dense.get_weights()[1], kept[1])
    assert model.predict(x, verbose=0).argmax(axis=1).tolist() == [0] * 8


def test_a_time_budget_stops_after_its_seconds_and_schedules_over_them(monkeypatch):
    from benchmarks.training.recipe import TrainingClock

    now = [0.0]
    monkeypatch.setattr(TrainingClock, "clock", staticmethod(lambda: now[0]))
    hypermodel = _hypermodel(budget_by="time", trial_seconds=6, final_seconds=60, batch_size=4,
                             warmup=0.5, lr_min=0.02, lr_max=0.02)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    rates = []

    class Tick(keras.callbacks.Callback):  # each step takes 1 s; each validation 100 s
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

        def on_train_batch_end(self, batch, logs=None):
            now[0] += 1.0

        def on_test_end(self, logs=None):
            now[0] += 100.0

    x, y = np.random.rand(16, *SHAPE).astype("float32"), np.arange(16) % 2
    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), callbacks=[Tick()])
    # 4 steps per epoch; the first step (compilation) is not counted, nor is validation:
    # the 7th step ends at 6 s of training
    assert history.steps_run == 7 and len(history.history["val_accuracy"]) == 2
    # read before each step, at 0, 0, 1, ... 5 s of 6: warm-up over the first half, then
    # cosine
    expected = [0.0, 0.0, 0.02 / 3, 0.04 / 3, 0.02, 0.01 * (1 + math.cos(math.pi / 3)),
                0.01 * (1 + math.cos(2 * math.pi / 3))]
    # Tick's hook runs before the clock's: it reads the rate the step before set, so the
    # clock's own rate for step k is read at step k + 1
    assert rates[1:] == pytest.approx(expected[:6], abs=1e-7)
    now[0] = 0.0
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), final=True,
                             callbacks=[Tick()])
    assert history.steps_run == 61, "a final training gets final_seconds after its first step"


def test_a_time_budget_does_not_count_the_first_step_which_compiles(monkeypatch):
    from benchmarks.training.recipe import TrainingClock

    now = [0.0]
    monkeypatch.setattr(TrainingClock, "clock", staticmethod(lambda: now[0]))
    hypermodel = _hypermodel(budget_by="time", trial_seconds=5, final_seconds=5, batch_size=4)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)

    class Compile(keras.callbacks.Callback):  # the first step takes 100 s, the others 1 s
        def on_train_batch_end(self, batch, logs=None):
            now[0] += 100.0 if now[0] == 0 else 1.0

    x, y = np.random.rand(16, *SHAPE).astype("float32"), np.arange(16) % 2
    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), callbacks=[Compile()])
    assert history.steps_run == 6, "1 step compiling, then 5 steps of 1 s"


@pytest.mark.slow  # a search and a final training
def test_a_time_budget_trial_completes_with_its_steps_recorded(tmp_path, monkeypatch):
    import json

    from benchmarks.training.recipe import TrainingClock
    from tests.helpers.training import bench, tiny_splits

    now = [0.0]  # every training step takes a quarter of a second; validation none
    step_end = TrainingClock.on_train_batch_end

    def quarter_second_step(self, batch, logs=None):
        now[0] += 0.25
        step_end(self, batch, logs)

    monkeypatch.setattr(TrainingClock, "clock", staticmethod(lambda: now[0]))
    monkeypatch.setattr(TrainingClock, "on_train_batch_end", quarter_second_step)
    budget = make_budget("smoke", trials=2, batch_size=32, train_size=64, val_size=32,
                         final_train_size=64, budget_by="time", trial_seconds=1, final_seconds=2)
    row, trials = bench("mlp", tmp_path, tiny_splits(), budget=budget)
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"]
    for trial in trials:
        # the first step (compilation) is not counted: 1 s is 4 more steps, 5 in all; at 2
        # steps per epoch the 5th is the first of a 3rd epoch, which still validates
        assert (int(trial["steps_run"]), int(trial["epochs_run"])) == (5, 3)
        history = json.loads(trial["val_accuracy_history"])
        assert len(history) == 3 and all(0.0 <= v <= 1.0 for v in history)
        assert float(trial["score"]) == pytest.approx(max(history), abs=1e-6)
    # the final training: 1 step, then 2 s of 8 steps; its 9th step begins a 5th epoch
    assert row["status"] == "ok"
    assert (row["final_steps_run"], row["final_epochs_run"]) == ("9", "5")


def test_a_time_budget_needs_its_seconds_and_no_hyperband():
    from benchmarks.budget import BudgetError

    with pytest.raises(BudgetError, match="budget_by time needs trial_seconds and final_seconds"):
        make_budget("smoke", budget_by="time", trial_seconds=30)
    with pytest.raises(BudgetError, match="cannot go with the hyperband tuner"):
        make_budget("quick", budget_by="time", trial_seconds=30, final_seconds=60,
                    tuner="hyperband")
    with pytest.raises(BudgetError, match="unknown budget_by 'steps'"):
        make_budget("quick", budget_by="steps")


def test_multiply_accumulates_count_convolutions_and_dense_layers_of_nested_models():
    from benchmarks.training.measure import multiply_accumulates

    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 64 * 9 * 2 * 4 = 4,608
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 64 * 9 * 4 = 2,304
    x = keras.layers.Conv2D(4, 1, groups=2)(x)  # 64 * 1 * 2 * 4 = 512
    x = keras.layers.SeparableConv2D(6, 3, padding="same")(x)  # 64 * (9 * 4 + 4 * 6) = 3,840
    x = keras.layers.BatchNormalization()(keras.layers.MaxPooling2D()(x))  # not counted
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))  # 96 * 10 = 960
    inner = keras.Model(inputs, outputs)
    assert multiply_accumulates(inner) == 4608 + 2304 + 512 + 3840 + 960
    wrapped = keras.Input((8, 8, 2))
    outer = keras.Model(wrapped, inner(keras.layers.RandomTranslation(0.1, 0.1)(wrapped)))
    assert multiply_accumulates(outer) == multiply_accumulates(inner)


def test_a_space_counts_its_own_configurations_learning_rate_and_decay_aside():
    from benchmarks.training.recipe import space_size

    def space(name):
        hp = kt.HyperParameters()
        SuiteHyperModel(get_architecture(name), (28, 28, 1), 10, make_budget("quick")).build(hp)
        return hp

    assert space_size(space("resnet")) == 3 * 2  # blocks 1-3, width 16/32
    assert space_size(space("mlp")) == 3 * 4 * 6  # layers 1-3, units 128-512 by 128, dropout
    assert space_size(space("wide_resnet")) == 4 * 5 * 4
    continuous = kt.HyperParameters()
    continuous.Float("momentum", 0.8, 0.99)
    assert space_size(continuous) is None


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_a_live_bar_on_a_terminal_and_nothing_in_a_log_file(terminal, monkeypatch):
    from benchmarks.training import callbacks

    out = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(callbacks.sys, "stdout", out)
    bars = callbacks.live_progress("[mlp] trial 0", batch_size=4)
    assert len(bars) == (1 if terminal else 0)
    hypermodel = _hypermodel(batch_size=4, epochs=2)
    hp = kt.HyperParameters()
    x, y = np.random.rand(16, *SHAPE).astype("float32"), np.arange(16) % 2
    hypermodel.fit(hp, hypermodel.build(hp), x, y, validation_data=(x, y), callbacks=bars)
    text = out.getvalue()
    if terminal:
        assert "[mlp] trial 0 epoch 1/2" in text and "[mlp] trial 0 epoch 2/2" in text
        assert "/16 [" in text and "img/s" in text and "\r" in text, "images per second, redrawn"
    else:
        assert text == "", "no escape codes in a log file"
