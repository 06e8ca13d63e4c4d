"""The two recognizer architectures compared in docs/MODEL.md, sharing one convolutional trunk.

Both take the contract's input (a float tensor holding raw 0..255 grey pixels, ``[B, H, W, 1]``) and
rescale inside, so the exported int8 model eats camera pixels. Their outputs are a dict of named
softmaxes exactly as ``device/contract.py`` documents, and neither uses recurrent ops, so full-int8
conversion keeps every op on the integer kernels:

* ``build_length_digits``: Goodfellow et al. 2013 - a length softmax (0..8) and one softmax per
  digit position with class 10 = blank.
* ``build_ctc``: fully convolutional; the trunk's columns become CTC time steps.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from device.contract import MAX_DIGITS, NUM_CLASSES, InputSpec
from trainer.train_config import ARCHITECTURES


def _conv(x, filters: int, name: str, kernel=(3, 3), padding: str = "same", strides: int = 1):
    """Conv -> batch norm -> ReLU; batch norm folds into the conv at export.

    Momentum 0.9, not Keras' 0.99: with 0.99 the inference statistics lag for the first few hundred steps,
    so short runs validate (and export) a model that is much worse than the one being trained.
    """
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_trunk(spec: InputSpec, width: float = 1.0, stem: str = "pool", stem_channels: int = 0):
    """Input -> (input tensor, column features ``[B, 1, W/4, C]``) shared by both heads.

    Height is pooled 32 -> 4 and width only 128 -> 32, so there are 32 columns: enough CTC steps for
    8 digits with a blank between repeated ones, and enough positions for the per-digit head.
    ``stem = "strided"`` runs the first conv at stride 2 instead of at full resolution before a pool: at
    40x160 the full-resolution conv and pool are most of the int8 model's time (docs/MODEL.md).
    ``stem_channels`` (0: from ``width``) sets the first conv's filters, so a strided stem can keep more.
    """
    c = [max(8, int(round(n * width))) for n in (16, 32, 48, 64, 128)]
    c[0] = stem_channels or c[0]
    inputs = keras.Input(shape=(spec.height, spec.width, spec.channels), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    if stem == "strided":
        x = _conv(x, c[0], "block1", strides=2)
    else:
        x = _conv(x, c[0], "block1")
        x = layers.MaxPooling2D((2, 2), name="block1_pool")(x)
    x = _conv(x, c[1], "block2")
    x = layers.MaxPooling2D((2, 2), name="block2_pool")(x)
    x = _conv(x, c[2], "block3a")
    x = _conv(x, c[2], "block3b")
    x = layers.MaxPooling2D((2, 1), name="block3_pool")(x)
    x = _conv(x, c[3], "block4a")
    x = _conv(x, c[3], "block4b")
    x = layers.MaxPooling2D((x.shape[1] // 4, 1), name="block4_pool")(x) if x.shape[1] > 4 else x
    # Collapse the remaining height into channels: each column now describes one vertical slice.
    x = _conv(x, c[4], "columns", kernel=(x.shape[1], 1), padding="valid")
    return inputs, x


def build_length_digits(spec: InputSpec = InputSpec(), width: float = 1.0, dropout: float = 0.3,
                        stem: str = "pool", stem_channels: int = 0) -> keras.Model:
    """Shared trunk + a length head (0..MAX_DIGITS) + one 11-way softmax per digit position."""
    inputs, x = build_trunk(spec, width, stem, stem_channels)
    x = _conv(x, max(8, int(round(32 * width))), "squeeze", kernel=(1, 1))
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(max(32, int(round(256 * width))), name="fc")(x)
    x = layers.ReLU(name="fc_relu")(x)
    x = layers.Dropout(dropout, name="fc_dropout")(x)
    length = layers.Dense(MAX_DIGITS + 1, name="length_logits")(x)
    length = layers.Softmax(name="length")(length)
    digits = layers.Dense(MAX_DIGITS * (NUM_CLASSES + 1), name="digits_logits")(x)
    digits = layers.Reshape((MAX_DIGITS, NUM_CLASSES + 1), name="digits_reshape")(digits)
    digits = layers.Softmax(axis=-1, name="digits")(digits)
    return keras.Model(inputs, {"length": length, "digits": digits}, name="length_digits")


def build_ctc(spec: InputSpec = InputSpec(), width: float = 1.0, dropout: float = 0.3,
               stem: str = "pool", stem_channels: int = 0) -> keras.Model:
    """Shared trunk + per-column 11-way softmax (class 10 = CTC blank); no recurrence, int8-friendly."""
    inputs, x = build_trunk(spec, width, stem, stem_channels)
    x = layers.Dropout(dropout, name="columns_dropout")(x)
    # A 1x5 conv lets each column see its neighbours, which a BiLSTM would otherwise provide.
    x = _conv(x, max(8, int(round(128 * width))), "context", kernel=(1, 5))
    x = layers.Conv2D(NUM_CLASSES + 1, (1, 1), name="ctc_logits")(x)
    x = layers.Reshape((x.shape[2], NUM_CLASSES + 1), name="ctc_reshape")(x)
    x = layers.Softmax(axis=-1, name="ctc")(x)
    return keras.Model(inputs, {"ctc": x}, name="ctc")


def build_model(architecture: str, spec: InputSpec = InputSpec(), **options) -> keras.Model:
    """The builder named by a training config's ``architecture``."""
    builders = {"length_digits": build_length_digits, "ctc": build_ctc}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r}: want one of {', '.join(ARCHITECTURES)}")
    return builders[architecture](spec, **options)


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (conv and dense layers; the rest is negligible)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            out = layer.output.shape  # [B, H, W, C_out]
            kh, kw = layer.kernel_size
            total += int(np.prod(out[1:])) * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total

