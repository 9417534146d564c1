"""DenseNet-BC: dense blocks of bottleneck layers joined by compressing transitions."""

import keras
from keras import layers

from models._blocks import bn_relu, conv
from models.registry import register

COMPRESSION = 0.5  # the "C" of DenseNet-BC: a transition halves the channels



def _dense_layer(x, growth):
    y = conv(4 * growth, 1)(bn_relu(x))  # the "B": a 1x1 bottleneck of 4k channels
    y = conv(growth, 3)(bn_relu(y))
    return layers.Concatenate()([x, y])


def _transition(x):
    x = conv(int(x.shape[-1] * COMPRESSION), 1)(bn_relu(x))
    return layers.AveragePooling2D(2, padding="same")(x)


@register(family="densenet")
def densenet(hp, input_shape, num_classes):
    """DenseNet-BC for small images: 3 dense blocks of bottleneck layers, growth rate k.

    Reference: Huang et al., "Densely Connected Convolutional Networks" (CVPR 2017),
    the CIFAR networks: depth L = 6n+4 with n bottleneck layers (BN-ReLU-1x1 conv of 4k,
    BN-ReLU-3x3 conv of k) per block, transitions of compression 0.5 and 2x2 average
    pooling, a 2k-channel 3x3 stem. Search space: depth (16, 22, 40 or 100) and growth
    rate k (12 or 24); DenseNet-BC-100 with k=12 is reachable. Default depth 16, k=12.
    """
    depth = hp.Choice("depth", [16, 22, 40, 100], default=16)
    growth = hp.Choice("growth_rate", [12, 24], default=12)

    inputs = keras.Input(shape=input_shape)
    x = conv(2 * growth, 3)(inputs)
    for block in range(3):
        if block > 0:
            x = _transition(x)
        for _ in range((depth - 4) // 6):
            x = _dense_layer(x, growth)
    x = layers.GlobalAveragePooling2D()(bn_relu(x))
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"densenet_bc_{depth}_{growth}")
