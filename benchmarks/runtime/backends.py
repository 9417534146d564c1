"""Keras' backend: chosen before Keras loads, and the few things each backend does its own way.

Everything else in archbench is backend-neutral Keras 3 (``keras.ops``, layers, ``fit``,
NumPy arrays in and out). What differs per backend lives here, each piece imported only
where its backend is the one in use: a JAX run never imports TensorFlow.

PyTorch is not offered: its PyPI wheel brings the CUDA libraries (gigabytes) even to a CPU
machine, beyond what CI installs in its time, and a backend is offered only where its tests
run (docs/guide/backends.md, "PyTorch").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

TENSORFLOW, JAX = "tensorflow", "jax"
BACKENDS = (TENSORFLOW, JAX)
ENV = "KERAS_BACKEND"  # Keras reads it at import
WORKER_SLOT = "ARCHBENCH_WORKER_SLOT"  # a local worker's index: which cores its threads get


class BackendError(ValueError):
    """A backend that cannot be used here, or not in this process."""


def requested(flag: str | None) -> str:
    """The backend asked for: ``--backend``, else ``KERAS_BACKEND``, else TensorFlow."""
    return flag or os.environ.get(ENV) or TENSORFLOW


def check_name(name: str) -> None:
    """Raises BackendError unless ``name`` is an offered backend."""
    if name == "torch":
        raise BackendError("backend 'torch' is not offered: PyTorch's PyPI wheel brings the CUDA "
                           "libraries, beyond what CI can install and test; choose tensorflow or jax")
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def select(name: str) -> None:
    """Make ``name`` the backend Keras loads with. Call it before Keras is imported; once
    Keras is loaded, only the backend it loaded with can be selected.

    Raises:
        BackendError: unknown, or Keras already loaded with another backend.
    """
    check_name(name)
    if "keras" in sys.modules:
        loaded = current()
        if loaded != name:
            raise BackendError(f"Keras is already loaded with the {loaded} backend in this "
                               f"process; backend {name} must be chosen before it loads")
        return
    os.environ[ENV] = name


def current() -> str:
    """The backend Keras runs on (imports Keras)."""
    import keras

    return keras.backend.backend()


def start(name: str, debug: bool = False, threads: int | None = None) -> None:
    """Select ``name``, limit its CPU threads, load it and probe its devices, quietly unless
    ``debug`` (TensorFlow's start-up lines; ``benchmarks.runtime.startup``)."""
    select(name)
    if name == JAX:
        set_threads(threads, before_start=True)
        import jax

        from benchmarks.runtime.workarounds import keep_tensorflow_out

        jax.devices()  # where the platforms are probed
        keep_tensorflow_out()
    else:
        from benchmarks.runtime.startup import start_tensorflow

        start_tensorflow(debug=debug)
        set_threads(threads)
    import keras

    if keras.backend.backend() != name:  # keras.json or an earlier import overrode it
        raise BackendError(f"Keras loaded with the {keras.backend.backend()} backend, not {name}")


def set_threads(threads: int | None, before_start: bool = False) -> None:
    """Limit the CPU threads of this process's computations to ``threads`` (None: the
    backend's own choice, one per core).

    TensorFlow: its intra- and inter-op thread pools. JAX has no thread setting (XLA sizes
    its pool from the cores it may run on), so the process is pinned to ``threads`` cores
    before JAX starts: a local worker (``WORKER_SLOT``) gets its own cores.
    """
    if not threads:
        return
    if current_or_selected() == JAX:
        if not before_start or not hasattr(os, "sched_setaffinity"):
            return
        cores = sorted(os.sched_getaffinity(0))
        slot = int(os.environ.get(WORKER_SLOT, "0"))
        first = (slot * threads) % len(cores)
        os.sched_setaffinity(0, [cores[(first + i) % len(cores)]
                                 for i in range(min(threads, len(cores)))])
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def current_or_selected() -> str:
    """The loaded backend, or the one Keras will load with."""
    return current() if "keras" in sys.modules else requested(None)


def threads_in_effect() -> dict[str, int]:
    """The thread settings in effect, for the manifest: TensorFlow's pools (0: one per
    core), or the cores a JAX process may run on."""
    if current() == JAX:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        return {"cores": cores}
    import tensorflow as tf

    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def gpus() -> list[tuple[str, tuple[int, int]]]:
    """The GPUs this backend sees: (name, CUDA compute capability; (0, 0) when unknown)."""
    if current() == JAX:
        import jax

        try:
            devices = jax.devices("gpu")
        except RuntimeError:  # no GPU platform
            return []
        return [(d.device_kind, _capability(getattr(d, "compute_capability", None)))
                for d in devices]
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append((details.get("device_name", gpu.name),
                      tuple(details.get("compute_capability") or (0, 0))))
    return found


def _capability(value: Any) -> tuple[int, int]:
    try:
        major, minor = str(value).split(".")[:2]
        return int(major), int(minor)
    except (TypeError, ValueError):
        return 0, 0


def versions() -> dict[str, Any]:
    """The backend's name and the versions of what computes, for the manifest."""
    if current() == JAX:
        import jax
        import jaxlib

        return {"backend": JAX, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "platform": jax.default_backend()}
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    cuda = build.get("is_cuda_build")
    return {"backend": TENSORFLOW, "tensorflow": tf.__version__,
            "cuda": build.get("cuda_version") if cuda else None,
            "cudnn": build.get("cudnn_version") if cuda else None}


def on_device(array: np.ndarray):
    """``array`` as the backend's tensor on its default device (moved once, not per call)."""
    if current() == JAX:
        import jax

        return jax.device_put(array)
    import tensorflow as tf

    return tf.constant(array)


def wait_for_steps(model) -> None:
    """Returns once the steps already dispatched for ``model`` have run.

    JAX (and TensorFlow on a GPU) runs steps asynchronously: Keras' ``fit`` starts the
    validation pass, and calls its first hook, while training steps are still queued, so
    a clock read there would charge their time to validation (on JAX even on a CPU).
    Reading the smallest weight back waits for the last step that wrote it, and each step
    writes every trainable weight.
    """
    import keras

    weights = model.trainable_variables or model.variables
    if weights:
        smallest = min(weights, key=lambda v: int(np.prod(v.shape)))
        keras.ops.convert_to_numpy(smallest.value)


def forward(model, jit_compile: bool = False) -> Callable[[Any], np.ndarray]:
    """The model's compiled inference pass, returning NumPy (so its result is on the host
    when a call returns): a traced ``tf.function`` (with XLA when ``jit_compile``) on
    TensorFlow; on JAX, ``jax.jit`` of ``stateless_call`` over the weights as they are at
    each call (a training in between replaces them; JAX always compiles with XLA)."""
    if current() == JAX:
        import jax

        compiled = jax.jit(lambda t, o, batch: model.stateless_call(t, o, batch,
                                                                    training=False)[0])

        def call(batch):
            return np.asarray(compiled([v.value for v in model.trainable_variables],
                                       [v.value for v in model.non_trainable_variables], batch))

        return call
    import tensorflow as tf

    compiled = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True,
                           jit_compile=jit_compile)
    return lambda batch: compiled(batch).numpy()


def gradients(model, x: np.ndarray, y: np.ndarray, loss_fn) -> list:
    """Gradients of ``mean(loss_fn(y, model(x)))`` in inference mode with respect to each
    trainable weight (None where a weight has none), without changing any state."""
    import keras

    if current() == JAX:
        import jax

        other = [v.value for v in model.non_trainable_variables]

        def loss(trainable):
            predictions, _ = model.stateless_call(trainable, other, x, training=False)
            return keras.ops.mean(loss_fn(y, predictions))

        return jax.grad(loss)([v.value for v in model.trainable_variables])
    import tensorflow as tf

    with tf.GradientTape() as tape:
        predictions = model(x, training=False)
        loss = keras.ops.mean(loss_fn(y, predictions))
    return tape.gradient(loss, model.trainable_weights)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the backend's out-of-memory error."""
    if type(exc).__name__ == "ResourceExhaustedError":  # TensorFlow
        return True
    return "RESOURCE_EXHAUSTED" in str(exc) and type(exc).__module__.startswith("jax")


def device_memory() -> tuple[float, float] | None:
    """(bytes in use, peak bytes) of the first GPU, None without one. TensorFlow's peak is
    reset here, so it is the peak from now on; JAX's cannot be reset (``PeakMemory``)."""
    if current() == JAX:
        import jax

        try:
            stats = jax.devices("gpu")[0].memory_stats() or {}
        except RuntimeError:
            return None
        return float(stats.get("bytes_in_use", np.nan)), float(stats.get("peak_bytes_in_use", np.nan))
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return None
    info = tf.config.experimental.get_memory_info("GPU:0")
    return float(info["current"]), float(info["peak"])


def reset_device_peak() -> None:
    """Reset the first GPU's peak memory where the backend can (TensorFlow)."""
    if current() != JAX:
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")


def data_parallel(batch_size: int):
    """Make every training of this process data-parallel over every device of the backend.

    Returns:
        TensorFlow: the ``MirroredStrategy`` to build and train each model under. JAX: None,
        with ``keras.distribution.DataParallel`` set for the process.

    Raises:
        BackendError: a global batch that the devices cannot share evenly (JAX).
    """
    if current() == JAX:
        import jax
        import keras

        devices = jax.devices()
        if batch_size % len(devices):
            raise BackendError(f"--batch-size {batch_size} cannot be split evenly over "
                               f"{len(devices)} devices for --distribute mirrored on jax")
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()
