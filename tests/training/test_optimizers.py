"""The recipe's fused Adam and AdamW (TensorFlow): the same updates as Keras' own, in a
smaller traced step, saved and loaded like Keras'."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks.training import optimizers
from benchmarks.training.recipe import WarmupCosine

SHAPE = (8, 8, 3)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, *SHAPE)).astype("float32"), rng.integers(0, 3, n)


class _Rates(keras.callbacks.Callback):
    """Sets a float learning rate before every batch, as ``recipe.TrainingClock`` does."""

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = 0.01 * (1 + batch % 3)


def _trained(optimizer, epochs=3, jit_compile=False, callbacks=()):
    model = _model()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  jit_compile=jit_compile)
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
              callbacks=list(callbacks))
    return model


def _step(optimizer, grads, variables):
    """One optimizer step as a traced function, as in a training step."""
    return tf.function(lambda: optimizer.apply(grads, variables))


def _schedule():
    return WarmupCosine(0.05, warmup_steps=3, total_steps=12)


@pytest.mark.parametrize(("weight_decay", "xla", "rates"), [
    (0.0, False, "schedule"), (0.05, False, "schedule"), (0.05, False, "set each batch"),
    (0.05, True, "schedule")])
def test_the_fused_optimizer_trains_exactly_as_keras_does(weight_decay, xla, rates):
    learning_rate = _schedule() if rates == "schedule" else 0.01
    callbacks = [] if rates == "schedule" else [_Rates()]
    fused = optimizers.adam(learning_rate, weight_decay)
    assert type(fused).__name__ == ("FusedAdamW" if weight_decay else "FusedAdam")
    plain = (keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay) if weight_decay
             else keras.optimizers.Adam(learning_rate))
    ours = _trained(fused, jit_compile=xla, callbacks=callbacks)
    theirs = _trained(plain, jit_compile=xla, callbacks=callbacks)
    assert int(fused.iterations) == int(plain.iterations) == 12
    moved = False
    for a, b, start in zip(ours.get_weights(), theirs.get_weights(), _model().get_weights(),
                           strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)  # float rounding only
        moved = moved or not np.allclose(a, start)
    assert moved, "the training changed the weights"
    for a, b in zip(fused.variables, plain.variables, strict=True):  # the moments too
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_weight_decay_shrinks_the_weights_as_keras_decoupled_decay_does():
    """With zero gradients Adam's step is zero, so only the decay moves a weight: by
    learning rate times decay of itself, each step."""
    variable = keras.Variable(np.full((3,), 2.0, "float32"))
    optimizer = optimizers.adam(0.1, weight_decay=0.5)
    apply = tf.function(lambda: optimizer.apply([tf.zeros(3)], [variable]))
    apply()
    apply()
    np.testing.assert_allclose(np.asarray(variable), 2.0 * (1 - 0.1 * 0.5) ** 2, rtol=1e-6)


def test_the_fused_step_traces_far_fewer_operations():
    """What compilation time is made of: the operations traced into the training step."""

    def traced_operations(optimizer):
        variables = _model().trainable_variables
        optimizer.build(variables)
        grads = [tf.ones(v.shape) for v in variables]
        step = tf.function(lambda: optimizer.apply(grads, variables))
        return len(step.get_concrete_function().graph.get_operations())

    ours = traced_operations(optimizers.adam(_schedule(), 0.05))
    theirs = traced_operations(keras.optimizers.AdamW(_schedule(), weight_decay=0.05))
    assert ours < theirs / 3, (ours, theirs)


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "loaded_as"), [("tensorflow", "FusedAdamW"), ("jax", "AdamW")])
def test_a_saved_model_loads_with_its_optimizer_and_state(tmp_path, backend, loaded_as):
    """As docs/guide/run.md says: in a fresh process, ``import benchmarks.training.recipe`` first; on JAX
    the fused classes load as Keras' own."""
    model = _trained(optimizers.adam(_schedule(), 0.05), epochs=1)
    model.save(tmp_path / "m.keras")
    code = ("import sys, keras, numpy as np; import benchmarks.training.recipe; "
            "m = keras.saving.load_model(sys.argv[1]); o = m.optimizer; "
            "print(type(o).__name__, int(o.iterations), float(o.weight_decay), "
            "float(np.abs(np.asarray(o.variables[-1])).sum() > 0)); "
            "m.fit(np.zeros((16, 8, 8, 3), 'float32'), np.zeros(16), batch_size=16, verbose=0); "
            "print(int(o.iterations))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.keras")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": backend})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [loaded_as, "4", "0.05", "1.0", "5"], done.stderr[-2000:]


def test_keras_own_update_runs_under_a_distribution_strategy_only(monkeypatch):
    from keras.src.backend.tensorflow.optimizer import TFOptimizer

    calls = []
    original = TFOptimizer._backend_update_step

    def spy(self, *args):
        calls.append(tf.distribute.has_strategy())
        return original(self, *args)

    monkeypatch.setattr(TFOptimizer, "_backend_update_step", spy)
    _trained(optimizers.adam(_schedule(), 0.05), epochs=1)
    assert calls == [], "without a strategy the fused update runs"
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        ours = _trained(optimizers.adam(_schedule(), 0.05))
    assert calls and all(calls), "under a strategy Keras' own update runs"
    theirs = _trained(keras.optimizers.AdamW(_schedule(), weight_decay=0.05))
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_weights_not_in_float32_get_keras_own_update_exactly(dtype):
    """In half precision the kernel would take beta_2 rounded (to 1 in bfloat16)."""
    results = []
    for optimizer in (optimizers.adam(0.01, 0.05), keras.optimizers.AdamW(0.01, weight_decay=0.05)):
        variable = keras.Variable(np.array([1.0, -0.5, 0.25], "float32"), dtype=dtype)
        apply = _step(optimizer, [tf.constant([0.3, -0.2, 0.1], dtype)], [variable])
        for _ in range(3):
            apply()
        results.append(np.asarray(tf.cast(variable.value, tf.float32)))
    np.testing.assert_array_equal(results[0], results[1])


def test_sparse_gradients_get_keras_own_update_exactly():
    results = []
    for optimizer in (optimizers.adam(0.01), keras.optimizers.Adam(0.01)):
        variable = keras.Variable(np.ones((3, 2), "float32"))
        grad = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, 4.0]]), tf.constant([0, 0]),
                                tf.constant([3, 2]))
        apply = _step(optimizer, [grad], [variable])
        apply()
        apply()
        results.append(np.asarray(variable))
    np.testing.assert_array_equal(results[0], results[1])


def test_other_backends_get_keras_own_optimizers(monkeypatch):
    monkeypatch.setattr(optimizers.backends, "current", lambda: "jax")
    assert type(optimizers.adam(1e-3, 0.01)) is keras.optimizers.AdamW
    assert type(optimizers.adam(1e-3)) is keras.optimizers.Adam
