"""Wide residual networks (WRN-d-k): pre-activation ResNets made shallow and wide."""

import keras
from keras import layers

from models._blocks import bn_relu, conv
from models.registry import register


def _wide_block(x, filters, stride, dropout):
    activated = bn_relu(x)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        # As in the paper's code, the projection shares the block's pre-activation.
        shortcut = conv(filters, 1, stride)(activated)
    y = conv(filters, 3, stride)(activated)
    y = layers.Dropout(dropout)(bn_relu(y))
    y = conv(filters, 3)(y)
    return layers.Add()([y, shortcut])


@register(family="wide_resnet")
def wide_resnet(hp, input_shape, num_classes):
    """Wide ResNet WRN-d-k: 3 stages of pre-activation basic blocks, widths 16k/32k/64k.

    Reference: Zagoruyko and Komodakis, "Wide Residual Networks" (BMVC 2016): depth
    d = 6n+4 with n blocks per stage, widen factor k, dropout between a block's convs.
    Search space: depth (10, 16, 22 or 28), widen factor k (1, 2, 4, 8 or 10; WRN-28-10
    is reachable) and dropout (0-0.3). Default WRN-10-1 without dropout: as costly as the
    resnet default (widen factor 2 doubles the channels and so about quadruples the MACs).
    """
    depth = hp.Choice("depth", [10, 16, 22, 28], default=10)
    widen = hp.Choice("widen_factor", [1, 2, 4, 8, 10], default=1)
    dropout = hp.Float("dropout", 0.0, 0.3, step=0.1, default=0.0)

    inputs = keras.Input(shape=input_shape)
    x = conv(16, 3)(inputs)
    for stage in range(3):
        for block in range((depth - 4) // 6):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _wide_block(x, 16 * widen * 2**stage, stride, dropout)
    x = layers.GlobalAveragePooling2D()(bn_relu(x))
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"wrn_{depth}_{widen}")
