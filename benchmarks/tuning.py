"""The shared training recipe and the Keras Tuner search every architecture goes through."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import tensorflow as tf
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.engine import tuner_utils as kt_tuner_utils
from tensorflow.python.framework import ops as tf_ops

from benchmarks import interrupt, timing
from benchmarks.budget import Budget
from benchmarks.rundir import atomic_write_text
from benchmarks.tracking import Tracker
from models.registry import Architecture


def _atomic_save_json(path, obj, _original=kt_utils.save_json):
    """Keras Tuner's ``save_json``, writing local files atomically (temporary file, fsync,
    rename): a kill while Keras Tuner saves its state leaves the previous state, never
    half a JSON file that the next run could not reload."""
    if "://" in str(path):  # remote file systems (gs://...): Keras Tuner's own way
        return _original(path, obj)
    text = json.dumps(obj)
    atomic_write_text(Path(path), text)
    return text


# Every state file of Keras Tuner (oracle, trials, tuner) is written through this function.
kt_utils.save_json = _atomic_save_json

OBJECTIVE = "val_accuracy"  # a trial's score: its best epoch's validation accuracy
LOSS = "sparse_categorical_crossentropy"
LEARNING_RATE = "learning_rate"  # the one hyperparameter the suite adds to every space
CUSTOM_GRADIENT = "CustomGradient-"  # how TensorFlow names the gradients of tf.custom_gradient


def apply_accelerator(budget: Budget) -> dict[str, Any]:
    """Resolve the budget's accelerator fields on this machine; set the process-wide one.

    Returns:
        What is in effect, for the manifest: GPUs seen, mixed precision, XLA, strategy.
    """
    gpus = tf.config.list_physical_devices("GPU")
    mixed = budget.mixed_precision == "on" or (
        budget.mixed_precision == "auto" and any(_compute_capability(g) >= (7, 0) for g in gpus)
    )
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if budget.xla == "auto":  # Keras' own rule for jit_compile="auto"
        xla = bool(gpus) and budget.distribute == "none"
    else:
        xla = budget.xla == "on"
    return {"gpus": len(gpus), "mixed_precision": mixed, "xla": xla,
            "distribute": budget.distribute}


def _compute_capability(gpu) -> tuple[int, int]:
    details = tf.config.experimental.get_device_details(gpu)
    return tuple(details.get("compute_capability") or (0, 0))


def distribution_strategy(budget: Budget) -> tf.distribute.Strategy | None:
    """The strategy one training runs under: MirroredStrategy over every visible GPU."""
    return tf.distribute.MirroredStrategy() if budget.distribute == "mirrored" else None


class ArchitectureError(ValueError):
    """An architecture's builder returned something the suite cannot train fairly."""


def tuner_seed(seed: int) -> int:
    """The seed of the tuner's oracle: Keras Tuner treats 0 as "no seed" and then draws one
    from Python's global random state, so the budget's seed is shifted by one."""
    return seed + 1


def trial_seed(seed: int, trial_id: str) -> int:
    """The seed of one trial, derived from the budget's seed and the trial id."""
    digest = hashlib.sha256(f"{seed}:{trial_id}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 1)


class TrialTimeLimit(keras.callbacks.Callback):
    """Stops training once ``seconds`` have passed; the trial is then failed, not scored."""

    clock = staticmethod(time.perf_counter)

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.exceeded = False
        self._start = 0.0

    def on_train_begin(self, logs=None) -> None:
        self._start = self.clock()

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.clock() - self._start > self.seconds:
            self.exceeded = True
            self.model.stop_training = True


class SuiteHyperModel(kt.HyperModel):
    """Wraps an architecture's ``build`` with the suite's recipe, identical for all.

    The architecture supplies the network; the suite adds the shared learning-rate search,
    optional augmentation, the optimizer, the loss, the metric and the callbacks.
    """

    def __init__(self, architecture: Architecture, input_shape, num_classes: int, budget: Budget):
        super().__init__(name=architecture.name)
        self.architecture = architecture
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.budget = budget

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        model = self.architecture.build(hp, self.input_shape, self.num_classes)
        check_model(model, self.architecture.name, self.num_classes)
        default_lr = math.sqrt(self.budget.lr_min * self.budget.lr_max)
        learning_rate = hp.Float(
            LEARNING_RATE, self.budget.lr_min, self.budget.lr_max, sampling="log",
            default=default_lr,
        )
        if self.budget.augment:
            model = _with_augmentation(model, self.input_shape)
        if keras.mixed_precision.global_policy().compute_dtype == "float16":
            # Softmax and loss in float32: float16 probabilities lose small classes.
            outputs = keras.layers.Activation("linear", dtype="float32")(model.outputs[0])
            model = keras.Model(model.inputs, outputs, name=model.name)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=LOSS,
            metrics=["accuracy"],
            jit_compile={"auto": "auto", "on": True, "off": False}[self.budget.xla],
        )
        return model

    def fit(self, hp, model, *args, callbacks=None, extra_callbacks=(), **kwargs):
        """``model.fit`` with the budget's batch size and the shared callbacks.

        ``extra_callbacks`` are used as given, not deep-copied by the tuner (W&B's logger
        holds its run and cannot be copied).
        """
        shared = [StopOnNonFiniteLoss(), StopOnRequest()]
        if self.budget.patience:
            shared.append(
                keras.callbacks.EarlyStopping(monitor=OBJECTIVE, patience=self.budget.patience)
            )
        kwargs.setdefault("epochs", self.budget.epochs)
        kwargs.setdefault("verbose", 0)
        if self.budget.tuner != "hyperband":
            # Keras Tuner saves each trial's best epoch; the suite retrains the best
            # configuration from scratch and never reads them. Hyperband continues trials
            # from them, so it keeps them.
            callbacks = [c for c in callbacks or [] if not isinstance(c, kt_tuner_utils.SaveBestEpoch)]
        # Keras Tuner's and W&B's callbacks run at epoch ends only (their batch hooks do
        # nothing here; without them Keras may dispatch batches without waiting, on
        # backends that allow it), and their time is charged to them.
        clock = timing.current()
        callbacks = [TimedCallback(c, clock, timing.TUNER) for c in callbacks or []]
        extra_callbacks = [
            c if isinstance(c, TrialTimeLimit) else TimedCallback(c, clock, timing.WANDB)
            for c in extra_callbacks
        ]
        if clock is not None:
            shared.append(ValidationTimer(clock))
        with timing.phase(timing.TRAINING):
            return model.fit(
                *args,
                batch_size=self.budget.batch_size,
                callbacks=[*(callbacks or []), *shared, *extra_callbacks],
                **kwargs,
            )


_HOOKS = [
    f"on_{stage}_{event}"
    for stage in ("batch", "epoch", "train_batch", "test_batch", "predict_batch",
                  "train", "test", "predict")
    for event in ("begin", "end")
]


class TimedCallback(keras.callbacks.Callback):
    """Runs the epoch-level hooks of ``inner``, with their time charged to ``phase``.

    Batch hooks are left out: they cost a Python call per batch, and Keras dispatches
    batches asynchronously only when every callback's batch hooks are its defaults. Only
    the hooks ``inner`` overrides are wrapped. With ``clock`` None they run untimed.
    """

    def __init__(self, inner: keras.callbacks.Callback, clock: timing.Phases | None, phase: str):
        super().__init__()
        self.inner = inner
        for hook in _HOOKS:
            if "batch" in hook:
                continue
            method = getattr(inner, hook, None)
            if method is not None and not getattr(method, "_is_default", False):
                setattr(self, hook, self._timed(method, clock, phase) if clock else method)

    @staticmethod
    def _timed(method, clock: timing.Phases, phase: str):
        def hook(*args, **kwargs):
            with clock.phase(phase):
                return method(*args, **kwargs)

        return hook

    def set_model(self, model) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params) -> None:
        super().set_params(params)
        self.inner.set_params(params)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training after an epoch whose loss is NaN or infinite (``check_finite`` then
    fails the trial). Keras' ``TerminateOnNaN`` checks after every batch; a diverged
    trial here trains to the end of its epoch instead, without a per-batch call."""

    def on_epoch_end(self, epoch, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


class StopOnRequest(keras.callbacks.Callback):
    """Honours a Ctrl-C whose first ``KeyboardInterrupt`` Python swallowed (see
    ``benchmarks.interrupt``): the training stops at the next epoch end."""

    def on_epoch_end(self, epoch, logs=None) -> None:
        interrupt.check()


class ValidationTimer(keras.callbacks.Callback):
    """Charges the validation pass at the end of each epoch to ``validation``."""

    def __init__(self, clock: timing.Phases) -> None:
        super().__init__()
        self.clock = clock

    def on_test_begin(self, logs=None) -> None:
        self.clock.enter(timing.VALIDATION)

    def on_test_end(self, logs=None) -> None:
        self.clock.exit()


def check_model(model: Any, name: str, num_classes: int) -> None:
    """Refuse what the suite cannot compare fairly.

    Raises:
        ArchitectureError: not a keras.Model, already compiled, or a wrong output shape.
    """
    if not isinstance(model, keras.Model):
        raise ArchitectureError(
            f"architecture {name!r} returned {type(model).__name__}, not a keras.Model"
        )
    if model.compiled:
        raise ArchitectureError(
            f"architecture {name!r} returned a compiled model; return it uncompiled, "
            "the suite compiles every architecture with the same recipe"
        )
    shape = tuple(model.output_shape)
    if shape != (None, num_classes):
        raise ArchitectureError(
            f"architecture {name!r} outputs shape {shape}, expected {(None, num_classes)}"
        )


def _with_augmentation(model: keras.Model, input_shape) -> keras.Model:
    """The same light augmentation for every architecture (inactive at inference)."""
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant")(inputs)
    x = keras.layers.RandomFlip("horizontal")(x)
    return keras.Model(inputs, model(x), name=model.name)


def best_epoch_score(history: keras.callbacks.History) -> float:
    """The trial score: the best epoch's validation accuracy."""
    return max(history.history[OBJECTIVE])


def check_finite(history: keras.callbacks.History) -> None:
    """Raise FailedTrialError when the loss went NaN or infinite.

    ``TerminateOnNaN`` only stops training; without this the trial would end COMPLETED
    with a meaningless score.
    """
    for epoch, loss in enumerate(history.history.get("loss", []), start=1):
        if not math.isfinite(loss):
            raise kt.errors.FailedTrialError(f"loss became {loss} in epoch {epoch}")
    if not history.history.get(OBJECTIVE):
        raise kt.errors.FailedTrialError("training stopped before the first validation")


@dataclass
class TrialRecord:
    """What the suite learns about one trial while it runs."""

    wandb_run_id: str = ""
    worker: str = ""  # Keras Tuner's tuner id of the process that trained it, if distributed
    epochs_run: int = 0
    train_seconds: float = 0.0
    val_accuracy_history: list[float] = field(default_factory=list)


def release_graphs() -> None:
    """Let TensorFlow free the traced graphs of models that are gone.

    Every ``tf.custom_gradient`` traced in a graph (``tf.distribute``'s ``all_reduce``,
    which every Keras training step calls) registers its gradient function in TensorFlow's
    global gradient registry under a fresh name, and nothing ever removes it. Its closure
    holds tensors of the traced training step, so every training step a process ever traced
    stays alive: 5 to 13 MB per trial here, the growth reported in
    tensorflow/tensorflow#61791. Call this only where no earlier model is used again,
    before ``clear_session`` for the next model.
    """
    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):  # another TensorFlow: nothing to release
        return
    for name in [name for name in registry if name.startswith(CUSTOM_GRADIENT)]:
        del registry[name]


class Recycle(Exception):  # noqa: N818 - a request, not an error
    """This worker process has run its share of trials; it exits and is started afresh."""


@dataclass
class TrialQuota:
    """Trials one process may run before it is replaced (0 = no limit).

    Whatever TensorFlow still keeps per trained model after ``release_graphs`` and
    ``clear_session`` goes with the process: a worker replaced every few trials keeps
    memory flat.
    """

    limit: int = 0
    done: int = 0

    def count(self) -> None:
        self.done += 1
        if self.limit and self.done >= self.limit:
            raise Recycle(f"ran {self.done} trial(s)")


@dataclass
class SearchContext:
    """What every trial of one architecture's search shares."""

    architecture: Architecture
    budget: Budget
    tracker: Tracker
    base_config: dict[str, Any]
    on_trial_end: Callable[[kt.engine.trial.Trial, TrialRecord], None]
    gradients: bool = False  # log per-layer gradient norms of every trial to W&B
    records: dict[str, TrialRecord] = field(default_factory=dict)
    quota: TrialQuota = field(default_factory=TrialQuota)  # shared by a process's searches


class _SuiteTunerMixin:
    """Adds per-trial seeding, W&B runs, NaN failure and trial records to a Keras Tuner."""

    def __init__(self, *args, context: SearchContext, **kwargs):
        self.context = context
        super().__init__(*args, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        ctx = self.context
        keras.utils.set_random_seed(trial_seed(ctx.budget.seed, trial.trial_id))
        name = ctx.architecture.name
        config = {
            **ctx.base_config,
            "trial_id": trial.trial_id,
            "trial_seed": trial_seed(ctx.budget.seed, trial.trial_id),
            "hyperparameters": dict(trial.hyperparameters.values),
        }
        run = ctx.tracker.start(
            f"{name}-t{trial.trial_id}", "trial", config, [name, ctx.budget.name]
        )
        record = ctx.records[trial.trial_id] = TrialRecord(
            wandb_run_id=run.id if run else "",
            worker=self.tuner_id if os.environ.get("KERASTUNER_ORACLE_IP") else "",
        )
        limit = TrialTimeLimit(ctx.budget.trial_timeout) if ctx.budget.trial_timeout else None
        start = time.perf_counter()
        try:
            callbacks = ctx.tracker.training_callbacks(run, *args[:2], gradients=ctx.gradients)
            callbacks += [limit] if limit else []
            try:
                histories = super().run_trial(trial, *args, extra_callbacks=callbacks, **kwargs)
            except tf.errors.ResourceExhaustedError as exc:
                raise kt.errors.FailedTrialError(f"out of memory: {exc.message}") from exc
            history = histories[0]
            record.epochs_run = len(history.history.get("loss", []))
            record.val_accuracy_history = list(history.history.get(OBJECTIVE, []))
            record.train_seconds = time.perf_counter() - start
            if limit and limit.exceeded:
                raise kt.errors.FailedTrialError(
                    f"exceeded the trial time limit of {ctx.budget.trial_timeout} s"
                )
            check_finite(history)
        except BaseException as exc:
            record.train_seconds = time.perf_counter() - start
            ctx.tracker.finish_failed(run, exc)
            raise
        if run is not None:
            run.summary.update(
                {
                    "status": "COMPLETED",
                    "score": best_epoch_score(history),
                    "epochs_run": record.epochs_run,
                    "train_seconds": record.train_seconds,
                    "total_params": history.model.count_params(),
                }
            )
        ctx.tracker.finish(run)
        return histories

    def _try_build(self, hp):
        # Clearing the session and building the model are part of training a model.
        with timing.phase(timing.TRAINING):
            release_graphs()  # the previous trial's model is gone; Keras Tuner clears next
            return super()._try_build(hp)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        record = self.context.records.pop(trial.trial_id, TrialRecord())
        self.context.on_trial_end(trial, record)
        self.context.quota.count()  # after the trial is ended and recorded
        interrupt.check()  # a stop asked for during the trial, once its row is written


class RandomSearchTuner(_SuiteTunerMixin, kt.RandomSearch):
    pass


class BayesianTuner(_SuiteTunerMixin, kt.BayesianOptimization):
    pass


class HyperbandTuner(_SuiteTunerMixin, kt.Hyperband):
    pass


def make_tuner(
    hypermodel: SuiteHyperModel, context: SearchContext, directory: str, project_name: str
) -> kt.Tuner:
    """The budget's tuner for one architecture, resuming from ``directory`` if it exists.

    Raises:
        Exception: whatever the architecture's ``build`` raises at its default
            hyperparameters (Keras Tuner builds it once here).
    """
    budget = context.budget
    common = dict(
        hypermodel=hypermodel,
        objective=kt.Objective(OBJECTIVE, direction="max"),
        seed=tuner_seed(budget.seed),
        directory=directory,
        project_name=project_name,
        overwrite=False,  # never: it would delete the project under other workers
        context=context,
        distribution_strategy=distribution_strategy(budget),
    )
    if budget.tuner == "hyperband":
        return HyperbandTuner(max_epochs=budget.epochs, factor=3, hyperband_iterations=1, **common)
    tuner_class = BayesianTuner if budget.tuner == "bayesian" else RandomSearchTuner
    return tuner_class(max_trials=budget.trials, **common)
