"""The harness's training callbacks: time charged to phases, stops on request or time limit.

Trials and final trainings get the same ones through ``harness_callbacks``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras

from benchmarks import interrupt, timing

_HOOKS = [
    f"on_{stage}_{event}"
    for stage in ("epoch", "train", "test", "predict")
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


def harness_callbacks(
    tuner: Sequence[keras.callbacks.Callback] = (),
    wandb: Sequence[keras.callbacks.Callback] = (),
    time_limit: TrialTimeLimit | None = None,
) -> list[keras.callbacks.Callback]:
    """The callbacks of one training: Keras Tuner's and W&B's, run at epoch ends only and
    charged to their phases; the stop on request; the validation timer; the time limit."""
    clock = timing.current()
    callbacks = [TimedCallback(c, clock, timing.TUNER) for c in tuner]
    callbacks.append(StopOnRequest())
    if clock is not None:
        callbacks.append(ValidationTimer(clock))
    callbacks += [TimedCallback(c, clock, timing.WANDB) for c in wandb]
    if time_limit is not None:
        callbacks.append(time_limit)
    return callbacks
