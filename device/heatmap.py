"""The locator model's geometry, shared with the trainer: a frame letterboxed into its input, and its
heat map decoded into boxes.

The locator is a tiny int8 heat-map network (``trainer/locator/model.py``; design and measurements in
``docs/LOCATOR.md``). A frame is letterboxed, grey, into the model's input (``fit_frame``); the model
says for each grid cell how likely it lies on the number and how far the number's edges are from it.
``decode_heatmap`` turns that into one box: the cells around the strongest peak vote for the edges,
weighted by their heat. No peak above the threshold means no number (``None``). ``decode_candidates``
gives several separate boxes from the same map. The model itself is ``device/locate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.contract import to_gray

STRIDE = 4  # input pixels per output cell
BOX_UNIT = 8.0  # the ``box`` output counts edge distances in units of this many input pixels
BLOB_FRACTION = 0.5  # cells at least this share of the peak belong to the peak's blob


def cell_centres(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Input-pixel centres of the output grid's columns (x) and rows (y)."""
    return (np.arange(cols, dtype=np.float32) + 0.5) * STRIDE, (np.arange(rows, dtype=np.float32) + 0.5) * STRIDE


@dataclass(frozen=True)
class Fit:
    """Where a frame sits in the model input after letterboxing: input = frame * scale + (left, top)."""

    scale: float
    left: int
    top: int

    def to_input(self, box) -> tuple[float, float, float, float]:
        """Frame (x, y, w, h) -> input-pixel corners (x0, y0, x1, y1)."""
        x, y, w, h = box
        s = self.scale
        return x * s + self.left, y * s + self.top, (x + w) * s + self.left, (y + h) * s + self.top

    def to_frame(self, corners) -> tuple[float, float, float, float]:
        """Input-pixel corners (x0, y0, x1, y1) -> frame (x, y, w, h), floats."""
        x0, y0, x1, y1 = corners
        s = self.scale
        return (x0 - self.left) / s, (y0 - self.top) / s, (x1 - x0) / s, (y1 - y0) / s


def fit_frame(frame: np.ndarray, height: int, width: int) -> tuple[np.ndarray, Fit]:
    """Any frame -> (grey uint8 ``[height, width]`` letterboxed, keeping the aspect ratio; its Fit).

    Letterboxing, not stretching, keeps a number's shape the same in a 4:3 frame, a 16:9 frame and a
    tight 4:1 crop, so one model finds all of them. Padding is mid-grey.
    """
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3) or min(frame.shape[:2]) < 1:
        raise ValueError(f"not an image: array of shape {frame.shape}")
    h, w = frame.shape[:2]
    scale = min(height / h, width / w)
    new_w, new_h = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    if frame.dtype in (np.uint8, np.uint16, np.float32) and (frame.ndim == 2 or frame.shape[2] <= 4):
        # shrink first, then grey: the channel mean of 19 k pixels instead of 307 k (1 ms on a 640x480 frame)
        small = to_gray(cv2.resize(frame, (new_w, new_h), interpolation=interp))
    else:
        small = cv2.resize(to_gray(frame), (new_w, new_h), interpolation=interp)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    if (new_w, new_h) != (width, height):
        small = cv2.copyMakeBorder(small, top, height - new_h - top, left, width - new_w - left,
                                   cv2.BORDER_CONSTANT, value=128)
    return small, Fit(scale=scale, left=left, top=top)


def decode_heatmap(heat: np.ndarray, ltrb: np.ndarray, threshold: float) -> tuple[tuple, float] | None:
    """One frame's ``heat [rows, cols]`` and ``ltrb [rows, cols, 4]`` -> (input corners x0 y0 x1 y1, peak) or None.

    The blob of cells connected to the peak (heat >= ``BLOB_FRACTION`` of it) votes: each cell's box is
    its centre minus/plus its predicted edge distances, averaged with the cells' heat as weights.
    """
    peak_at = int(np.argmax(heat))
    peak = float(heat.flat[peak_at])
    if peak < threshold:
        return None
    mask = (heat >= peak * BLOB_FRACTION).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    return _vote(cell_boxes(ltrb), heat, labels == labels.flat[peak_at]), peak


def cell_boxes(ltrb: np.ndarray) -> np.ndarray:
    """Each cell's own predicted box, input-pixel corners ``[rows, cols, 4]`` (x0, y0, x1, y1)."""
    cx, cy = cell_centres(*ltrb.shape[:2])
    xs, ys = np.meshgrid(cx, cy)
    d = ltrb * BOX_UNIT
    return np.stack([xs - d[..., 0], ys - d[..., 1], xs + d[..., 2], ys + d[..., 3]], axis=-1)


def corner_iou(boxes: np.ndarray, box) -> np.ndarray:
    """IoU of corner boxes ``[..., 4]`` with one corner box (x0, y0, x1, y1)."""
    iw = np.clip(np.minimum(boxes[..., 2], box[2]) - np.maximum(boxes[..., 0], box[0]), 0, None)
    ih = np.clip(np.minimum(boxes[..., 3], box[3]) - np.maximum(boxes[..., 1], box[1]), 0, None)
    inter = iw * ih
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    union = area + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


# Candidates (``decode_candidates``): up to this many separate boxes per frame, read together and chosen
# among by ``device.choose``. A blob whose heat-weighted box overlaps its peak cell's own box less than
# SPLIT_IOU holds several things (a dial's numerals and the odometer): only the cells whose own box
# overlaps the peak's by MEMBER_IOU vote. A candidate overlapping a better one by SUPPRESS_IOU is dropped.
# Once one peak reaches the threshold, weaker ones from CANDIDATE_FLOOR up seed candidates too. Both
# chosen on 600 + 600 val scenes (``python -m trainer.choose_rule``): k 4 / floor 0.5 reads 61.5 % of the
# cluttered scenes right (k 6 / 0.3: 62.2 %, k 1: 57.7 %, one box: 56.3 %) within the time budget.
MAX_CANDIDATES = 4
CANDIDATE_FLOOR = 0.5
SPLIT_IOU, MEMBER_IOU, SUPPRESS_IOU = 0.5, 0.5, 0.3


def decode_candidates(heat: np.ndarray, ltrb: np.ndarray, threshold: float, k: int = MAX_CANDIDATES,
                      floor: float | None = None) -> list[tuple[tuple, float]]:
    """Up to ``k`` separate boxes, best peak first: [(input corners x0 y0 x1 y1, peak heat), ...].

    Nothing when no cell reaches ``threshold`` (no number). Each local maximum of at least ``floor``
    (default: ``threshold``) seeds a candidate from its blob, as ``decode_heatmap`` does for the
    strongest one, so the first candidate *is* ``decode_heatmap``'s box unless its blob holds several
    things; then only the cells agreeing with the peak cell's own box vote (``SPLIT_IOU``). Cells that
    voted for a candidate seed no other; candidates overlapping a better one are dropped.
    """
    if heat.size == 0 or float(heat.max()) < threshold:
        return []
    floor = threshold if floor is None else floor
    corners = cell_boxes(ltrb)
    local_max = (heat >= floor) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
    rows, cols = np.nonzero(local_max)
    taken = np.zeros(heat.shape, bool)
    out: list[tuple[tuple, float]] = []
    for i in np.argsort(-heat[rows, cols], kind="stable"):
        r, c = int(rows[i]), int(cols[i])
        if len(out) >= k:
            break
        if taken[r, c]:
            continue
        peak = float(heat[r, c])
        _, labels = cv2.connectedComponents(((heat >= peak * BLOB_FRACTION) & ~taken).astype(np.uint8), connectivity=8)
        members = labels == labels[r, c]
        box = _vote(corners, heat, members)
        if corner_iou(np.asarray(box), corners[r, c]) < SPLIT_IOU:
            members &= corner_iou(corners, corners[r, c]) >= MEMBER_IOU
            box = _vote(corners, heat, members)
        taken |= members
        if all(corner_iou(np.asarray(box), other) < SUPPRESS_IOU for other, _ in out):
            out.append((box, peak))
    return out


def _vote(corners: np.ndarray, heat: np.ndarray, members: np.ndarray) -> tuple:
    """The heat-weighted mean of the member cells' boxes (corners)."""
    weights = heat[members]
    return tuple(float(v) for v in weights @ corners[members] / weights.sum())
