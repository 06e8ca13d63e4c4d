"""Boxes in frame pixels: cutting a crop, clipping, the crop views a box is read through, and its margin.

A box is (x, y, w, h) in full-resolution frame pixels. The locator (``device/locate.py``) finds a tight
box; ``expand`` widens it the way the recognizer's training crops were cut (``trainer.canvas.frame``),
and ``view_boxes`` gives the few slightly different crops of it that are read and vote.
"""

from __future__ import annotations

import numpy as np

from device.errors import ModelError

MIN_ASPECT, MAX_ASPECT = 1.0, 6.0  # the crop's width:height range, as in the recognizer's training crops
# A crop view: (width scale, height scale, x shift as a share of the width) of the crop box, about its
# centre. A locator's manifest lists the views its crops are read through (``crops``); the reading
# they agree on wins (``device.recognize.vote``). One view, the box itself, when the manifest has none.
SINGLE_VIEW = ((1.0, 1.0, 0.0),)

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
View = tuple[float, float, float]


def whole_frame(frame: np.ndarray) -> Box:
    """The box (x, y, w, h) covering the whole frame: what ``--no-locate`` reads."""
    return 0, 0, int(frame.shape[1]), int(frame.shape[0])


def crop(frame: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return frame[y : y + h, x : x + w]


def clip_box(box: Box, frame_shape) -> Box | None:
    """``box`` cut to the frame (a tracked box may outlive a change of resolution); None if nothing is left."""
    fh, fw = frame_shape[:2]
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(fw, box[0] + box[2]), min(fh, box[1] + box[3])
    return (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 2 and y1 - y0 >= 2 else None


def view_boxes(box: Box, frame_shape, views=SINGLE_VIEW) -> list[Box]:
    """``box`` seen through each view: scaled about its centre, shifted, cut to the frame.

    Reading a few slightly different crops and letting them vote makes a reading robust to a box a few
    pixels off, which a single crop is not: a digit cut at the edge is misread (docs/LOCATOR.md).
    """
    x, y, w, h = box
    fh, fw = frame_shape[:2]
    out = []
    for sx, sy, dx in views:
        cx, cy, vw, vh = x + w / 2 + dx * w, y + h / 2, w * sx, h * sy
        x0, y0 = int(max(0, round(cx - vw / 2))), int(max(0, round(cy - vh / 2)))
        x1, y1 = int(min(fw, round(cx + vw / 2))), int(min(fh, round(cy + vh / 2)))
        out.append((x0, y0, max(1, x1 - x0), max(1, y1 - y0)) if x1 > x0 and y1 > y0 else tuple(box))
    return out


def parse_views(value, where: str) -> tuple[View, ...]:
    """A manifest's ``crops`` list -> views; anything else than [[wscale, hscale, xshift], ...] is a ModelError."""
    if value is None:
        return SINGLE_VIEW
    try:
        views = tuple((float(a), float(b), float(c)) for a, b, c in value)
    except (TypeError, ValueError):
        raise ModelError(f"{where}: 'crops' must be a list of [width scale, height scale, x shift], not {value!r}") from None
    if not views or not all(0.5 <= a <= 2.0 and 0.5 <= b <= 2.0 and -0.5 <= c <= 0.5 for a, b, c in views):
        raise ModelError(f"{where}: 'crops' {value!r} must be non-empty, scales in [0.5, 2], shifts in [-0.5, 0.5]")
    return views


def box_iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes; 0 when either is empty."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def expand(box, frame_shape, margin: float) -> Box:
    """A tight (x, y, w, h) -> the crop the recognizer expects, in whole pixels inside the frame.

    ``margin`` times the number's height on every side, then widened to at least 1:1 or heightened to
    at most 6:1 around its centre, as ``trainer.canvas.frame`` cuts the training crops.
    """
    x, y, w, h = (float(v) for v in box)
    m = margin * h
    x0, y0, x1, y1 = x - m, y - m, x + w + m, y + h + m
    cw, ch = x1 - x0, y1 - y0
    if cw < MIN_ASPECT * ch:
        grow = (MIN_ASPECT * ch - cw) / 2
        x0, x1 = x0 - grow, x1 + grow
    elif cw > MAX_ASPECT * ch:
        grow = (cw / MAX_ASPECT - ch) / 2
        y0, y1 = y0 - grow, y1 + grow
    fh, fw = frame_shape[:2]
    x0, y0 = int(max(0, np.floor(x0))), int(max(0, np.floor(y0)))
    x1, y1 = int(min(fw, np.ceil(x1))), int(min(fh, np.ceil(y1)))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)
