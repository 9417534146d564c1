"""Measurements, defined once: model size, training speed and inference speed.

Timing rules (for every architecture alike): warm-up work is never timed, the clock is
read only after the result is on the host, and the median of several repeats is reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

TRAIN_WINDOW_SECONDS = 3.0  # training throughput: one timed window at least this long
TRAIN_WINDOW_MIN_BATCHES = 8  # ... and of at least this many batches (as the data allows)
TRAIN_WARMUP_BATCHES = 3  # untimed batches that trace the training step first
LATENCY_CALLS = 50  # batch-1 calls, each timed with its result on the host
THROUGHPUT_BATCH = 256
THROUGHPUT_CALLS = 10  # batch-256 calls, likewise
WARMUP_CALLS = 3
# What every measurement was taken under: written to the manifest and the leaderboard.
SETTINGS = {
    "train_window_seconds": TRAIN_WINDOW_SECONDS,
    "train_window_min_batches": TRAIN_WINDOW_MIN_BATCHES,
    "train_warmup_batches": TRAIN_WARMUP_BATCHES,
    "latency_batch": 1,
    "latency_calls": LATENCY_CALLS,
    "throughput_batch": THROUGHPUT_BATCH,
    "throughput_calls": THROUGHPUT_CALLS,
    "inference_warmup_calls": WARMUP_CALLS,
    "each_call_synchronised": True,
    "statistic": "median, interquartile range",
}


@dataclass(frozen=True)
class Measurements:
    trainable_params: int
    total_params: int
    weight_bytes: int
    macs_per_image: int
    train_images_per_second: float
    epoch_seconds: float
    inference_latency_ms: float
    inference_images_per_second: float
    inference_latency_iqr_ms: float  # interquartile range of the individual calls
    train_images_per_second_iqr: float  # of the individual batches of the timed window
    peak_train_memory_mb: float = math.nan  # of the final training (PeakMemory)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def multiply_accumulates(model: keras.Model) -> int:
    """Multiply-accumulates of one image's forward pass through the convolutions and dense
    layers (nested models included); normalization, pooling and activations are not
    counted. The cost measure a budget's ``max_macs`` caps."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += multiply_accumulates(layer)
            continue
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                  keras.layers.SeparableConv2D, keras.layers.Dense)):
            continue
        inputs = int(layer.input.shape[-1])
        out = layer.output.shape
        positions = int(np.prod(out[1:-1])) if len(out) > 2 else 1
        if isinstance(layer, keras.layers.Dense):
            total += positions * inputs * layer.units
            continue
        window = int(np.prod(layer.kernel_size))
        if isinstance(layer, keras.layers.SeparableConv2D):
            middle = inputs * layer.depth_multiplier
            total += positions * (window * middle + middle * layer.filters)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            total += positions * window * inputs * layer.depth_multiplier
        else:
            total += positions * window * (inputs // layer.groups) * layer.filters
    return total


class PeakMemory:
    """The peak memory of a block, in MiB above what was held when it began: on the first
    GPU, TensorFlow's allocator peak; else the process's resident memory (Linux: its
    high-water mark, reset through ``/proc/self/clear_refs`` at the start). NaN where
    neither can be read. A context manager; ``megabytes`` holds the result."""

    def __init__(self) -> None:
        self.megabytes = math.nan
        self._gpu = bool(tf.config.list_logical_devices("GPU"))
        self._start = math.nan

    def __enter__(self) -> PeakMemory:
        if self._gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
            self._start = tf.config.experimental.get_memory_info("GPU:0")["current"]
        elif _reset_resident_peak():
            self._start = _resident("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self._gpu:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        else:
            peak = _resident("VmHWM")
        self.megabytes = max(0.0, (peak - self._start) / 2**20)


def _reset_resident_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current resident size (Linux 4.0+)
        return True
    except OSError:
        return False


def _resident(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process in bytes (NaN off Linux)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.nan


def model_size(model: keras.Model) -> tuple[int, int, int]:
    """Trainable parameters, total parameters and the bytes their values take."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    weight_bytes = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    return trainable, total, weight_bytes


class _BatchClock(keras.callbacks.Callback):
    """The time at the end of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.ends.append(time.perf_counter())


def training_throughput(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int
) -> tuple[float, float]:
    """Training images per second over one timed window of ``model.fit``, and the
    interquartile range of the window's per-batch rates.

    A few untimed batches trace the training step; their pace sizes the window to at least
    ``TRAIN_WINDOW_SECONDS`` (and ``TRAIN_WINDOW_MIN_BATCHES``), as far as ``x`` holds
    whole batches. The window runs from the end of its first batch (``fit``'s set-up
    excluded) to the end of its last. The model's weights change: measure a copy, or after
    the weights that matter are saved.
    """
    whole = max(1, len(x) // batch_size)
    warmup = min(whole, TRAIN_WARMUP_BATCHES) * batch_size
    clock = _BatchClock()
    model.fit(x[:warmup], y[:warmup], batch_size=batch_size, epochs=1, verbose=0,
              shuffle=False, callbacks=[clock])
    pace = np.diff(clock.ends)
    per_batch = float(np.median(pace)) if len(pace) else clock.ends[-1] - clock.ends[0] or 1e-3
    batches = int(min(whole, max(TRAIN_WINDOW_MIN_BATCHES, 1 + TRAIN_WINDOW_SECONDS / per_batch)))
    clock = _BatchClock()
    n = max(batches, 2) * batch_size if whole >= 2 else len(x)
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
              callbacks=[clock])
    if len(clock.ends) < 2:
        return math.nan, math.nan
    rates = batch_size / np.diff(clock.ends)
    window = clock.ends[-1] - clock.ends[0]
    return (len(clock.ends) - 1) * batch_size / window, _iqr(rates)


def _iqr(values: np.ndarray) -> float:
    low, high = np.percentile(values, [25, 75])
    return float(high - low)


def _call_seconds(fn, batch: tf.Tensor, calls: int) -> np.ndarray:
    """Seconds of each of ``calls`` calls of ``fn(batch)``, after warm-up calls; every call's
    result is on the host before the clock stops and the next call starts, so a device
    that pipelines calls cannot make latency look like throughput."""
    for _ in range(WARMUP_CALLS):
        fn(batch).numpy()
    seconds = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn(batch).numpy()
        seconds[i] = time.perf_counter() - start
    return seconds


def inference_speed(model: keras.Model, sample: np.ndarray,
                    jit_compile: bool = False) -> tuple[float, float, float]:
    """Batch-1 latency (median ms), its interquartile range (ms) and batch-256 throughput
    (images/s at the median call) of the forward pass, compiled as training compiles it
    (``jit_compile``: XLA).

    ``model.predict`` adds tens of milliseconds of per-call overhead, so a traced
    ``tf.function`` of the forward pass is timed instead.
    """
    forward = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True,
                          jit_compile=jit_compile)
    single = tf.constant(sample[:1])
    reps = int(np.ceil(THROUGHPUT_BATCH / len(sample)))
    big = tf.constant(np.concatenate([sample] * reps)[:THROUGHPUT_BATCH])
    latency = _call_seconds(forward, single, LATENCY_CALLS) * 1000.0
    per_batch = _call_seconds(forward, big, THROUGHPUT_CALLS)
    return float(np.median(latency)), _iqr(latency), THROUGHPUT_BATCH / float(np.median(per_batch))


def measure(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int, epoch_images: int,
    jit_compile: bool | None = None, peak_train_memory_mb: float = math.nan,
) -> Measurements:
    """Every measurement of one trained, compiled model.

    Args:
        model: the compiled model (its weights are changed by the training timing).
        x, y: training images and labels to time on.
        batch_size: the budget's batch size.
        epoch_images: images in one epoch of the final training, for ``epoch_seconds``.
        jit_compile: the forward pass compiled with XLA; default: as the model's training is.
        peak_train_memory_mb: the training's peak memory (``PeakMemory``), recorded as is.
    """
    if jit_compile is None:
        jit_compile = getattr(model, "jit_compile", False) is True
    trainable, total, weight_bytes = model_size(model)
    latency_ms, latency_iqr, images_per_second = inference_speed(
        model, x[:THROUGHPUT_BATCH], jit_compile)
    train_speed, train_iqr = training_throughput(model, x, y, batch_size)
    return Measurements(
        trainable_params=trainable,
        total_params=total,
        weight_bytes=weight_bytes,
        macs_per_image=multiply_accumulates(model),
        train_images_per_second=train_speed,
        epoch_seconds=epoch_images / train_speed,
        inference_latency_ms=latency_ms,
        inference_images_per_second=images_per_second,
        inference_latency_iqr_ms=latency_iqr,
        train_images_per_second_iqr=train_iqr,
        peak_train_memory_mb=peak_train_memory_mb,
    )
