"""ConvMixer: patch embedding followed by depthwise and pointwise mixing blocks."""

import keras
from keras import layers

from models._blocks import batch_norm
from models.registry import register


def _conv_gelu_bn(x, layer):
    x = layer(x)
    x = layers.Activation("gelu")(x)
    return batch_norm()(x)


@register(family="convmixer")
def convmixer(hp, input_shape, num_classes):
    """ConvMixer: a patch-embedding conv, then residual depthwise + pointwise mixers.

    Reference: Trockman and Kolter, "Patches Are All You Need?" (TMLR 2023).
    Search space: hidden width (32-128), depth (2-6 mixer blocks), patch size (2 or 4)
    and depthwise kernel size (3, 5 or 7).
    """
    dim = hp.Int("dim", 32, 128, step=32, default=64)
    depth = hp.Int("depth", 2, 6, step=2, default=4)
    patch = hp.Choice("patch_size", [2, 4], default=2)
    kernel = hp.Choice("kernel_size", [3, 5, 7], default=5)

    inputs = keras.Input(shape=input_shape)
    x = _conv_gelu_bn(inputs, layers.Conv2D(dim, patch, strides=patch))
    for _ in range(depth):
        mixed = _conv_gelu_bn(x, layers.DepthwiseConv2D(kernel, padding="same"))
        x = layers.Add()([mixed, x])
        x = _conv_gelu_bn(x, layers.Conv2D(dim, 1))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="convmixer")
