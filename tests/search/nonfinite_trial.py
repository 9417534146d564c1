"""A search whose loss is NaN by construction, run in a process of its own.

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported, so ``test_tuning``
runs this module once per setting::

    TF_ENABLE_ONEDNN_OPTS=0|1 python -m tests.search.nonfinite_trial OUTPUT_DIR

It prints one JSON line: the architecture's ``results.csv`` row and whether TensorFlow's
oneDNN kernels were on. The trial rows and W&B runs are left in OUTPUT_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras

from models.registry import register


class NaNLoss(keras.layers.Layer):
    """Adds NaN to the training loss: the loss is NaN whatever the kernels compute.

    Poisoning the inputs instead (``x * inf``) does not do it on every CPU: oneDNN's fused
    kernels turn the NaN of ``inf - inf`` into zeros and the loss stays finite.
    """

    def call(self, inputs):
        self.add_loss(keras.ops.convert_to_tensor(float("nan")))
        return inputs


@register
def nan_loss_net(hp, input_shape, num_classes):
    """An MLP whose every training loss is NaN."""
    inputs = keras.Input(shape=input_shape)
    x = NaNLoss()(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def main(output: Path) -> None:
    from tests.helpers.training import bench, tiny_splits

    row, _ = bench("nan_loss_net", output, tiny_splits(), wandb_mode="offline")
    print(json.dumps({"row": row, "onednn": onednn_enabled()}, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
