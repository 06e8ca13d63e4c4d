"""The locator network: a tiny fully-convolutional detector for the one number in a frame.

It takes a letterboxed grey frame (``device.heatmap.fit_frame``; a float tensor holding raw 0..255
pixels ``[B, H, W, 1]``, rescaled inside so the int8 model eats camera bytes) and predicts, for each
cell of a grid at ``STRIDE`` input pixels:

* ``heatmap`` ``[B, H/4, W/4, 1]``: the probability that the cell's centre lies on the number;
* ``box`` ``[B, H/4, W/4, 4]``: the distances from the cell's centre to the number's left, top, right
  and bottom edges, in units of ``device.heatmap.BOX_UNIT`` input pixels (FCOS-style, Tian et al. 2019).

A small feature pyramid brings the context of stride 16 (dilated, so the field of view spans the frame
and other text can be told from *the* number) back to the stride-4 grid, where boxes a few pixels high
still cover a cell. Only convolutions, ReLU, adds and nearest upsampling: every op has an int8 kernel.
"""

from __future__ import annotations

import keras
from keras import layers

from device.heatmap import STRIDE

INPUT_HEIGHT = 128
INPUT_WIDTH = 160  # a 640x480 frame letterboxes to 160x120 with 4 rows of padding above and below


def _conv(x, filters: int, name: str, strides: int = 1, dilation: int = 1, kernel: int = 3):
    """Conv -> batch norm -> ReLU; batch norm folds into the conv at export."""
    x = layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_locator(height: int = INPUT_HEIGHT, width: int = INPUT_WIDTH, width_mult: float = 1.0) -> keras.Model:
    """Backbone at strides 4/8/16, top-down merge to stride 4, then the heat-map and box heads."""
    if height % 16 or width % 16:
        raise ValueError(f"locator input {width}x{height}: both sides must be multiples of 16")
    c4, c8, c16, head = (max(8, int(round(n * width_mult))) for n in (32, 48, 64, 32))
    inputs = keras.Input(shape=(height, width, 1), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = _conv(x, 16, "stem", strides=2)
    x = _conv(x, c4, "s4_down", strides=2)
    f4 = _conv(x, c4, "s4")
    x = _conv(f4, c8, "s8_down", strides=2)
    f8 = _conv(x, c8, "s8")
    x = _conv(f8, c16, "s16_down", strides=2)
    x = _conv(x, c16, "s16_context_a", dilation=2)
    f16 = _conv(x, c16, "s16_context_b", dilation=4)
    # top-down: stride 16 -> 8 -> 4, each level adding its own detail through a 1x1 lateral
    top = layers.Conv2D(head, 1, name="top16")(f16)
    top = layers.UpSampling2D(2, interpolation="nearest", name="up16")(top)
    top = layers.Add(name="merge8")([top, layers.Conv2D(head, 1, name="lateral8")(f8)])
    top = layers.UpSampling2D(2, interpolation="nearest", name="up8")(top)
    top = layers.Add(name="merge4")([top, layers.Conv2D(head, 1, name="lateral4")(f4)])
    top = _conv(top, head, "head")
    heat = layers.Conv2D(1, 1, activation="sigmoid", name="heatmap")(top)
    box = layers.Conv2D(4, 1, name="box_linear")(top)
    box = layers.ReLU(name="box")(box)
    return keras.Model(inputs, {"heatmap": heat, "box": box}, name="locator")


def width_mult_of(model) -> float:
    """The ``width_mult`` a built locator was made with (its stride-4 stage has 32 x width_mult channels)."""
    return model.get_layer("s4_conv").filters / 32


def grid_shape(height: int = INPUT_HEIGHT, width: int = INPUT_WIDTH) -> tuple[int, int]:
    """The output grid (rows, columns) for an input of ``height`` x ``width``."""
    return height // STRIDE, width // STRIDE

