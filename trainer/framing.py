"""Loose framing: a number crop set back into the surroundings a real ROI or locator box brings along.

Users' crops are loose (margins of 0.3-1.5x the digit height on every side) and hold the meter's window
frame, screws, brackets, dial arcs with ticks and smaller scale numerals, stickers and text in many
scripts, glare and droplets. A model trained on tight crops reads a bracket as a leading 1 and appends
the scale numerals. ``frame_loosely`` puts any source's crop (the number, labelled with the main number
only) into such surroundings, a housing with clutter of the families in ``trainer.surroundings``;
everything added stays off the number's own box except the photo faults. The ``framed`` source
built on it is ``trainer.framed_source`` (kept apart so scenes can frame crops without importing the
source registry).
"""

from __future__ import annotations

import cv2
import numpy as np

from trainer import effects
from trainer.surroundings import ADDERS, FAMILIES, check_families

MARGIN = (0.3, 1.5)  # margin on each side, in digit heights


def frame_loosely(img: np.ndarray, rng: np.random.Generator, families=FAMILIES, digits: bool = True,
                  margin: tuple[float, float] = MARGIN) -> np.ndarray:
    """``img`` (a crop around a number, uint8 grey or RGB) with loose margins and clutter of ``families``
    (``frame_loosely_boxed`` without the box)."""
    return frame_loosely_boxed(img, rng, families, digits, margin)[0]


def frame_loosely_boxed(img: np.ndarray, rng: np.random.Generator, families=FAMILIES, digits: bool = True,
                        margin: tuple[float, float] = MARGIN) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(``img`` framed loosely, where ``img`` lies in it as x, y, w, h): the locator learns that box.

    The digit height is taken as ~80 % of the crop's; margins of ``margin`` digit heights go on every
    side, filled with a housing (the crop's own edge colour or another material). ``digits=False``
    leaves out the dial's scale numerals (for crops labelled "no number").
    """
    families = check_families(families)
    h, w = img.shape[:2]
    dh = max(4.0, 0.8 * h)
    mt, mb, ml, mr = (rng.uniform(*margin, 4) * dh).astype(int)
    H, W = h + mt + mb, w + ml + mr
    src = img.astype(np.float32)
    if rng.random() < 0.5:  # the plate or face continues: its own border, stretched and textured
        canvas = cv2.copyMakeBorder(src, mt, mb, ml, mr, cv2.BORDER_REPLICATE)
        k = max(3, int(dh / 2))
        canvas = cv2.blur(canvas, (k, k))  # a box blur: a Gaussian this wide costs more than the rest
        canvas[mt : mt + h, ml : ml + w] = src
        housing = float(np.median(src[0])) if src.ndim == 2 else float(np.median(src[0].mean(axis=-1)))
    else:  # a housing of another material
        housing = float(rng.uniform(0, 255))
        canvas = np.empty((H, W) + src.shape[2:], np.float32)
        canvas[:] = housing
        canvas += effects.per_pixel((effects.window(effects.texture_bank(), H, W, rng) - 0.5)
                                    * rng.uniform(0, 40), canvas)
        canvas[mt : mt + h, ml : ml + w] = src
    box = (int(ml), int(mt), int(ml + w), int(mt + h))
    # the digits' own box (inside the crop's margins), which clutter keeps out of
    inner = (int(ml + 0.05 * w), int(mt + 0.1 * h), int(ml + 0.95 * w), int(mt + 0.9 * h))
    for family in (f for f in FAMILIES if f in families):  # drawn in this order: frame first, faults last
        chance = 0.9 if family == "bezel" else 0.55
        if rng.random() >= chance:
            continue
        if family == "dial" and not digits:
            continue
        ADDERS[family](canvas, rng, box if family != "photo" else inner, dh, housing)
    out = np.clip(canvas, 0, 255).astype(np.uint8)
    return effects.camera(out, rng, rng.uniform(0.0, 0.3)), (int(ml), int(mt), int(w), int(h))
