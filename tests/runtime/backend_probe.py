"""The per-backend pieces of ``benchmarks.runtime.backends``, run in a process of its own.

Keras picks its backend once, when it is imported, so ``test_backends`` runs this module
once per backend::

    python -m tests.runtime.backend_probe BACKEND ARCHITECTURE[,ARCHITECTURE...]

It starts Keras on BACKEND with one thread, as ``archbench`` does, and with two host
devices (XLA's ``--xla_force_host_platform_device_count``), so that data parallelism has
devices to share a batch between. For every architecture it builds the default model,
trains it one epoch on 64 random images, and checks the compiled forward pass against
``model.predict`` and the gradients against the loss they should lower. It prints one
JSON line of what it found.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=2").strip()


def probe_architecture(name: str) -> dict:
    import keras
    import keras_tuner as kt

    from benchmarks.runtime import backends
    from benchmarks.training.recipe import LOSS
    from models.registry import get_architecture

    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    keras.utils.set_random_seed(0)
    model = get_architecture(name).build(kt.HyperParameters(), (28, 28, 1), 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    forward = backends.forward(model)(backends.on_device(x[:16]))
    predicted = model.predict(x[:16], verbose=0)
    loss_fn = keras.losses.get(LOSS)
    grads = backends.gradients(model, backends.on_device(x), backends.on_device(y), loss_fn)

    def loss_at(step: float) -> float:
        for weight, grad, value in zip(model.trainable_weights, grads, values, strict=True):
            if grad is not None:
                weight.assign(value - step * keras.ops.convert_to_numpy(grad))
        return float(np.mean(keras.ops.convert_to_numpy(loss_fn(y, model(x, training=False)))))

    values = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    before, after = loss_at(0.0), loss_at(1e-3)
    return {
        "params": int(model.count_params()),
        "train_loss": float(history.history["loss"][-1]),
        "forward_type": type(forward).__name__,
        "forward_vs_predict": float(np.max(np.abs(forward - predicted))),
        "gradients": sum(g is not None for g in grads),
        "weights": len(model.trainable_weights),
        "gradient_norm": float(sum(np.linalg.norm(keras.ops.convert_to_numpy(g)) for g in grads
                                   if g is not None)),
        "loss_before": before,
        "loss_after_step": after,
    }


def probe_data_parallel(backend: str) -> dict:
    import keras

    from benchmarks.runtime import backends

    found: dict = {}
    try:
        backends.data_parallel(33)
        found["refused_33"] = ""
    except backends.BackendError as exc:
        found["refused_33"] = str(exc)
    strategy = backends.data_parallel(32)
    scope = strategy.scope() if strategy is not None else None
    if scope is not None:
        scope.__enter__()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(np.ones((64, 4), np.float32), np.zeros((64, 3), np.float32),
                        batch_size=32, epochs=1, verbose=0)
    if scope is not None:
        scope.__exit__(None, None, None)
    found["trained_loss"] = float(history.history["loss"][-1])
    found["replicas"] = (strategy.num_replicas_in_sync if strategy is not None
                         else len(keras.distribution.distribution().device_mesh.devices.ravel()))
    if backend == backends.JAX:
        keras.distribution.set_distribution(None)
    return found


def out_of_memory_errors(backend: str) -> list[bool]:
    """Whether the backend's out-of-memory error, and a plain error, count as out of memory."""
    from benchmarks.runtime import backends

    if backend == backends.JAX:
        import jax

        oom = jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 1 bytes")
    else:
        import tensorflow as tf

        oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    return [backends.is_out_of_memory(oom), backends.is_out_of_memory(ValueError("RESOURCE_EXHAUSTED"))]


def waits_for_steps(backend: str) -> bool | None:
    """On JAX: a weight whose new value is still being computed (a long chain of matrix
    products dispatched asynchronously) is ready once ``wait_for_steps`` returns. None on
    TensorFlow, whose CPU steps run synchronously."""
    from benchmarks.runtime import backends

    if backend != backends.JAX:
        return None
    import jax
    import jax.numpy as jnp
    import keras

    model = keras.Sequential([keras.Input((512,)), keras.layers.Dense(512),
                              keras.layers.Dense(2)])
    bias = model.layers[-1].bias

    @jax.jit
    def slow(kernel):
        product = kernel
        for _ in range(60):
            product = jnp.tanh(product @ kernel)
        return product[0, :2]

    bias.assign(slow(model.layers[0].kernel.value + 1.0))
    pending = not bias.value.is_ready()
    backends.wait_for_steps(model)
    return pending and bias.value.is_ready()


def main(backend: str, names: list[str]) -> dict:
    from benchmarks.runtime import backends

    backends.start(backend, threads=1)
    import keras

    found = {
        "backend": keras.backend.backend(),
        "threads": backends.threads_in_effect(),
        "gpus": backends.gpus(),
        "versions": backends.versions(),
        "out_of_memory": out_of_memory_errors(backend),
        "data_parallel": probe_data_parallel(backend),
        "waits_for_steps": waits_for_steps(backend),
        "architectures": {name: probe_architecture(name) for name in names},
    }
    found["tensorflow_loaded"] = "tensorflow" in sys.modules
    return found


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2].split(","))))
