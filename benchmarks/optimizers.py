"""The recipe's optimizer: Adam, or AdamW with decoupled weight decay, built fast to trace.

Under TensorFlow, Keras' Adam traces about twenty operations per weight into every
training step (and AdamW another evaluation of the learning-rate schedule per weight, for
its decay), and tracing them is most of a model's compilation time: a py-spy profile of
a DenseNet's first step put two thirds of its tracing in ``update_step``. The fused
optimizer here does the same arithmetic with TensorFlow's own kernel for it,
``ResourceApplyAdam`` (one operation per weight, the kernel tf.keras's Adam used), and
evaluates the learning rate once per step. Same update, same slot variables, same
saved state: only the graph is smaller. Under tf.distribute (its updates go through the
strategy), with AMSGrad, and on any other backend (JAX compiles the whole step with XLA
anyway), Keras' own implementation runs.
"""

from __future__ import annotations

import functools

import keras

from benchmarks import backends


def adam(learning_rate, weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """AdamW at ``weight_decay`` (Adam at 0), with Keras' defaults otherwise; fused under
    TensorFlow."""
    if backends.current() == backends.TENSORFLOW:
        fused, adamw = _fused_classes()
        return adamw(learning_rate, weight_decay=weight_decay) if weight_decay else fused(learning_rate)
    if weight_decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate)


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
            scalars = {}  # per dtype: the kernel takes them in the weight's own
            for grad, variable in zip(grads, trainable_variables, strict=True):
                if isinstance(grad, tf.IndexedSlices):  # Keras' Adam applies them densely
                    grad = tf.convert_to_tensor(grad)
                value = variable.value if isinstance(variable, keras.Variable) else variable
                dtype = value.dtype
                if dtype not in scalars:
                    scalars[dtype] = [tf.cast(x, dtype) for x in (
                        tf.pow(tf.cast(self.beta_1, tf.float32), step),
                        tf.pow(tf.cast(self.beta_2, tf.float32), step),
                        learning_rate, self.beta_1, self.beta_2, self.epsilon)]
                beta_1_power, beta_2_power, lr, beta_1, beta_2, epsilon = scalars[dtype]
                index = self._get_variable_index(variable)
                tf.raw_ops.ResourceApplyAdam(
                    var=value.handle, m=self._momentums[index].value.handle,
                    v=self._velocities[index].value.handle, beta1_power=beta_1_power,
                    beta2_power=beta_2_power, lr=lr, beta1=beta_1, beta2=beta_2,
                    epsilon=epsilon, grad=tf.cast(grad, dtype))
            return None

        def _apply_weight_decay(self, variables):
            if self.weight_decay is None or self._plain():
                return super()._apply_weight_decay(variables)
            rate = tf.cast(self.learning_rate, tf.float32) * tf.cast(self.weight_decay, tf.float32)
            for variable in variables:
                if self._use_weight_decay(variable):
                    value = variable.value if isinstance(variable, keras.Variable) else variable
                    value.assign_sub(value * tf.cast(rate, value.dtype))
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
