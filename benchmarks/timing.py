"""Where the time goes: an architecture's wall time split into named phases.

A ``Phases`` clock charges every instant to exactly one phase, the innermost one
entered (W&B logging inside a training epoch is W&B time, not training time), so the
phases and the remainder, ``other``, add up to the wall time by construction. The
suite's own overhead is everything but training, validation, final evaluation and
measurement. This module is free of TensorFlow: ``reports/`` reads its names.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

TRAINING = "training"  # model.fit, less the phases below that run inside it
COMPILATION = "compilation"  # tracing and compiling a model's training and validation steps
VALIDATION = "validation"  # the validation pass at the end of each epoch
EVALUATION = "evaluation"  # the final models' predictions on the test set
MEASUREMENT = "measurement"  # size, training speed and latency measurements
WANDB = "wandb"  # starting, logging to and finishing W&B runs
TUNER = "tuner"  # Keras Tuner's callbacks (checkpoints of each trial's best epoch)
SEARCH = "search"  # a distributed run's chief, waiting while its workers run the trials
OTHER = "other"  # everything else: building models, bookkeeping, files
PHASES = (TRAINING, COMPILATION, VALIDATION, EVALUATION, MEASUREMENT, WANDB, TUNER, SEARCH, OTHER)
WORK = (TRAINING, COMPILATION, VALIDATION, EVALUATION, MEASUREMENT, SEARCH)  # what the benchmark is for


class Phases:
    """A clock with a stack of phases; time outside any phase is ``other``."""

    clock = staticmethod(time.perf_counter)

    def __init__(self) -> None:
        self.started = self._mark = self.clock()
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[str] = []

    def _charge(self) -> None:
        now = self.clock()
        self.totals[self._stack[-1] if self._stack else OTHER] += now - self._mark
        self._mark = now

    def enter(self, name: str) -> None:
        self._charge()
        self._stack.append(name)

    def exit(self) -> None:
        self._charge()
        self._stack.pop()

    def move(self, seconds: float, source: str, target: str) -> None:
        """Charge ``seconds`` already charged to ``source`` to ``target`` instead."""
        self.totals[source] -= seconds
        self.totals[target] += seconds

    @property
    def inside(self) -> str:
        """The phase being charged now."""
        return self._stack[-1] if self._stack else OTHER

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.enter(name)
        try:
            yield
        finally:
            self.exit()

    def summary(self) -> dict[str, float]:
        """Seconds per phase and ``wall``; the phases sum to ``wall``."""
        self._charge()
        seconds = {name: round(self.totals.get(name, 0.0), 3) for name in PHASES}
        return {"wall": round(self.clock() - self.started, 3), **seconds}


_current: Phases | None = None


@contextlib.contextmanager
def recording(phases: Phases) -> Iterator[Phases]:
    """Make ``phases`` the clock that ``phase`` and ``timed`` charge, inside the block."""
    global _current
    previous, _current = _current, phases
    try:
        yield phases
    finally:
        _current = previous


def current() -> Phases | None:
    return _current


def phase(name: str) -> contextlib.AbstractContextManager:
    """Charge the block to ``name`` on the recording clock (nothing when none records)."""
    return _current.phase(name) if _current is not None else contextlib.nullcontext()


def timed(name: str) -> Callable:
    """Decorator: every call of the function is charged to ``name``."""

    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with phase(name):
                return function(*args, **kwargs)

        return wrapper

    return decorate


def overhead_share(summary: dict[str, float]) -> float:
    """The suite's own share of the wall time: everything that is not WORK."""
    wall = summary.get("wall") or 0.0
    if wall <= 0:
        return 0.0
    return max(0.0, wall - sum(summary.get(name, 0.0) for name in WORK)) / wall


def time_left(seconds_per_architecture: list[float], remaining: int) -> float:
    """The run's remaining seconds, estimated from those measured so far: the mean time of
    the architectures done, for each one left."""
    if not seconds_per_architecture:
        return 0.0
    return sum(seconds_per_architecture) / len(seconds_per_architecture) * remaining


def duration(seconds: float) -> str:
    """Seconds as people say them: 45 s, 12 min 5 s, 1 h 3 min."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
