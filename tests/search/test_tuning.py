"""The search: shared recipe, seeding, and failed trials recorded instead of crashing."""

import dataclasses
import gc
import json
import math
import os
import signal
import subprocess
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest

from benchmarks import rundir
from benchmarks.runtime import interrupt
from benchmarks.search.tuning import TrialSetup, TrialWriter, make_tuner, trial_seed
from benchmarks.tracking.runs import Tracker
from benchmarks.training.callbacks import TrialTimeLimit
from benchmarks.training.recipe import (
    LEARNING_RATE,
    ArchitectureError,
    StopOnNonFiniteLoss,
    SuiteHyperModel,
    check_finite,
    check_model,
)
from models.registry import get_architecture, register
from tests.conftest import synthetic_images, wandb_inspect
from tests.helpers import REPO
from tests.helpers.training import BUDGET, bench, tiny_splits


def test_trial_seed_is_stable_and_depends_on_both_inputs():
    assert trial_seed(0, "1") == trial_seed(0, "1")
    assert len({trial_seed(0, "1"), trial_seed(1, "1"), trial_seed(0, "2")}) == 3


def test_suite_adds_learning_rate_in_the_budget_range_and_compiles():
    hm = SuiteHyperModel(get_architecture("mlp"), (28, 28, 1), 10, BUDGET)
    hp = kt.HyperParameters()
    model = hm.build(hp)
    assert model.compiled
    assert BUDGET.lr_min <= hp.get("learning_rate") <= BUDGET.lr_max
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(hp.get("learning_rate"))


def test_check_model_refuses_compiled_and_wrong_shape():
    inputs = keras.Input((28, 28, 1))
    wrong = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ArchitectureError, match=r"outputs shape \(None, 3\), expected \(None, 10\)"):
        check_model(wrong, "wrong", 10)
    right = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    right.compile("adam", "mse")
    with pytest.raises(ArchitectureError, match="returned a compiled model"):
        check_model(right, "right", 10)
    with pytest.raises(ArchitectureError, match="returned str, not a keras.Model"):
        check_model("model", "text", 10)


def test_check_finite_fails_nan_loss():
    history = keras.callbacks.History()
    history.history = {"loss": [1.0, float("nan")], "val_accuracy": [0.1, 0.1]}
    with pytest.raises(kt.errors.FailedTrialError, match="loss became nan in epoch 2"):
        check_finite(history)


@pytest.mark.slow
def test_successful_search_writes_one_row_per_trial(tmp_path):
    row, trials = bench("mlp", tmp_path, tiny_splits())
    assert row["status"] == "ok"
    assert [t["trial_id"] for t in trials] == ["0", "1"]
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert [t["origin"] for t in trials] == ["defaults", "tuner"]
    best = max(trials, key=lambda t: float(t["score"]))
    assert float(row["val_accuracy"]) == pytest.approx(float(best["score"]))
    assert json.loads(best["hyperparameters"]) == json.loads(row["best_hyperparameters"])
    assert 0.0 <= float(row["test_accuracy"]) <= 1.0
    predictions = rundir.read_rows(tmp_path / "t" / rundir.PREDICTIONS_DIR / "mlp.csv")
    assert len(predictions) == 40
    accuracy = np.mean([p["label"] == p["predicted"] for p in predictions])
    assert float(row["test_accuracy"]) == pytest.approx(accuracy)


@pytest.mark.slow
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_nan_trial_ends_failed_not_completed(tmp_path, onednn):
    """With TensorFlow's oneDNN kernels off and on: which one a machine uses by default
    depends on its CPU (on with AVX-512 VNNI/BF16 or AMX), so CI checks both."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "WANDB_MODE": "offline",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "tests.search.nonfinite_trial", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["onednn"] is (onednn == "1"), "the oneDNN setting did not take effect"
    row = outcome["row"]
    trials = rundir.read_rows(tmp_path / "t" / rundir.TRIALS)
    assert len(trials) == BUDGET.trials
    assert {t["status"] for t in trials} == {"FAILED"}
    assert all("loss became nan" in t["error"] for t in trials)
    assert all(t["score"] == "" for t in trials)
    assert row["status"] == "failed" and "loss became nan" in row["error"]
    # Each failed trial's W&B run finished with a non-zero exit code and says why.
    runs = sorted((tmp_path / "w" / "wandb").glob("offline-run-*"))
    assert len(runs) == len(trials)
    for run in runs:
        summary = wandb_inspect(run, summary=True)
        assert summary["exit_code"] == 1
        assert summary["summary"]["status"] == "FAILED"
        assert "loss became nan" in summary["summary"]["error"]


@pytest.mark.slow  # two searches each: 20 s
@pytest.mark.parametrize("cap", [{"max_params": 50_000}, {"max_macs": 50_000}])
def test_configurations_over_the_cap_are_never_trained(tmp_path, cap):
    @register
    def narrow_or_wide(hp, input_shape, num_classes):
        """A dense net whose width the search picks: 8 units (about 6,400 parameters and
        multiply-accumulates on 28x28) or 512 (about 400,000)."""
        units = hp.Choice("units", [8, 512], default=512)
        inputs = keras.Input(input_shape)
        x = keras.layers.Dense(units, activation="relu")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    budget = dataclasses.replace(BUDGET, trials=4, **cap)
    row, trials = bench("narrow_or_wide", tmp_path, tiny_splits(), budget=budget)
    assert len(trials) == 4 and {t["status"] for t in trials} == {"COMPLETED"}
    assert {json.loads(t["hyperparameters"])["units"] for t in trials} == {8}
    assert {t["origin"] for t in trials} == {"tuner"}, "the defaults (512 units) are over it"
    assert row["status"] == "ok" and int(row["total_params"]) <= 50_000
    uncapped = dataclasses.replace(budget, max_params=0, max_macs=0)
    _, wide = bench("narrow_or_wide", tmp_path / "uncapped", tiny_splits(), budget=uncapped)
    assert 512 in {json.loads(t["hyperparameters"])["units"] for t in wide}, "the cap did it"


def test_architecture_broken_at_defaults_is_recorded_not_raised(tmp_path):
    @register
    def broken_net(hp, input_shape, num_classes):
        """Broken on purpose."""
        raise RuntimeError("this architecture is broken")

    row, trials = bench("broken_net", tmp_path, tiny_splits())
    assert row["status"] == "failed"
    assert "this architecture is broken" in row["error"]


def test_trainings_run_with_the_heap_alive_before_them_left_out_of_full_collections(tmp_path):
    # Keras Tuner calls gc.collect() before every trial, and TensorFlow's tracing triggers
    # more: each scanned the 400,000-odd objects of the imports again.
    frozen = []

    @register
    def heap_probe(hp, input_shape, num_classes):
        """Notes how many objects the collector leaves out while it is built."""
        frozen.append(gc.get_freeze_count())
        inputs = keras.Input(input_shape)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(
            keras.layers.Flatten()(inputs))
        return keras.Model(inputs, outputs)

    before = len(gc.get_objects())
    row, _ = bench("heap_probe", tmp_path, tiny_splits())
    assert row["status"] == "ok"
    # Keras Tuner's build at the tuner's creation, then two trials and one final training
    assert [count > before // 2 for count in frozen] == [False, True, True, True]
    assert gc.get_freeze_count() == 0  # and everything is collectable again afterwards


def test_the_search_samples_the_same_trials_whatever_the_global_random_state(tmp_path):
    """Keras Tuner draws its own seed from Python's `random` when given seed 0; the suite
    must not let that happen, or reruns and resumes would try other hyperparameters."""
    import random

    sampled = []
    for attempt in range(2):
        random.seed(attempt)
        hypermodel = SuiteHyperModel(get_architecture("simple_cnn"), (28, 28, 1), 10, BUDGET)
        setup = TrialSetup(BUDGET, Tracker("disabled", "p", "t", tmp_path),
                           TrialWriter(tmp_path / "trials.csv", "simple_cnn", BUDGET.hash), {})
        tuner = make_tuner(hypermodel, setup, str(tmp_path / f"t{attempt}"), "simple_cnn")
        trials = [tuner.oracle.create_trial(f"tuner{i}") for i in range(2)]
        sampled.append([t.hyperparameters.values for t in trials])
    assert sampled[0] == sampled[1]
    assert sampled[0][0] != sampled[0][1]


@pytest.mark.parametrize("tuner", ["random", "bayesian"])
def test_each_search_starts_from_the_default_configuration(tmp_path, tuner):
    budget = dataclasses.replace(BUDGET, tuner=tuner)
    for name in ("mlp", "resnet"):
        hypermodel = SuiteHyperModel(get_architecture(name), (28, 28, 1), 10, budget)
        defaults = kt.HyperParameters()
        hypermodel.build(defaults)  # Keras Tuner fills each hyperparameter's default
        setup = TrialSetup(budget, Tracker("disabled", "p", "t", tmp_path),
                           TrialWriter(tmp_path / "trials.csv", name, budget.hash), {})
        oracle = make_tuner(hypermodel, setup, str(tmp_path / tuner), name).oracle
        first, second = [oracle.create_trial(f"tuner{i}") for i in range(2)]
        assert first.hyperparameters.values == defaults.values
        assert defaults.values[LEARNING_RATE] == pytest.approx(
            math.sqrt(budget.lr_min * budget.lr_max))
        assert second.hyperparameters.values != defaults.values  # then the tuner's own


def test_a_network_is_built_once_to_check_it_against_the_caps():
    built = []

    @register
    def counted(hp, input_shape, num_classes):
        """A dense net that notes each build."""
        units = hp.Choice("units", [8, 16], default=8)
        built.append(units)
        inputs = keras.Input(input_shape)
        x = keras.layers.Dense(units)(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    budget = dataclasses.replace(BUDGET, max_params=10_000)  # 8 units: 6,370; 16: 12,730
    hypermodel = SuiteHyperModel(get_architecture("counted"), (28, 28, 1), 10, budget)
    for learning_rate in (1e-3, 2e-3, 3e-3):
        assert hypermodel.within_cap({"units": 8, LEARNING_RATE: learning_rate})
        assert not hypermodel.within_cap({"units": 16, LEARNING_RATE: learning_rate})
    assert built == [8, 16]


def test_a_kill_between_the_trial_file_and_the_oracle_state_loses_no_trial(tmp_path, monkeypatch):
    """Keras Tuner's create_trial writes trial_<id>/trial.json, then oracle.json: a kill
    between them must leave a resumed search to run that trial, with the same values."""
    from benchmarks.training.recipe import OBJECTIVE

    def tuner_in(directory):
        hypermodel = SuiteHyperModel(get_architecture("mlp"), (28, 28, 1), 10, BUDGET)
        setup = TrialSetup(BUDGET, Tracker("disabled", "p", "t", tmp_path),
                           TrialWriter(tmp_path / "trials.csv", "mlp", BUDGET.hash), {})
        return make_tuner(hypermodel, setup, str(tmp_path / directory), "mlp")

    def first_trial_done(tuner):
        trial = tuner.oracle.create_trial("tuner0")
        tuner.oracle.update_trial(trial.trial_id, {OBJECTIVE: 0.5})
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        tuner.oracle.end_trial(trial)
        tuner.save()

    reference = tuner_in("reference")
    first_trial_done(reference)
    expected = reference.oracle.create_trial("tuner0")

    killed = tuner_in("killed")
    first_trial_done(killed)

    class Killed(BaseException):
        pass

    def kill(*_):
        raise Killed  # stands for SIGKILL: trial_1/trial.json is written, oracle.json not

    monkeypatch.setattr(killed.oracle, "save", kill)
    with pytest.raises(Killed):
        killed.oracle.create_trial("tuner0")
    assert (tmp_path / "killed" / "mlp" / "trial_1" / "trial.json").is_file()

    resumed = tuner_in("killed").oracle.create_trial("tuner0")
    assert resumed.status == kt.engine.trial.TrialStatus.RUNNING
    assert resumed.trial_id == expected.trial_id == "1"
    assert resumed.hyperparameters.values == expected.hyperparameters.values


@pytest.mark.slow
def test_trial_over_its_time_limit_fails_and_the_search_goes_on(tmp_path, monkeypatch):
    ticks = iter(range(0, 10**6, 100))  # every reading of the clock is 100 s later
    monkeypatch.setattr(TrialTimeLimit, "clock", staticmethod(lambda: float(next(ticks))))
    budget = dataclasses.replace(BUDGET, trial_timeout=50)
    row, trials = bench("mlp", tmp_path, tiny_splits(), budget=budget)
    assert [t["status"] for t in trials] == ["FAILED", "FAILED"]
    assert all("exceeded the trial time limit of 50 s" in t["error"] for t in trials)
    assert all(t["epochs_run"] == "1" for t in trials), "training stopped in the first epoch"
    assert row["status"] == "failed" and "time limit" in row["error"]


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_every_tuner_runs_the_same_recipe_to_a_result(tmp_path, tuner):
    budget = dataclasses.replace(BUDGET, tuner=tuner, epochs=2, trials=2)
    row, trials = bench("mlp", tmp_path, tiny_splits(), budget=budget)
    assert row["status"] == "ok", row["error"]
    assert trials and all(t["status"] == "COMPLETED" for t in trials)
    if tuner == "hyperband":
        # Hyperband's own bookkeeping rides along.
        values = [json.loads(t["hyperparameters"]) for t in trials]
        assert all("tuner/epochs" in v for v in values)
        assert "tuner/" not in row["best_hyperparameters"]
    else:
        assert len(trials) == 2


def test_unreadable_tuner_state_fails_that_architecture_with_the_way_out(tmp_path):
    project = tmp_path / "t" / "tuner" / "mlp"
    project.mkdir(parents=True)
    (project / "tuner0.json").write_text("{}")
    (project / "oracle.json").write_text('{"ongoing_trials": {"tuner0": "0"')  # cut short
    row, _ = bench("mlp", tmp_path, tiny_splits())
    assert row["status"] == "failed"
    assert "Keras Tuner state in" in row["error"] and "is unreadable" in row["error"]
    assert "delete that directory" in row["error"]


@pytest.fixture
def float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow  # compiles with XLA
def test_accelerator_fields_resolve_on_cpu_and_reach_the_model(float32_afterwards):
    from benchmarks.training.accelerator import apply_accelerator

    assert apply_accelerator(BUDGET) == {  # "auto" on a CPU-only machine
        "backend": "tensorflow", "gpus": 0, "gpu_names": [], "mixed_precision": False,
        "policy": "float32", "xla": False, "distribute": "none"}
    brain = dataclasses.replace(BUDGET, mixed_precision="bfloat16")
    assert apply_accelerator(brain)["policy"] == "mixed_bfloat16"
    model = SuiteHyperModel(get_architecture("mlp"), (28, 28, 1), 10, brain).build(
        kt.HyperParameters())
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers)
    assert model.output.dtype == "float32"
    forced = dataclasses.replace(BUDGET, mixed_precision="on", xla="on")
    assert apply_accelerator(forced)["mixed_precision"] and apply_accelerator(forced)["xla"]
    model = SuiteHyperModel(get_architecture("simple_cnn"), (28, 28, 1), 10, forced).build(
        kt.HyperParameters())
    assert model.jit_compile is True
    assert any(layer.compute_dtype == "float16" for layer in model.layers)
    assert model.output.dtype == "float32"  # softmax probabilities stay float32
    x, y = synthetic_images(32)
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss if np.isscalar(loss) else loss[0])


@pytest.mark.slow
def test_a_mirrored_search_runs_under_its_strategy(tmp_path, monkeypatch):
    """On a CPU-only machine MirroredStrategy has one replica: the path, not the speed-up."""
    import tensorflow as tf

    strategies = []
    build = SuiteHyperModel.build

    def spy(self, hp):
        strategies.append(type(tf.distribute.get_strategy()).__name__)
        return build(self, hp)

    monkeypatch.setattr(SuiteHyperModel, "build", spy)
    budget = dataclasses.replace(BUDGET, distribute="mirrored", trials=1)
    row, trials = bench("mlp", tmp_path, tiny_splits(), budget=budget)
    assert row["status"] == "ok", row
    assert [t["status"] for t in trials] == ["COMPLETED"]
    # The trial's and the final training's models are built in the strategy's scope (the
    # tuner's first build, at its defaults, only declares the search space).
    assert strategies[-2:] == ["MirroredStrategy", "MirroredStrategy"], strategies


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_ctrl_c_stops_the_search_at_the_next_epoch_end(tmp_path, monkeypatch):
    from tests.helpers.signals import signal_inside_a_weakref_callback

    epochs = []

    def ctrl_c_lost_in_garbage_collection(self, epoch, logs=None):
        epochs.append(epoch)
        if len(epochs) == 1:
            signal_inside_a_weakref_callback(signal.SIGINT)

    monkeypatch.setattr(StopOnNonFiniteLoss, "on_epoch_end", ctrl_c_lost_in_garbage_collection)
    with interrupt.stop_on_signals(), pytest.raises(interrupt.Stopped):
        bench("mlp", tmp_path, tiny_splits(), wandb_mode="offline",
              budget=dataclasses.replace(BUDGET, epochs=3))
    assert epochs == [0], "training stopped at the end of the epoch the signal came in"
    assert not (tmp_path / "t" / rundir.TRIALS).exists(), "the interrupted trial has no row"
    # Its W&B run is finished (not left open for the next trial) and says it was stopped.
    [run] = (tmp_path / "w" / "wandb").glob("offline-run-*")
    summary = wandb_inspect(run, summary=True)
    assert summary["exit_code"] == 1
    assert summary["summary"]["status"] == "STOPPED"
    assert "stopped by SIGINT" in summary["summary"]["error"]


@pytest.mark.slow
def test_a_search_keeps_no_graphs_of_earlier_trials(tmp_path):
    # TensorFlow's gradient registry would keep every traced training step of the process
    # alive (tensorflow/tensorflow#61791): memory grew with every trial.
    from tensorflow.python.framework.func_graph import FuncGraph

    def graphs_alive():
        gc.collect()
        return sum(isinstance(o, FuncGraph) for o in gc.get_objects())

    bench("mlp", tmp_path / "one", tiny_splits(), budget=dataclasses.replace(BUDGET, trials=1))
    after_one_trial = graphs_alive()
    bench("mlp", tmp_path / "four", tiny_splits(), budget=dataclasses.replace(BUDGET, trials=4))
    assert graphs_alive() <= after_one_trial
