"""TensorFlow's start-up, quiet: its C++ and absl lines go nowhere unless asked for.

TensorFlow 2.21 logs through absl before any logging is set up ("All log messages before
absl::InitializeLog() is called are written to STDERR"), which ``TF_CPP_MIN_LOG_LEVEL``
does not reach, and a machine without a GPU gets a "failed call to cuInit" error line
that reads like a failure. Those lines come while TensorFlow is imported and while it
probes its devices; both happen here, with the process's standard error (file
descriptor 2, where C++ writes) caught. Should the import fail, what was caught is
written out before the exception goes on.
"""

from __future__ import annotations

import os
import sys
import tempfile


def start_tensorflow(debug: bool = False) -> None:
    """Import TensorFlow and probe its devices, once per process; quietly unless ``debug``."""
    if "tensorflow" in sys.modules:
        return
    if debug:
        _start()
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            _start()
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _start() -> None:
    import tensorflow as tf

    tf.config.list_physical_devices()  # where CUDA is probed (and says it failed)
    tf.get_logger().addFilter(expected_retracing)


RETRACING = "triggered tf.function retracing"


def expected_retracing(record) -> bool:
    """A ``logging`` filter: false for TensorFlow's warning that several functions were
    traced again ("5 out of the last 13 calls to ... triggered tf.function retracing"). A
    benchmark builds a new model for every training and times several models in turn, so
    new traces are what it does, and the warning's advice does not apply."""
    return RETRACING not in record.getMessage()
