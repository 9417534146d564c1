"""The harness's training callbacks: time charged to phases, stops on request or time limit.

Trials and final trainings get the same ones through ``harness_callbacks``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

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


class ProgressBar(keras.callbacks.Callback):
    """A live bar per epoch of the current training on a terminal (tqdm's): the epoch, its
    steps and images per second. Used only when standard output is a terminal: its batch
    hook makes Keras wait for every step, and a log file gets no escape codes."""

    def __init__(self, label: str, batch_size: int, stream: TextIO | None = None) -> None:
        super().__init__()
        self.label, self.batch_size, self.stream = label, batch_size, stream or sys.stdout
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None) -> None:
        from tqdm import tqdm

        epochs = self.params.get("epochs") or 0
        of = f"/{epochs}" if epochs < 1000 else ""  # a time budget's epochs are not a plan
        self.bar = tqdm(total=self.params.get("steps"), desc=f"  {self.label} epoch {epoch + 1}{of}",
                        unit="img", unit_scale=self.batch_size, leave=False, file=self.stream,
                        dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_end(self, logs=None) -> None:
        self.on_epoch_end(0)


def live_progress(label: str, batch_size: int) -> list[keras.callbacks.Callback]:
    """``[ProgressBar]`` when standard output is a terminal, else nothing."""
    isatty = getattr(sys.stdout, "isatty", None)
    return [ProgressBar(label, batch_size)] if isatty is not None and isatty() else []


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
    progress: Sequence[keras.callbacks.Callback] = (),
) -> list[keras.callbacks.Callback]:
    """The callbacks of one training: Keras Tuner's and W&B's, run at epoch ends only and
    charged to their phases; the stop on request; the validation timer; the time limit;
    the live progress bar (``live_progress``)."""
    clock = timing.current()
    callbacks = [TimedCallback(c, clock, timing.TUNER) for c in tuner]
    callbacks.append(StopOnRequest())
    if clock is not None:
        callbacks.append(ValidationTimer(clock))
    callbacks += [TimedCallback(c, clock, timing.WANDB) for c in wandb]
    if time_limit is not None:
        callbacks.append(time_limit)
    return [*callbacks, *progress]
