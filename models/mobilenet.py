"""MobileNet-style networks built from depthwise-separable convolutions."""

import keras
from keras import layers

from models._blocks import batch_norm
from models.registry import register

# (output channels as a multiple of the base width, stride) of each separable block.
_BLOCKS = [(2, 1), (4, 2), (4, 1), (8, 2), (8, 1)]


def _separable_block(x, filters, stride):
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    x = batch_norm()(x)
    return layers.ReLU(6.0)(x)


@register(family="mobilenet")
def mobilenet(hp, input_shape, num_classes):
    """MobileNet v1 for small images: a stem conv, then depthwise-separable blocks.

    Reference: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
    Mobile Vision Applications" (2017). Search space: width multiplier (base width 8, 16
    or 32 channels), number of separable blocks (3-5 of a fixed schedule with two
    stride-2 blocks) and head dropout (0-0.5).
    """
    width = hp.Choice("width", [8, 16, 32], default=16)
    num_blocks = hp.Int("blocks", 3, 5, default=5)
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2)

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    x = batch_norm()(x)
    x = layers.ReLU(6.0)(x)
    for multiple, stride in _BLOCKS[:num_blocks]:
        x = _separable_block(x, width * multiple, stride)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mobilenet")
