"""Signals delivered at awkward moments."""

from __future__ import annotations

import gc
import os
import time
import weakref


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
