"""The shared training recipe: what every architecture is compiled and trained with.

Neutral ground: this module knows Keras and Keras Tuner's ``HyperModel`` and nothing of the
harness (no W&B, no timing, no run directory), so every other module may import it.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import keras_tuner as kt

from benchmarks.budget import Budget
from benchmarks.streaming import fit_arguments
from models.registry import Architecture

OBJECTIVE = "val_accuracy"  # a trial's score: its best epoch's validation accuracy
LOSS = "sparse_categorical_crossentropy"
METRICS = ["accuracy"]
LEARNING_RATE = "learning_rate"  # the one hyperparameter the suite adds to every space


class ArchitectureError(ValueError):
    """An architecture's builder returned something the suite cannot train fairly."""


class SuiteHyperModel(kt.HyperModel):
    """Wraps an architecture's ``build`` with the suite's recipe, identical for all.

    The architecture supplies the network; the recipe adds the shared learning-rate search,
    optional augmentation, the optimizer, the loss, the metric, the batch size, the epochs,
    early stopping and the stop on a non-finite loss. It is only the recipe: seeds, W&B,
    timing and results files belong to the tuner and the harness.
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
            metrics=list(METRICS),
            jit_compile={"auto": "auto", "on": True, "off": False}[self.budget.xla],
        )
        return model

    def fit(self, hp, model, *args, callbacks=(), **kwargs):
        """``model.fit`` with the budget's batch size, epochs and the recipe's callbacks,
        after the ``callbacks`` given (the tuner's and the harness's)."""
        recipe = [StopOnNonFiniteLoss()]
        if self.budget.patience:
            recipe.append(
                keras.callbacks.EarlyStopping(monitor=OBJECTIVE, patience=self.budget.patience)
            )
        kwargs.setdefault("epochs", self.budget.epochs)
        kwargs.setdefault("verbose", 0)
        args, kwargs = fit_arguments(args, kwargs, self.budget.batch_size)
        return model.fit(*args, callbacks=[*callbacks, *recipe], **kwargs)


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

    ``StopOnNonFiniteLoss`` only stops training; without this the trial would end
    COMPLETED with a meaningless score.
    """
    for epoch, loss in enumerate(history.history.get("loss", []), start=1):
        if not math.isfinite(loss):
            raise kt.errors.FailedTrialError(f"loss became {loss} in epoch {epoch}")
    if not history.history.get(OBJECTIVE):
        raise kt.errors.FailedTrialError("training stopped before the first validation")
