"""Ctrl-C and SIGTERM stop a run even when Python swallows the first KeyboardInterrupt."""

import gc
import os
import signal
import time
import weakref

import pytest

from benchmarks import interrupt


class Thing:
    pass


def signal_inside_a_weakref_callback(signum: int) -> None:
    """Deliver ``signum`` while Python runs a weakref callback, as it does during
    TensorFlow's garbage collection: the exception raised there is printed and dropped."""

    def callback(_):
        os.kill(os.getpid(), signum)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the handler runs, and raises, in here
            pass

    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    gc.collect()
    assert ref() is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_swallowed_interrupt_is_raised_again_at_the_next_check(signum, code):
    with interrupt.stop_on_signals():
        signal_inside_a_weakref_callback(signum)  # returns: the first raise was swallowed
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
