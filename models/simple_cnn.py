"""The tutorial's two-convolution CNN (the W&B Fashion-MNIST example archbench grew from)."""

import keras
from keras import layers

from models.registry import register


@register(family="cnn")
def simple_cnn(hp, input_shape, num_classes):
    """Two conv + max-pool blocks and a dense head, as in the W&B Fashion-MNIST tutorial.

    Reference: LeCun et al., "Gradient-based learning applied to document recognition"
    (1998), in the small form used by the W&B "Introduction to TensorFlow" tutorial.
    Search space: filters of the first conv (16-64; the second has twice as many), kernel
    size (3 or 5), dense units (64-256) and dropout (0-0.5).
    """
    filters = hp.Int("filters", 16, 64, step=16, default=32)
    kernel = hp.Choice("kernel_size", [3, 5], default=3)
    dense_units = hp.Int("dense_units", 64, 256, step=64, default=128)
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.3)

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(filters, kernel, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(2 * filters, kernel, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="simple_cnn")
