"""Measurements, defined once: model size, training speed and inference speed.

Timing rules (for every architecture alike): warm-up work is never timed, the clock is
read only after the result is on the host, and the median of several repeats is reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

TRAIN_TIMING_BATCHES = 8  # batches per timed training repeat
TRAIN_TIMING_REPEATS = 3
LATENCY_CALLS = 30  # batch-1 calls per timed repeat
THROUGHPUT_BATCH = 256
THROUGHPUT_CALLS = 3  # batch-256 calls per timed repeat
REPEATS = 5
WARMUP_CALLS = 3
# What every measurement was taken under: written to the manifest and the leaderboard.
SETTINGS = {
    "train_timing_batches": TRAIN_TIMING_BATCHES,
    "train_timing_repeats": TRAIN_TIMING_REPEATS,
    "train_warmup_epochs": 1,
    "latency_batch": 1,
    "latency_calls": LATENCY_CALLS,
    "throughput_batch": THROUGHPUT_BATCH,
    "throughput_calls": THROUGHPUT_CALLS,
    "inference_repeats": REPEATS,
    "inference_warmup_calls": WARMUP_CALLS,
    "statistic": "median",
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


def model_size(model: keras.Model) -> tuple[int, int, int]:
    """Trainable parameters, total parameters and the bytes their values take."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    weight_bytes = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    return trainable, total, weight_bytes


def training_throughput(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int
) -> float:
    """Training images per second through ``model.fit`` on already-traced functions.

    One untimed epoch traces and warms up the training step; then each repeat fits
    ``TRAIN_TIMING_BATCHES`` batches and the median repeat is used. The model's weights
    change: measure a copy, or after the weights that matter are saved.
    """
    n = min(len(x), TRAIN_TIMING_BATCHES * batch_size)
    x, y = x[:n], y[:n]
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    times = []
    for _ in range(TRAIN_TIMING_REPEATS):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def _timed_calls(fn, batch: tf.Tensor, calls: int) -> float:
    """Median seconds per call of ``fn(batch)`` over REPEATS repeats of ``calls`` calls."""
    for _ in range(WARMUP_CALLS):
        fn(batch).numpy()
    per_call = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            out = fn(batch)
        out.numpy()  # the clock stops only once the last result is on the host
        per_call.append((time.perf_counter() - start) / calls)
    return statistics.median(per_call)


def inference_speed(model: keras.Model, sample: np.ndarray) -> tuple[float, float]:
    """Batch-1 latency (ms) and batch-256 throughput (images/s) of a compiled forward call.

    ``model.predict`` adds tens of milliseconds of per-call overhead, so a traced
    ``tf.function`` of the forward pass is timed instead.
    """
    forward = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    single = tf.constant(sample[:1])
    reps = int(np.ceil(THROUGHPUT_BATCH / len(sample)))
    big = tf.constant(np.concatenate([sample] * reps)[:THROUGHPUT_BATCH])
    latency = _timed_calls(forward, single, LATENCY_CALLS)
    per_batch = _timed_calls(forward, big, THROUGHPUT_CALLS)
    return latency * 1000.0, THROUGHPUT_BATCH / per_batch


def measure(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int, epoch_images: int
) -> Measurements:
    """Every measurement of one trained, compiled model.

    Args:
        model: the compiled model (its weights are changed by the training timing).
        x, y: training images and labels to time on.
        batch_size: the budget's batch size.
        epoch_images: images in one epoch of the final training, for ``epoch_seconds``.
    """
    trainable, total, weight_bytes = model_size(model)
    latency_ms, images_per_second = inference_speed(model, x[:THROUGHPUT_BATCH])
    train_speed = training_throughput(model, x, y, batch_size)
    return Measurements(
        trainable_params=trainable,
        total_params=total,
        weight_bytes=weight_bytes,
        macs_per_image=multiply_accumulates(model),
        train_images_per_second=train_speed,
        epoch_seconds=epoch_images / train_speed,
        inference_latency_ms=latency_ms,
        inference_images_per_second=images_per_second,
    )
