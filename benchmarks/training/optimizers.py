"""The recipe's optimizer: Adam, or AdamW with decoupled weight decay, built fast to trace.

Under TensorFlow, Keras' Adam traces about twenty operations per weight into every
training step (and AdamW another evaluation of the learning-rate schedule per weight, for
its decay), and tracing them is most of a model's compilation time (see
docs/results/performance.md, "The fused Adam update"). The fused optimizer here does the
same arithmetic with TensorFlow's own kernel for it, ``ResourceApplyAdam`` (one operation
per weight, the kernel tf.keras's Adam used), and evaluates the learning rate once per
step. Same update, same slot variables, same saved state: only the graph is smaller.
Under tf.distribute (its updates go through the strategy), with AMSGrad, for weights that
are not float32 or have sparse gradients, and on any other backend (JAX compiles the whole step with XLA anyway), Keras' own
implementation runs; there a model saved on TensorFlow loads with Keras' classes.
"""

from __future__ import annotations

import functools

import keras

from benchmarks.runtime import backends


def adam(learning_rate, weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """AdamW at ``weight_decay`` (Adam at 0), with Keras' defaults otherwise; fused under
    TensorFlow."""
    plain, decayed = (_fused_classes() if backends.current() == backends.TENSORFLOW
                      else (keras.optimizers.Adam, keras.optimizers.AdamW))
    return decayed(learning_rate, weight_decay=weight_decay) if weight_decay else plain(learning_rate)


def _value(variable):
    """The backend's variable behind a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


@functools.cache
def _fused_classes() -> tuple[type, type]:
    """The fused Adam and AdamW classes (TensorFlow is imported only here)."""
    import tensorflow as tf

    class _Fused:
        """Overrides of Keras' TensorFlow optimizer: the update and the decay, fused."""

        def _plain(self) -> bool:  # where Keras' own code must run
            return tf.distribute.has_strategy() or self.amsgrad

        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            if self._plain():
                return super()._backend_update_step(grads, trainable_variables, learning_rate)
            step = tf.cast(self.iterations + 1, tf.float32)
            scalars = None
            for grad, variable in zip(grads, trainable_variables, strict=True):
                value = _value(variable)
                if value.dtype != tf.float32 or isinstance(grad, tf.IndexedSlices):
                    # Keras' own update: half precision would round beta_2 (to 1 in
                    # bfloat16), and Keras squares sparse slices before summing repeats
                    self.update_step(grad, variable, learning_rate)
                    continue
                if scalars is None:  # once a step, not once a weight
                    scalars = [tf.cast(x, tf.float32) for x in (
                        tf.pow(tf.cast(self.beta_1, tf.float32), step),
                        tf.pow(tf.cast(self.beta_2, tf.float32), step),
                        learning_rate, self.beta_1, self.beta_2, self.epsilon)]
                beta_1_power, beta_2_power, lr, beta_1, beta_2, epsilon = scalars
                index = self._get_variable_index(variable)
                tf.raw_ops.ResourceApplyAdam(
                    var=value.handle, m=_value(self._momentums[index]).handle,
                    v=_value(self._velocities[index]).handle, beta1_power=beta_1_power,
                    beta2_power=beta_2_power, lr=lr, beta1=beta_1, beta2=beta_2,
                    epsilon=epsilon, grad=tf.cast(grad, tf.float32))
            return None

        def _apply_weight_decay(self, variables):
            if self.weight_decay is None or self._plain():
                return super()._apply_weight_decay(variables)
            others = [v for v in variables if _value(v).dtype != tf.float32]
            if others:  # Keras' own formula in their dtype
                super()._apply_weight_decay(others)
            rate = tf.cast(self.learning_rate, tf.float32) * tf.cast(self.weight_decay, tf.float32)
            for variable in variables:
                value = _value(variable)
                if value.dtype == tf.float32 and self._use_weight_decay(variable):
                    value.assign_sub(value * rate)
            return None

    register = keras.saving.register_keras_serializable(package="archbench")

    @register
    class FusedAdam(_Fused, keras.optimizers.Adam):
        """Keras' Adam, its update fused (``ResourceApplyAdam``)."""

    @register
    class FusedAdamW(_Fused, keras.optimizers.AdamW):
        """Keras' AdamW, its update and decay fused."""

    return FusedAdam, FusedAdamW


if backends.current() == backends.TENSORFLOW:  # saved models name them: known on import
    _fused_classes()
else:  # a model saved on TensorFlow loads elsewhere with Keras' classes, its state kept
    keras.saving.get_custom_objects().update(
        {"archbench>FusedAdam": keras.optimizers.Adam, "archbench>FusedAdamW": keras.optimizers.AdamW})
