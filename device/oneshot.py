"""``digitcam read``: read the number in each image once and report it as a JSON-ready dict.

The dict layout is a stable interface that scripts rely on:
``{"image", "value", "confidence", "box", "digits", "ms"}``, or ``{"image", "error"}`` for a bad file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from device.errors import DigitcamError
from device.images import load_image
from device.reader import FrameReader


def read_image(recognizer, path: str, use_locator: bool = True, locator=None, annotate_dir: Path | None = None,
               min_confidence: float = 0.0) -> dict:
    """One image path -> result dict; a bad image yields an ``error`` entry instead of raising.

    A reading less sure than ``min_confidence`` reports no number (``value`` null, no digits, its
    confidence kept), as a daemon sensor with that ``min_confidence`` would.
    """
    try:
        frame = load_image(path)
    except DigitcamError as exc:
        return {"image": path, "error": str(exc)}
    reading, ms = FrameReader(recognizer, locator if use_locator else None).find_and_read(frame)
    result = {"image": path, **reading.as_dict(), "ms": round(ms, 3)}
    if reading.confidence < min_confidence:
        result.update(value=None, digits=[])
    if annotate_dir is not None:
        from device.overlay import annotate_to_file

        annotate_to_file(frame, result, Path(annotate_dir) / (Path(path).stem + ".jpg"))
    return result


def read_images(recognizer, paths: Iterable[str], **kwargs) -> Iterator[dict]:
    """Results in input order, one per path."""
    for path in paths:
        yield read_image(recognizer, path, **kwargs)
