"""VGG-style networks: stacks of 3x3 convolutions with batch normalization."""

import keras
from keras import layers

from models._blocks import batch_norm
from models.registry import register


def _conv_bn_relu(x, filters):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    return layers.ReLU()(x)


@register(family="vgg")
def vgg(hp, input_shape, num_classes):
    """VGG-style net: stages of 3x3 conv + BN + ReLU, each closed by max pooling.

    Reference: Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale
    Image Recognition" (ICLR 2015); batch norm from Ioffe and Szegedy (ICML 2015).
    Search space: stages (2 or 3), convolutions per stage (1-2), base width (16-64,
    doubling per stage) and head dropout (0-0.5).
    """
    stages = hp.Int("stages", 2, 3, default=2)
    convs_per_stage = hp.Int("convs_per_stage", 1, 2, default=2)
    width = hp.Choice("width", [16, 32, 64], default=32)
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.3)

    inputs = keras.Input(shape=input_shape)
    x = inputs
    for stage in range(stages):
        for _ in range(convs_per_stage):
            x = _conv_bn_relu(x, width * 2**stage)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="vgg")
