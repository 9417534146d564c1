"""The shared training recipe: what every architecture is compiled and trained with.

Neutral ground: this module knows Keras and Keras Tuner's ``HyperModel`` and nothing of the
harness (no W&B, no timing, no run directory), so every other module may import it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras
import keras_tuner as kt

from benchmarks.budget import Budget
from benchmarks.data.streaming import fit_arguments
from benchmarks.training import optimizers
from benchmarks.training.measure import multiply_accumulates
from models.registry import Architecture, NotApplicable

OBJECTIVE = "val_accuracy"  # a trial's score: its best epoch's validation accuracy
LOSS = "sparse_categorical_crossentropy"
METRICS = ["accuracy"]
LEARNING_RATE = "learning_rate"  # hyperparameters the suite adds to every space
WEIGHT_DECAY = "weight_decay"
TRANSLATION = 0.1  # augmentation: shifts of up to a tenth of the height and width
TIME_BUDGET_EPOCHS = 1_000_000  # under a time budget the clock, not the epochs, ends training


class ArchitectureError(ValueError):
    """An architecture's builder returned something the suite cannot train fairly."""


class SuiteHyperModel(kt.HyperModel):
    """Wraps an architecture's ``build`` with the suite's recipe, identical for all.

    The architecture supplies the network; the recipe adds the shared learning-rate search,
    optional augmentation, the optimizer, the loss, the metric, the batch size, the epochs,
    early stopping and the stop on a non-finite loss. It is only the recipe: seeds, W&B,
    timing and results files belong to the tuner and the harness.
    """

    def __init__(self, architecture: Architecture, input_shape, num_classes: int, budget: Budget,
                 flips: bool = False):
        super().__init__(name=architecture.name)
        self.architecture = architecture
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.budget = budget
        self.flips = flips  # the dataset's classes are mirror-invariant: augment with flips
        self._costs: dict[tuple, tuple[int, int] | None] = {}  # cost() of each network

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        model = self.architecture.build(hp, self.input_shape, self.num_classes)
        check_model(model, self.architecture.name, self.num_classes)
        default_lr = math.sqrt(self.budget.lr_min * self.budget.lr_max)
        learning_rate = hp.Float(
            LEARNING_RATE, self.budget.lr_min, self.budget.lr_max, sampling="log",
            default=default_lr,
        )
        weight_decay = 0.0
        if self.budget.weight_decay_max > 0:
            weight_decay = hp.Float(
                WEIGHT_DECAY, self.budget.weight_decay_min, self.budget.weight_decay_max,
                sampling="log",
                default=math.sqrt(self.budget.weight_decay_min * self.budget.weight_decay_max),
            )
        if self.budget.augment:
            model = _with_augmentation(model, self.input_shape, self.flips)
        if keras.mixed_precision.global_policy().compute_dtype in ("float16", "bfloat16"):
            # Softmax and loss in float32: half-precision probabilities lose small classes.
            outputs = keras.layers.Activation("linear", dtype="float32")(model.outputs[0])
            model = keras.Model(model.inputs, outputs, name=model.name)
        model.compile(
            optimizer=optimizers.adam(learning_rate, weight_decay),
            loss=SmoothedSparseCrossentropy(self.budget.label_smoothing)
            if self.budget.label_smoothing else LOSS,
            metrics=list(METRICS),
            jit_compile={"auto": "auto", "on": True, "off": False}[self.budget.xla],
        )
        return model

    def cost(self, values: dict[str, Any]) -> tuple[int, int] | None:
        """Parameters and multiply-accumulates per image of the architecture's network at
        ``values`` (the recipe adds neither); None where the builder says the input does
        not suit it. Built once per network: the recipe's values are left out of the key,
        so a search redrawing proposals over a cap does not build the same network again."""
        key = tuple(sorted((k, v) for k, v in values.items()  # and Hyperband's bookkeeping
                           if k not in (LEARNING_RATE, WEIGHT_DECAY) and not k.startswith("tuner/")))
        if key not in self._costs:
            hp = kt.HyperParameters()
            hp.values.update(values)
            try:
                model = self.architecture.build(hp, self.input_shape, self.num_classes)
                self._costs[key] = int(model.count_params()), multiply_accumulates(model)
            except NotApplicable:
                self._costs[key] = None
        return self._costs[key]

    def within_cap(self, values: dict[str, Any]) -> bool:
        """Whether ``values`` keeps the network within the budget's ``max_params`` and
        ``max_macs``."""
        budget = self.budget
        if not (budget.max_params or budget.max_macs):
            return True
        cost = self.cost(values)
        if cost is None:
            return True
        params, macs = cost
        return (not budget.max_params or params <= budget.max_params) and (
            not budget.max_macs or macs <= budget.max_macs)

    def fit(self, hp, model, *args, callbacks=(), final: bool = False, **kwargs):
        """``model.fit`` with the budget's batch size, epochs (or seconds), learning-rate
        schedule and the recipe's callbacks, after the ``callbacks`` given (the tuner's and
        the harness's); ``final``: a final training (final_epochs or final_seconds).

        The model ends with the weights of its best validation epoch: the epoch that scores
        a trial (``best_epoch_score``) is the one a final training keeps for the test.
        """
        budget = self.budget
        kwargs.setdefault("verbose", 0)
        peak = hp.get(LEARNING_RATE) if budget.schedule == "cosine" else None
        args, kwargs = fit_arguments(args, kwargs, budget.batch_size)
        steps_per_epoch = kwargs.get("steps_per_epoch") or len(args[0])  # whole batches
        clock = None
        if budget.budget_by == "time":
            kwargs["epochs"] = epochs = TIME_BUDGET_EPOCHS  # the clock stops the training
            clock = TrainingClock(budget.final_seconds if final else budget.trial_seconds,
                                  peak, budget.warmup)
        else:
            kwargs.setdefault("epochs", budget.final_epochs if final else budget.epochs)
            epochs = kwargs["epochs"] - kwargs.get("initial_epoch", 0)
            if peak is not None:
                model.optimizer.learning_rate = WarmupCosine.over(
                    peak, budget.warmup, steps_per_epoch * epochs)
        recipe = [StopOnNonFiniteLoss(), *([clock] if clock else []),
                  keras.callbacks.EarlyStopping(
                      monitor=OBJECTIVE, mode="max", restore_best_weights=True,
                      patience=budget.patience or epochs + 1)]  # patience 0: never stops early
        history = model.fit(*args, callbacks=[*callbacks, *recipe], **kwargs)
        # the optimizer steps taken: under a time budget the last epoch may end early
        history.steps_run = (clock.steps if clock else
                             steps_per_epoch * len(history.history.get("loss", [])))
        return history


def space_size(hp: kt.HyperParameters) -> int | None:
    """Distinct configurations of an architecture's own search space (the suite's learning
    rate and weight decay aside): the product of each hyperparameter's number of values;
    None when one of them is continuous."""
    size = 1
    for item in hp.space:
        if item.name in (LEARNING_RATE, WEIGHT_DECAY):
            continue
        config = item.get_config()
        if isinstance(item, kt.engine.hyperparameters.Choice):
            size *= len(config["values"])
        elif isinstance(item, kt.engine.hyperparameters.Boolean):
            size *= 2
        elif isinstance(item, (kt.engine.hyperparameters.Int, kt.engine.hyperparameters.Float)):
            if not config.get("step"):
                return None
            size *= int((config["max_value"] - config["min_value"]) / config["step"] + 1e-9) + 1
    return size


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training after an epoch whose loss is NaN or infinite (``check_finite`` then
    fails the trial). Keras' ``TerminateOnNaN`` checks after every batch; a diverged
    trial here trains to the end of its epoch instead, without a per-batch call."""

    def on_epoch_end(self, epoch, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


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


def cosine_decay(peak, rest, cos=math.cos):
    """The schedule after its warm-up: ``peak`` at ``rest`` 0 down to 0 at ``rest`` 1 along a
    half cosine (``cos``: ``math.cos`` for a number, ``keras.ops.cos`` for a tensor)."""
    return 0.5 * peak * (1.0 + cos(math.pi * rest))


def warmup_cosine(progress: float, peak: float, warmup: float) -> float:
    """The learning rate after ``progress`` (0 to 1) of a training: linear from 0 to
    ``peak`` over the first ``warmup`` share, then ``cosine_decay`` down to 0 at 1
    (``WarmupCosine`` is the same schedule over steps)."""
    if progress < warmup:
        return peak * progress / warmup
    return cosine_decay(peak, min(1.0, (progress - warmup) / (1.0 - warmup)))


class TrainingClock(keras.callbacks.Callback):
    """A time budget: stops training at the first step that ends after ``seconds`` of
    training, and with a ``peak`` learning rate sets the rate before each step from the
    share of the seconds spent (``warmup_cosine``). ``steps`` counts the steps taken.

    Counted: the training steps after a training's first, validation passes aside. The
    first step carries the tracing and compiling of the step (``timing.COMPILATION``, which
    differs widely between networks and devices); counting it would make a short budget
    rank how fast each network compiles, not how well it trains in the time.
    """

    clock = staticmethod(time.perf_counter)

    def __init__(self, seconds: float, peak: float | None = None, warmup: float = 0.0) -> None:
        super().__init__()
        self.seconds, self.peak, self.warmup = seconds, peak, warmup
        self.steps, self.spent, self._since = 0, 0.0, None

    def elapsed(self) -> float:
        return self.spent + (self.clock() - self._since if self._since is not None else 0.0)

    def on_train_begin(self, logs=None) -> None:
        self.steps, self.spent, self._since = 0, 0.0, None  # counting starts after step 1

    def on_test_begin(self, logs=None) -> None:
        self.spent, self._since = self.elapsed(), None

    def on_test_end(self, logs=None) -> None:
        if self.steps:
            self._since = self.clock()

    def on_train_batch_begin(self, batch, logs=None) -> None:
        if self.peak is not None:
            progress = min(1.0, self.elapsed() / self.seconds)
            self.model.optimizer.learning_rate = warmup_cosine(progress, self.peak, self.warmup)

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.steps += 1
        if self.steps == 1:
            self._since = self.clock()
        elif self.elapsed() >= self.seconds:
            self.model.stop_training = True


@keras.saving.register_keras_serializable(package="archbench")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """``peak`` reached linearly over ``warmup_steps`` (step 0 already trains, at
    ``peak / warmup_steps``), then ``cosine_decay`` from ``peak`` down to 0 at
    ``total_steps``; 0 after that. ``warmup_cosine`` is the same schedule over a share of
    a time budget."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int) -> None:
        self.peak, self.warmup_steps = float(peak), int(warmup_steps)
        self.total_steps = max(int(total_steps), self.warmup_steps + 1)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        rest = keras.ops.clip((step - self.warmup_steps)
                              / (self.total_steps - self.warmup_steps), 0.0, 1.0)
        return keras.ops.where(step < self.warmup_steps, warm,
                               cosine_decay(self.peak, rest, keras.ops.cos))

    @classmethod
    def over(cls, peak: float, warmup: float, steps: int) -> WarmupCosine:
        """The schedule of a training of ``steps`` steps, ``warmup`` of them (a share)
        warming up."""
        return cls(peak, round(warmup * steps), steps)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


@keras.saving.register_keras_serializable(package="archbench")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against ``1 - smoothing`` on the true class and
    ``smoothing / classes`` on every class (Keras' sparse loss has no label smoothing)."""

    def __init__(self, smoothing: float, name: str = "smoothed_crossentropy", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,)),
                                   classes)
        return keras.losses.categorical_crossentropy(labels, y_pred,
                                                     label_smoothing=self.smoothing)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smoothing": self.smoothing}


def _with_augmentation(model: keras.Model, input_shape, flips: bool) -> keras.Model:
    """The same light augmentation for every architecture, active in training only:
    shifts with zero padding, and horizontal flips where the classes are mirror-invariant
    (never for digits)."""
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.RandomTranslation(TRANSLATION, TRANSLATION, fill_mode="constant")(inputs)
    if flips:
        x = keras.layers.RandomFlip("horizontal")(x)
    return keras.Model(inputs, model(x), name=model.name)


def best_epoch_score(history: keras.callbacks.History) -> float:
    """The trial score: the best epoch's validation accuracy."""
    return max(history.history[OBJECTIVE])


def check_finite(history: keras.callbacks.History) -> None:
    """Raise FailedTrialError when the loss went NaN or infinite.

    ``StopOnNonFiniteLoss`` only stops training; without this the trial would end
    COMPLETED with a meaningless score.
    """
    for epoch, loss in enumerate(history.history.get("loss", []), start=1):
        if not math.isfinite(loss):
            raise kt.errors.FailedTrialError(f"loss became {loss} in epoch {epoch}")
    if not history.history.get(OBJECTIVE):
        raise kt.errors.FailedTrialError("training stopped before the first validation")
