"""A multi-layer perceptron: the no-convolution baseline every CNN must beat."""

import keras
from keras import layers

from models.registry import register


@register(family="mlp")
def mlp(hp, input_shape, num_classes):
    """Fully connected baseline on flattened pixels.

    Reference: Rumelhart, Hinton and Williams, "Learning representations by
    back-propagating errors" (1986); the Fashion-MNIST paper's MLP baselines (Xiao et al.,
    2017). Search space: hidden layers (1-3), units per layer (128-512) and dropout (0-0.5).
    """
    num_layers = hp.Int("layers", 1, 3, default=2)
    units = hp.Int("units", 128, 512, step=128, default=256)
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.2)

    inputs = keras.Input(shape=input_shape)
    x = layers.Flatten()(inputs)
    for _ in range(num_layers):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mlp")
