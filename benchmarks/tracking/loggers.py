"""Training callbacks for W&B: epoch metrics and wall time, per-layer gradient norms and histograms.

wandb's legacy ``WandbCallback`` and its gradient logging are gone, and ``wandb.watch`` is
PyTorch-only, so this callback computes the gradients itself.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from benchmarks.runtime import backends
from benchmarks.training.recipe import LOSS

GRADIENT_BATCH = 64


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (wall time of the epoch, validation included) to the logs."""

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class EpochLogger(keras.callbacks.Callback):
    """Logs each epoch's metrics to ``run`` as ``epoch/<name>`` against ``epoch/epoch``, with
    the learning rate the optimizer ended the epoch at, as W&B's ``WandbMetricsLogger``
    names them. Unlike it, it logs to the run it is given (several runs may be alive at
    once, and ``wandb.log`` logs to the global one), needs no started run until the first
    epoch ends, and has no batch hook."""

    def __init__(self, run) -> None:
        super().__init__()
        self.run = run
        self._defined = False

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not self._defined:
            self.run.define_metric("epoch/*", step_metric="epoch/epoch")
            self._defined = True
        values = {f"epoch/{name}": value for name, value in (logs or {}).items()}
        values["epoch/epoch"] = epoch
        rate = getattr(self.model.optimizer, "learning_rate", None)
        if rate is not None:
            values["epoch/learning_rate"] = float(keras.ops.convert_to_numpy(rate))
        self.run.log(values)


class GradientLogger(keras.callbacks.Callback):
    """At the end of each epoch, log the gradient norm of every trainable weight.

    The gradients are those of the compiled loss on a fixed batch of training images, in
    inference mode (no dropout, batch-norm moving statistics): logging them then changes
    neither the weights, nor the moving statistics, nor the random stream, so a run with
    gradient logging trains exactly like one without.

    Args:
        run: the W&B run to log to.
        x, y: the fixed batch (the first ``GRADIENT_BATCH`` images are used).
        histogram_every: log a histogram of each weight's gradient every this many epochs
            (0 = never).
    """

    def __init__(self, run, x: np.ndarray, y: np.ndarray, histogram_every: int = 5) -> None:
        super().__init__()
        self.run = run
        self.x = backends.on_device(x[:GRADIENT_BATCH])
        self.y = backends.on_device(y[:GRADIENT_BATCH])
        self.histogram_every = histogram_every
        self._defined = False  # the run may still be starting: defined at the first epoch end

    def _compute(self):
        # Not compiled, on purpose: one small batch per epoch, and a tf.function per final
        # run would make TensorFlow warn about retracing.
        return backends.gradients(self.model, self.x, self.y, keras.losses.get(LOSS))

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        import wandb

        if not self._defined:
            self.run.define_metric("gradients/*", step_metric="epoch/epoch")
            self._defined = True
        values = {"epoch/epoch": epoch}
        with_histograms = self.histogram_every and (epoch + 1) % self.histogram_every == 0
        for weight, gradient in zip(self.model.trainable_weights, self._compute(), strict=True):
            if gradient is None:
                continue
            array = keras.ops.convert_to_numpy(gradient)
            values[f"gradients/{weight.path}/norm"] = float(np.linalg.norm(array))
            if with_histograms:
                values[f"gradients/{weight.path}/histogram"] = wandb.Histogram(array.ravel())
        self.run.log(values)
