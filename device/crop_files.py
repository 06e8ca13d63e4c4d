"""One collected crop, one PNG file: its name says what it is, so the folder needs no index to go wrong.

``<ms>-<seq>-<kind>-<label>-r<raw read>-c<confidence %>.png``, kind ``auto`` (labelled by the daemon's
accepted values), ``human`` (a person's label, a rename; it outranks the pseudo-label) or ``review``
(unlabelled, too unsure). The daemon writes them (``device/cropstore.py``), ``digitcam crops`` and the
web page list and relabel them, ``digitcam adapt`` reads them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.errors import DigitcamError

AUTO, HUMAN, REVIEW = "auto", "human", "review"
KINDS = (AUTO, HUMAN, REVIEW)
NAME = re.compile(r"^(?P<ms>\d{13})-(?P<seq>\d{6})-(?P<kind>auto|human|review)-(?P<label>\d{1,8}|x)"
                  r"-r(?P<raw>\d{0,8}|x)-c(?P<conf>\d{3})\.png$")


class CropError(DigitcamError):
    """A crop store or crop name that cannot be used; the message names it."""


@dataclass(frozen=True)
class Crop:
    """One stored crop, as its file name says."""

    path: Path
    at: float  # wall time (s) it was seen
    kind: str
    label: str | None  # None: unlabelled (review)
    raw: str | None  # what the model read in that frame
    confidence: float
    size: int = 0

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sensor(self) -> str:
        return self.path.parent.name


def crop_name(at: float, seq: int, kind: str, label: str | None, raw: str | None, confidence: float) -> str:
    conf = int(round(min(max(confidence, 0.0), 1.0) * 100))
    return f"{int(at * 1000):013d}-{seq % 10 ** 6:06d}-{kind}-{label or 'x'}-r{raw if raw else 'x'}-c{conf:03d}.png"


def parse_name(path: Path, size: int = 0) -> Crop | None:
    """The Crop a file name describes, or None for a file that is not one of ours."""
    m = NAME.match(path.name)
    if m is None:
        return None
    label = None if m["label"] == "x" else m["label"]
    raw = None if m["raw"] in ("x", "") else m["raw"]
    return Crop(path, int(m["ms"]) / 1000.0, m["kind"], label, raw, int(m["conf"]) / 100.0, size)


def scan(folder: Path) -> list[Crop]:
    """Every crop under ``folder`` (a store, one sensor's folder, or crops fetched from many Pis), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CropError(f"{folder} is not a folder of crops")
    out = []
    for path in folder.rglob("*.png"):
        try:
            crop = parse_name(path, path.stat().st_size)
        except OSError:
            continue
        if crop is not None:
            out.append(crop)
    return sorted(out, key=lambda c: (c.at, c.name))


def read_crop(crop: Crop | Path) -> np.ndarray:
    """The stored crop as the model's uint8 input [height, width]; a damaged file is a one-line CropError."""
    import cv2

    path = crop.path if isinstance(crop, Crop) else Path(crop)
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CropError(f"{path} is not a readable PNG")
    return image


def relabel_file(crop: Crop, label: str | None) -> Crop:
    """Rename a crop's file to carry a person's label (kind ``human``), or none (kind ``review``)."""
    kind = HUMAN if label is not None else REVIEW
    m = NAME.match(crop.name)
    new = crop.path.with_name(f"{m['ms']}-{m['seq']}-{kind}-{label or 'x'}-r{m['raw']}-c{m['conf']}.png")
    os.replace(crop.path, new)
    return Crop(new, crop.at, kind, label, crop.raw, crop.confidence, crop.size)


def check_label(text: str) -> str | None:
    """A person's label: 1-8 digits, or 'none' to send the crop back to review."""
    if text.lower() in ("none", "-", "x"):
        return None
    if not text.isdigit() or not 1 <= len(text) <= 8:
        raise CropError(f"a label is 1-8 digits (or 'none'), not {text[:20]!r}")
    return text
