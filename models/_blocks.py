"""Layers shared by several architecture files (not an architecture: no ``@register``)."""

from keras import layers

# Keras' default moving-average momentum (0.99) needs hundreds of steps before inference
# statistics are usable, so short budgets scored exactly chance at validation. Measured on
# Fashion-MNIST after 40 steps of batch 32: ConvMixer scored 0.10 at 0.9 and 0.66 at 0.8.
# The statistics then follow the last few batches, which is what fast-changing weights need.
BN_MOMENTUM = 0.8


def batch_norm():
    """Batch normalization with the moving-average momentum every architecture uses."""
    return layers.BatchNormalization(momentum=BN_MOMENTUM)


def bn_relu(x):
    """Batch norm then ReLU: the pre-activation that opens a pre-activation conv."""
    return layers.ReLU()(batch_norm()(x))


def conv(filters, kernel, strides=1):
    """A same-padded convolution without bias, for a batch norm to follow or precede."""
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)
