"""Locator targets and losses: corners -> heat map + box targets (the inverse of the device's decoder), the
weighted heat-map loss, the IoU box loss and the augmented training batches."""

from __future__ import annotations

import numpy as np

from device.heatmap import BOX_UNIT, STRIDE, cell_centres

POS_WEIGHT = 10.0  # number cells are ~1 % of the grid: weigh their heat-map error up


def encode_targets(corners, rows: int, cols: int):
    """Corners ``[B, 4]`` (NaN: no number) -> heat ``[B, rows, cols, 1]`` and ltrb+weight ``[B, rows, cols, 5]``.

    A cell is on the number when its centre lies inside the box; the cell holding the box's centre
    always is, so a number thinner than a cell still has one. ltrb are the distances from the cell
    centre to the box edges in ``BOX_UNIT`` pixels, the inverse of ``device.heatmap.decode_heatmap``.
    """
    import tensorflow as tf

    corners = tf.convert_to_tensor(corners, tf.float32)
    present = tf.logical_not(tf.reduce_any(tf.math.is_nan(corners), axis=1))
    c = tf.where(present[:, None], corners, tf.zeros_like(corners))
    cx, cy = (tf.constant(v) for v in cell_centres(rows, cols))
    x0, y0, x1, y1 = (c[:, i, None, None] for i in range(4))
    left, right = cx[None, None, :] - x0, x1 - cx[None, None, :]
    top, bottom = cy[None, :, None] - y0, y1 - cy[None, :, None]
    shape = [tf.shape(c)[0], rows, cols]
    left, right = tf.broadcast_to(left, shape), tf.broadcast_to(right, shape)
    top, bottom = tf.broadcast_to(top, shape), tf.broadcast_to(bottom, shape)
    inside = (left > 0) & (right > 0) & (top > 0) & (bottom > 0)
    col = tf.clip_by_value(tf.cast(tf.floor((x0 + x1) / 2 / STRIDE), tf.int32), 0, cols - 1)
    row = tf.clip_by_value(tf.cast(tf.floor((y0 + y1) / 2 / STRIDE), tf.int32), 0, rows - 1)
    centre = (tf.range(cols)[None, None, :] == col) & (tf.range(rows)[None, :, None] == row)
    on = tf.cast((inside | centre) & present[:, None, None], tf.float32)
    ltrb = tf.maximum(tf.stack([left, top, right, bottom], axis=-1), 0.0) / BOX_UNIT
    return on[..., None], tf.concat([ltrb * on[..., None], on[..., None]], axis=-1)


def heat_loss(y_true, y_pred):
    """Binary cross-entropy per cell, number cells weighted ``POS_WEIGHT`` times."""
    import tensorflow as tf

    p = tf.clip_by_value(y_pred, 1e-6, 1 - 1e-6)
    bce = -(y_true * tf.math.log(p) + (1 - y_true) * tf.math.log(1 - p))
    return tf.reduce_mean(bce * (1 + (POS_WEIGHT - 1) * y_true), axis=[1, 2, 3])


def box_loss(y_true, y_pred):
    """IoU loss (UnitBox, Yu et al. 2016) of each number cell's box against the true box; scale-free."""
    import tensorflow as tf

    t, w = y_true[..., :4], y_true[..., 4]
    inter = (tf.minimum(t[..., 0], y_pred[..., 0]) + tf.minimum(t[..., 2], y_pred[..., 2])) * (
        tf.minimum(t[..., 1], y_pred[..., 1]) + tf.minimum(t[..., 3], y_pred[..., 3]))
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = (y_pred[..., 0] + y_pred[..., 2]) * (y_pred[..., 1] + y_pred[..., 3])
    iou = (inter + 1e-3) / (area_t + area_p - inter + 1e-3)
    per_cell = -tf.math.log(tf.clip_by_value(iou, 1e-4, 1.0)) * w
    return tf.reduce_sum(per_cell, axis=[1, 2]) / tf.maximum(tf.reduce_sum(w, axis=[1, 2]), 1.0)


def training_dataset(images: np.ndarray, corners: np.ndarray, rows: int, cols: int, batch: int, seed: int):
    """Shuffled, lightly augmented (gain, offset, inversion, noise) batches of (images, targets)."""
    import tensorflow as tf

    def augment(x, c):
        x = tf.cast(x, tf.float32)[..., None]
        n = tf.shape(x)[0]
        gain = tf.random.uniform([n, 1, 1, 1], 0.6, 1.3)
        offset = tf.random.uniform([n, 1, 1, 1], -40.0, 40.0)
        x = (x - 128.0) * gain + 128.0 + offset
        invert = tf.random.uniform([n, 1, 1, 1]) < 0.15
        x = tf.where(invert, 255.0 - x, x)
        x = x + tf.random.normal(tf.shape(x), stddev=tf.random.uniform([], 0.0, 6.0))
        heat, box = encode_targets(c, rows, cols)
        return tf.clip_by_value(x, 0.0, 255.0), {"heatmap": heat, "box": box}

    ds = tf.data.Dataset.from_tensor_slices((images, corners)).shuffle(len(images), seed=seed)
    return ds.batch(batch, drop_remainder=True).map(augment, num_parallel_calls=2).prefetch(2)
