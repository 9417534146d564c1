"""Measurements, defined once: model size, training speed and inference speed.

Timing rules (for every architecture alike): warm-up work is never timed, the clock is
read only after the result is on the host, and the median of several repeats is reported.
Training speed is that of the first final training itself (``TrainingSpeed``): every step
after its first, not a separate window; inference speeds are timed after the last
training, interleaved across architectures (``Meter``, ``benchmarks.run.speeds``).
"""

from __future__ import annotations

import ctypes
import math
import time
from dataclasses import asdict, dataclass

import keras
import numpy as np

from benchmarks.runtime import backends

TRAIN_WINDOW_SECONDS = 3.0  # training_throughput (perf): one timed window at least this long
TRAIN_WINDOW_MIN_BATCHES = 8  # ... and of at least this many batches (as the data allows)
TRAIN_WARMUP_BATCHES = 3  # untimed batches that trace the training step first
LATENCY_CALLS = 50  # batch-1 calls, each timed with its result on the host
THROUGHPUT_BATCH = 256
THROUGHPUT_CALLS = 10  # batch-256 calls, likewise
WARMUP_CALLS = 3
# What every measurement was taken under: written to the manifest and the leaderboard.
SETTINGS = {
    "train_speed": "each step of the first final training after its first",  # TrainingSpeed
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
    GPU, the backend allocator's peak (TensorFlow's is reset at the start; JAX's cannot be,
    so a block that does not raise the process's peak gets NaN); else the process's
    resident memory (Linux: its high-water mark, reset through ``/proc/self/clear_refs`` at
    the start). NaN where neither can be read. A context manager; ``megabytes`` holds the
    result."""

    def __init__(self) -> None:
        self.megabytes = math.nan
        self._gpu = backends.device_memory() is not None
        self._start = self._peak_before = math.nan

    def __enter__(self) -> PeakMemory:
        if self._gpu:
            backends.reset_device_peak()
            self._start, self._peak_before = backends.device_memory()
        elif _reset_resident_peak():
            _release_free_heap()
            self._start = _resident("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self._gpu:
            peak = backends.device_memory()[1]
            if not peak > self._peak_before and self._peak_before > self._start:
                return  # an earlier block's peak, not reset (JAX): unknown
        else:
            peak = _resident("VmHWM")
        self.megabytes = max(0.0, (peak - self._start) / 2**20)


def _release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``) so that a
    block reusing them counts as growth: pages freed but still resident (a split's copy
    made just before, say) would otherwise hide a small network's training memory."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


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


class Meter:
    """The inference speed samples of one model, gathered in rounds so that several models'
    rounds can be interleaved (A, B, C, A, B, C, ...) and a machine's drift falls on all.

    Set-up warms the forward pass up untimed: ``WARMUP_CALLS`` calls at batch 1 and 256
    (compiled with XLA when the training is: ``jit_compile``). The training speed is not
    timed here: ``TrainingSpeed`` takes it from a training's own steps.
    """

    def __init__(self, model: keras.Model, x: np.ndarray, jit_compile: bool | None = None) -> None:
        if jit_compile is None:
            jit_compile = getattr(model, "jit_compile", False) is True
        self.forward = backends.forward(model, jit_compile)
        self.single, self.big = _inference_batches(x)
        for _ in range(WARMUP_CALLS):
            self.forward(self.single)
            self.forward(self.big)
        self.latency: list[float] = []  # seconds per batch-1 call
        self.batch_calls: list[float] = []  # seconds per batch-256 call

    def round(self, share: float = 1.0) -> None:
        """``share`` of the latency and throughput calls."""
        self.latency += list(_call_seconds(self.forward, self.single,
                                           max(1, round(LATENCY_CALLS * share)), warmup=0))
        self.batch_calls += list(_call_seconds(self.forward, self.big,
                                               max(1, round(THROUGHPUT_CALLS * share)), warmup=0))

    def speeds(self) -> dict[str, float]:
        """The inference fields of ``Measurements`` from every round so far."""
        latency_ms = np.asarray(self.latency) * 1000.0
        return {
            "inference_latency_ms": float(np.median(latency_ms)),
            "inference_images_per_second": THROUGHPUT_BATCH / float(np.median(self.batch_calls)),
            "inference_latency_iqr_ms": _iqr(latency_ms),
        }


def training_speeds(images: int, seconds: float, rates: list[float],
                    epoch_images: int) -> dict[str, float]:
    """The training fields of ``Measurements``: ``images`` trained in ``seconds`` of timed
    steps, ``rates`` the images/s of each step (NaN where nothing was timed)."""
    train = images / seconds if seconds else math.nan
    return {
        "train_images_per_second": train,
        "epoch_seconds": epoch_images / train,
        "train_images_per_second_iqr": _iqr(np.asarray(rates)) if rates else math.nan,
    }


class TrainingSpeed(keras.callbacks.Callback):
    """The training speed of the training it is a callback of: each step after the
    training's first (which traces and compiles it) is timed from its start to its results
    on the host, so validation passes and the time between steps are left out. Its batch
    hooks make Keras wait for each step's results (as a time budget's clock does).
    ``speeds`` gives the training fields of ``Measurements``."""

    clock = staticmethod(time.perf_counter)

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.steps: list[float] = []  # seconds of each timed step
        self._first, self._start = True, None

    def on_train_begin(self, logs=None) -> None:
        self._first = True

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self._start = self.clock()

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self._start is not None and not self._first:
            self.steps.append(self.clock() - self._start)
        self._first, self._start = False, None

    def speeds(self, epoch_images: int) -> dict[str, float]:
        seconds = float(np.sum(self.steps)) if self.steps else 0.0
        rates = [self.batch_size / s for s in self.steps if s > 0]
        return training_speeds(len(self.steps) * self.batch_size, seconds, rates, epoch_images)


def training_throughput(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int
) -> tuple[float, float]:
    """Training images per second of ``model.fit`` over one window of whole batches of
    ``x``, timed as a run's final training is (``TrainingSpeed``), and the interquartile
    range of its per-step rates. ``TRAIN_WARMUP_BATCHES`` untimed batches trace the step
    first; their pace sizes the window to at least ``TRAIN_WINDOW_SECONDS`` (and
    ``TRAIN_WINDOW_MIN_BATCHES``), as far as ``x`` holds whole batches."""
    whole = max(1, len(x) // batch_size)
    warmup = TrainingSpeed(batch_size)
    n = min(whole, TRAIN_WARMUP_BATCHES) * batch_size
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
              callbacks=[warmup])
    per_step = float(np.median(warmup.steps)) if warmup.steps else 1e-3
    batches = min(whole, max(TRAIN_WINDOW_MIN_BATCHES, math.ceil(1 + TRAIN_WINDOW_SECONDS / per_step)))
    window = TrainingSpeed(batch_size)
    n = batches * batch_size if whole >= 2 else len(x)
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
              callbacks=[window])
    speeds = window.speeds(len(x))
    return speeds["train_images_per_second"], speeds["train_images_per_second_iqr"]


def _iqr(values: np.ndarray) -> float:
    low, high = np.percentile(values, [25, 75])
    return float(high - low)


def _inference_batches(sample: np.ndarray) -> tuple:
    """Batches of 1 and ``THROUGHPUT_BATCH`` images (``sample`` repeated as needed), on the
    backend's device."""
    sample = sample[:THROUGHPUT_BATCH]
    reps = int(np.ceil(THROUGHPUT_BATCH / len(sample)))
    return (backends.on_device(sample[:1]),
            backends.on_device(np.concatenate([sample] * reps)[:THROUGHPUT_BATCH]))


def _call_seconds(fn, batch, calls: int, warmup: int = WARMUP_CALLS) -> np.ndarray:
    """Seconds of each of ``calls`` calls of ``fn(batch)`` (``backends.forward``: its result
    is on the host when it returns), after ``warmup`` calls; so the clock stops only when
    a call is done, and a device that pipelines calls cannot make latency look like
    throughput."""
    for _ in range(warmup):
        fn(batch)
    seconds = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn(batch)
        seconds[i] = time.perf_counter() - start
    return seconds


def inference_speed(model: keras.Model, sample: np.ndarray,
                    jit_compile: bool = False) -> tuple[float, float, float]:
    """One round of ``Meter``: batch-1 latency (median ms), its interquartile range (ms) and
    batch-256 throughput (images/s at the median call) of the forward pass (``model.predict``
    adds tens of milliseconds of per-call overhead, so the compiled pass of
    ``backends.forward`` is timed instead)."""
    meter = Meter(model, sample, jit_compile)
    meter.round()
    speeds = meter.speeds()
    return (speeds["inference_latency_ms"], speeds["inference_latency_iqr_ms"],
            speeds["inference_images_per_second"])


def sizes(model: keras.Model, peak_train_memory_mb: float = math.nan) -> Measurements:
    """What is known of a trained model without timing it: its sizes, its multiply-
    accumulates and ``peak_train_memory_mb``; the speeds are NaN until measured."""
    trainable, total, weight_bytes = model_size(model)
    nan = math.nan
    return Measurements(
        trainable_params=trainable, total_params=total, weight_bytes=weight_bytes,
        macs_per_image=multiply_accumulates(model), train_images_per_second=nan,
        epoch_seconds=nan, inference_latency_ms=nan, inference_images_per_second=nan,
        inference_latency_iqr_ms=nan, train_images_per_second_iqr=nan,
        peak_train_memory_mb=peak_train_memory_mb)

