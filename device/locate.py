"""Finding the number in a frame. Until the locator model exists the whole frame is the crop."""

from __future__ import annotations

import numpy as np


def whole_frame(frame: np.ndarray) -> tuple[int, int, int, int]:
    """The box (x, y, w, h) covering the whole frame: what ``--no-locate`` reads."""
    return 0, 0, int(frame.shape[1]), int(frame.shape[0])


def crop(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return frame[y : y + h, x : x + w]


def default_locator(path=None):
    """The locator to use by default; None (read the whole frame) until a locator model is bundled."""
    return None
