"""Keeping the daemon's crop steady from frame to frame: the box tracker between locator searches.

The reader (``device/reader.py``) searches with the locator every ``locate_every`` frames and feeds each
found box (or None) to its sensor's ``BoxTracker``; the frames in between read the tracked box.
"""

from __future__ import annotations

import numpy as np

from device.boxes import Box, box_iou


class BoxTracker:
    """Keeps the daemon's crop steady: smooths the box between frames and rides out brief misses.

    A box overlapping the tracked one (IoU >= ``match_iou``) moves it by ``alpha`` of the difference.
    A box elsewhere replaces it only after ``switch_after`` consecutive frames agree on the new place
    (a reflection or a passing sign does not steal the crop). After ``hold`` frames without any box
    the track is dropped and ``update`` returns None.
    """

    def __init__(self, alpha: float = 0.4, match_iou: float = 0.3, switch_after: int = 3, hold: int = 5):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], not {alpha}")
        self.alpha, self.match_iou, self.switch_after, self.hold = alpha, match_iou, switch_after, hold
        self.reset()

    def reset(self) -> None:
        self._box: np.ndarray | None = None
        self._misses = 0
        self._candidate: np.ndarray | None = None
        self._candidate_count = 0

    @property
    def box(self) -> Box | None:
        return None if self._box is None else tuple(int(round(v)) for v in self._box)

    def update(self, box: Box | None) -> Box | None:
        """Feed this frame's box (or None); get the box to crop (or None)."""
        if box is None:
            self._misses += 1
            if self._misses > self.hold:
                self.reset()
            return self.box
        self._misses = 0
        new = np.asarray(box, dtype=np.float64)
        if self._box is None:
            self._box = new
        elif box_iou(new, self._box) >= self.match_iou:
            self._box = self._box + self.alpha * (new - self._box)
            self._candidate, self._candidate_count = None, 0
        else:
            same = self._candidate is not None and box_iou(new, self._candidate) >= self.match_iou
            self._candidate_count = self._candidate_count + 1 if same else 1
            self._candidate = new
            if self._candidate_count >= self.switch_after:
                self._box, self._candidate, self._candidate_count = new, None, 0
        return self.box
