"""Ctrl-C and SIGTERM stop a run even when Python swallows the first KeyboardInterrupt."""

import gc
import signal

import pytest

from benchmarks.runtime import interrupt
from tests.helpers.signals import signal_inside_a_weakref_callback


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_swallowed_interrupt_is_raised_again_at_the_next_check(signum, code, monkeypatch):
    import sys

    printed = []  # what Python would print as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    with interrupt.stop_on_signals():
        signal_inside_a_weakref_callback(signum)  # returns: the first raise was swallowed
        assert printed == [], "the swallowed raise is kept off the console"
        assert interrupt.requested() == signum
        with pytest.raises(interrupt.Stopped) as stopped:
            interrupt.check()
    assert stopped.value.exit_code == code
    assert isinstance(stopped.value, KeyboardInterrupt)


def test_check_does_nothing_without_a_request_and_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    with interrupt.stop_on_signals():
        interrupt.check()
        assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
    assert {s: signal.getsignal(s) for s in interrupt.SIGNALS} == before
    assert interrupt.requested() is None
    interrupt.check()


def test_other_unraisable_exceptions_still_reach_the_previous_hook(monkeypatch):
    import sys

    seen = []

    def hook(unraisable):
        seen.append(type(unraisable.exc_value))

    monkeypatch.setattr(sys, "unraisablehook", hook)
    with interrupt.stop_on_signals():

        class Broken:
            def __del__(self):
                raise ValueError("in a finalizer")

        Broken()
        gc.collect()
    assert seen == [ValueError]
    assert sys.unraisablehook is hook, "restored after the block"


def test_a_requested_stop_ends_a_training_before_its_next_step():
    import keras
    import numpy as np

    from benchmarks.training.callbacks import StopOnRequest

    steps = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            steps.append(batch)
            if batch == 2:
                interrupt._requested = signal.SIGTERM  # as a swallowed raise leaves it

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((40, 2), "float32")
    try:
        with pytest.raises(interrupt.Stopped):
            model.fit(x, x[:, :1], batch_size=2, epochs=1, verbose=0,
                      callbacks=[Count(), StopOnRequest()])
    finally:
        interrupt._requested = None
    assert steps == [0, 1, 2], "stopped at the start of step 3 of an epoch of 20"
