"""CIFAR-style residual networks (the ResNet-20 family), depth and width tunable."""

import keras
from keras import layers

from models._blocks import batch_norm
from models.registry import register


def _basic_block(x, filters, stride):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    y = batch_norm()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = batch_norm()(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut)
        shortcut = batch_norm()(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


@register(family="resnet")
def resnet(hp, input_shape, num_classes):
    """ResNet for small images: 3 stages of basic blocks, depth 6n+2 (8, 14 or 20).

    Reference: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016),
    section 4.2 (the CIFAR-10 networks: ResNet-20 is n=3 with widths 16/32/64).
    Search space: blocks per stage n (1-3, so depth 8-20) and base width (16 or 32,
    doubling per stage). Projection shortcuts where the shape changes.
    """
    blocks = hp.Int("blocks_per_stage", 1, 3, default=1)
    width = hp.Choice("width", [16, 32], default=16)

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    x = batch_norm()(x)
    x = layers.ReLU()(x)
    for stage in range(3):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, width * 2**stage, stride)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"resnet{6 * blocks + 2}")
