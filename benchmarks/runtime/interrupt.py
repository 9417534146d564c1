"""Ctrl-C (or SIGTERM) always stops a run, and stops it cleanly.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens
to be. When that is inside a weakref or ``__del__`` callback, which TensorFlow runs by the
thousand during garbage collection (JAX runs one at every collection), Python would print
"Exception ignored in ..." and go on: the run would carry on as if nothing had been asked.
``stop_on_signals`` remembers the request as well as raising it, keeps a swallowed raise
of it off the console, and ``check``, called before every training and validation step and
at every trial and architecture boundary, raises it again until it is honoured. SIGTERM (a job
scheduler, ``kill``) takes the same path instead of killing the process outright, so the
lock is released and the open W&B run is finished either way.

Nothing finished is lost by stopping: result files are replaced atomically and rows are
written as trials end; the same command resumes.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested: int | None = None  # the signal number of a stop asked for and not yet honoured


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal; ``signum`` is the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM


def _handler(signum: int, frame) -> None:
    global _requested
    _requested = signum
    raise Stopped(signum)


def requested() -> int | None:
    """The signal of a stop asked for during ``stop_on_signals``, or None."""
    return _requested


def check() -> None:
    """Raise ``Stopped`` if a stop was asked for (its first raise may have been swallowed)."""
    if _requested is not None:
        raise Stopped(_requested)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM raise ``Stopped`` and are remembered for
    ``check``. Outside the main thread (where Python allows no handlers) it does nothing."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    previous_hook = sys.unraisablehook
    _requested = None
    for s in SIGNALS:
        signal.signal(s, _handler)
    sys.unraisablehook = _quiet_when_stopped(previous_hook)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook
        _requested = None


def _quiet_when_stopped(hook):
    """``hook`` for every unraisable exception but a swallowed ``Stopped``, which ``check``
    raises again: its traceback would be noise."""

    def quiet(unraisable) -> None:
        if not isinstance(unraisable.exc_value, Stopped):
            hook(unraisable)

    return quiet
