"""The harness's training callbacks: time charged to phases, stops on request or time limit.

Trials and final trainings get the same ones through ``harness_callbacks``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

import keras

from benchmarks import timing
from benchmarks.runtime import backends, interrupt

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
    ``benchmarks.runtime.interrupt``): the training stops before its next step, not at the end of
    an epoch that may take minutes. Batch-start hooks only: Keras still dispatches steps
    asynchronously."""

    def on_train_batch_begin(self, batch, logs=None) -> None:
        interrupt.check()

    def on_test_batch_begin(self, batch, logs=None) -> None:
        interrupt.check()

    def on_epoch_end(self, epoch, logs=None) -> None:
        interrupt.check()


class CompileTimer(keras.callbacks.Callback):
    """Charges the tracing and compiling of a training's steps to ``compilation``.

    Both backends compile a step on its first call: the first training batch of a training
    and the first batch of its first validation pass take the compilation plus one step.
    Each is charged to ``compilation`` from its start to the start of the next batch (the
    compilation is done before a step is dispatched, on every backend); the next batch's
    time, one step, is then given back to the phase it belongs to. A pass of one batch
    keeps its step in ``compilation``. Only batch starts are hooked: a batch-end hook would
    make Keras wait for every step's results.
    """

    def __init__(self, clock: timing.Phases) -> None:
        super().__init__()
        self.clock = clock
        # per pass ("train", "test"): where it is (0: not started, 1: first batch timed,
        # 2: second batch timed, 3: done), and the times it has seen
        self._state = {"train": 0, "test": 0}
        self._marks: dict[str, list[float]] = {"train": [], "test": []}

    def _batch_begin(self, kind: str, batch: int, home: str) -> None:
        state = self._state[kind]
        if state == 0 and batch == 0:
            self.clock.enter(timing.COMPILATION)
            self._marks[kind].append(self.clock.clock())
            self._state[kind] = 1
        elif state == 1:
            self._stop(kind)
        elif state == 2:
            first_start, second_start = self._marks[kind]
            step = self.clock.clock() - second_start
            self.clock.move(min(step, second_start - first_start), timing.COMPILATION, home)
            self._state[kind] = 3

    def _stop(self, kind: str) -> None:
        if self._state[kind] == 1 and self.clock.inside == timing.COMPILATION:
            self.clock.exit()
            self._marks[kind].append(self.clock.clock())
            self._state[kind] = 2

    def _close(self, kind: str) -> None:
        """The pass ended: a first batch still open ends here; no step to give back."""
        if self._state[kind] == 1:
            self._stop(kind)
        if self._state[kind] == 2:
            self._state[kind] = 3

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self._batch_begin("train", batch, timing.TRAINING)

    def on_test_batch_begin(self, batch, logs=None) -> None:
        self._batch_begin("test", batch, timing.VALIDATION)

    def on_test_begin(self, logs=None) -> None:
        self._close("train")  # an epoch of one batch

    def on_test_end(self, logs=None) -> None:
        self._close("test")

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._close("train")

    def on_train_end(self, logs=None) -> None:
        self._close("train")


class ValidationTimer(keras.callbacks.Callback):
    """Charges the validation pass at the end of each epoch to ``validation``, once the
    epoch's training steps have run (``backends.wait_for_steps``: Keras starts validating
    while an asynchronous backend still runs them)."""

    def __init__(self, clock: timing.Phases) -> None:
        super().__init__()
        self.clock = clock

    def on_test_begin(self, logs=None) -> None:
        backends.wait_for_steps(self.model)
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
    if clock is not None:  # the compile timer first: it ends a first batch before validation
        callbacks = [CompileTimer(clock), *callbacks, ValidationTimer(clock)]
    callbacks += [TimedCallback(c, clock, timing.WANDB) for c in wandb]
    if time_limit is not None:
        callbacks.append(time_limit)
    return [*callbacks, *progress]
