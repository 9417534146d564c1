"""ConvNeXt for small images: a patchify stem, then stages of depthwise 7x7 + MLP blocks."""

import keras
from keras import layers

from models.registry import register

# ConvNeXt's 1:1:3:1 ratio of blocks per stage (ConvNeXt-T: 3, 3, 9, 3).
_STAGE_RATIO = (1, 1, 3, 1)


def _layer_norm():
    return layers.LayerNormalization(epsilon=1e-6)


def _convnext_block(x):
    channels = x.shape[-1]
    y = layers.DepthwiseConv2D(7, padding="same")(x)
    y = _layer_norm()(y)
    y = layers.Dense(4 * channels, activation="gelu")(y)  # pointwise: acts on channels
    y = layers.Dense(channels)(y)
    return layers.Add()([x, y])


def _downsample(x, filters):
    # A map already 2x2 or smaller keeps its size, so that 8x8 inputs take every stage.
    stride = 2 if min(x.shape[1], x.shape[2]) > 2 else 1
    x = _layer_norm()(x)
    return layers.Conv2D(filters, stride, strides=stride, padding="same")(x)


@register(family="convnext")
def convnext(hp, input_shape, num_classes):
    """ConvNeXt for small images: patchify stem, stages of depthwise 7x7 + LayerNorm + MLP.

    Reference: Liu et al., "A ConvNet for the 2020s" (CVPR 2022). Each block is a 7x7
    depthwise conv, LayerNorm, a pointwise MLP of expansion 4 with GELU, and a residual;
    stages are joined by LayerNorm + 2x2 stride-2 convs; a stride is skipped once the map
    is 2x2. Layer scale and stochastic depth (regularizers for long ImageNet training) are
    left out. Search space: patch size of the stem (2 or 4), stages (3 or 4), blocks per
    stage b (1-3, in the ratio b:b:3b:b; b=3 with 4 stages is ConvNeXt-T's 3:3:9:3) and
    base width (32, 64 or 96, doubling per stage). Default: patch 2, 3 stages of 1, 1, 3
    blocks, widths 32/64/128.
    """
    patch = hp.Choice("patch_size", [2, 4], default=2)
    stages = hp.Int("stages", 3, 4, default=3)
    blocks = hp.Int("blocks_per_stage", 1, 3, default=1)
    width = hp.Choice("width", [32, 64, 96], default=32)

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(width, patch, strides=patch, padding="same")(inputs)
    x = _layer_norm()(x)
    for stage in range(stages):
        if stage > 0:
            x = _downsample(x, width * 2**stage)
        for _ in range(blocks * _STAGE_RATIO[stage]):
            x = _convnext_block(x)
    x = _layer_norm()(layers.GlobalAveragePooling2D()(x))
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="convnext")
