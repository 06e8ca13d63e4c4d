"""A tight ROI inside a roughly drawn one: where a sensor without ``locate`` should read (the page's Fit).

A sensor without ``locate`` reads its whole ROI as the crop. Drawn loosely, the digits get few of the
model's pixels: whole loose crops read about half as often right as the same numbers tight
(docs/MODEL.md, framed:test). The locator, run once inside the drawn ROI, says where the number is; its
chosen box grown by ``FIT_SCALE`` is the ROI to save, so the sensor reads tight on every frame without a
search per frame. ``FIT_SCALE`` was chosen on validation crops (``bench/loose_crops.py --fit-scales``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.boxes import Box, crop, view_boxes, whole_frame
from device.contract import Reading

FIT_SCALE = 1.0  # the located crop box already carries the recognizer's training margin (device.boxes.expand)
LOOSE_BELOW = 0.6  # a fitted ROI with less than this share of the drawn ROI's area: the drawn one is loose


@dataclass(frozen=True)
class Fit:
    """The suggested ROI, what a sensor without ``locate`` reads in it, and its share of the drawn ROI's area."""

    roi: Box
    reading: Reading
    share: float

    @property
    def loose(self) -> bool:
        """Is the drawn ROI loose enough that saving the fitted one should be suggested?"""
        return self.share < LOOSE_BELOW


def fit_roi(reader, frame: np.ndarray, roi: Box | None = None, scale: float = FIT_SCALE) -> Fit | None:
    """The number the located ``reader`` (a ``device.reader.FrameReader`` with a locator) chooses inside
    ``roi`` (default: the whole frame), as a fixed ROI grown by ``scale`` about its centre and read as one
    crop, the way a sensor without ``locate`` reads it. None: no locator, or no number found there."""
    if reader.locator is None:
        return None
    found = reader.read_candidates(frame, roi)
    if found.reading.value is None or found.reading.box is None:
        return None
    drawn = roi if roi is not None else whole_frame(frame)
    box = tuple(int(v) for v in view_boxes(found.reading.box, frame.shape, ((scale, scale, 0.0),))[0])
    (reading,), _ = reader.recognizer.read([crop(frame, box)])
    share = box[2] * box[3] / float(max(1, drawn[2] * drawn[3]))
    return Fit(box, Reading(reading.value, reading.confidence, reading.digits, box), share)
