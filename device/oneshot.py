"""``digitcam read``: read the number in each image once and report it as a JSON-ready dict.

The dict layout is a stable interface that scripts rely on:
``{"image", "value", "confidence", "box", "digits", "ms"}``, or ``{"image", "error"}`` for a bad file.
When the locator found more than one candidate, ``"candidates": [{"box", "value", "confidence",
"score"}, ...]`` lists each (best detector peak first; ``score`` is that peak), the chosen one among them.
Boxes are in the image file's pixels, also for a large JPEG decoded at reduced size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from device.choose import NO_NUMBER_BELOW
from device.errors import DigitcamError
from device.images import load_image_reduced
from device.reader import FrameReader

# A JPEG is decoded at 1/2, 1/4 or 1/8 size while its shorter side stays at least this long: a 4000x3000
# photo becomes 1000x750, still ~3x the locator's input, and decoding stops dominating the read.
READ_MIN_SIDE = 720


def read_image(recognizer, path: str, use_locator: bool = True, locator=None, annotate_dir: Path | None = None,
               min_confidence: float = 0.0, roi=None, min_side: int = READ_MIN_SIDE,
               min_score: float = NO_NUMBER_BELOW) -> dict:
    """One image path -> result dict; a bad image yields an ``error`` entry instead of raising.

    ``roi`` (x, y, w, h in the file's pixels) limits the search to that region (without the locator it is
    the crop). A reading less sure than ``min_confidence`` reports no number (``value`` null, no digits,
    its confidence kept), as a daemon sensor with that ``min_confidence`` would; so does a located number
    whose gate score (``device.choose.NumberGate``: is it a number at all) is below ``min_score``.
    """
    try:
        frame, factor = load_image_reduced(path, min_side)
    except DigitcamError as exc:
        return {"image": path, "error": str(exc)}
    reader = FrameReader(recognizer, locator if use_locator else None, min_score)
    scaled_roi = None if roi is None else tuple(int(v) // factor for v in roi)
    try:
        found = reader.read_candidates(frame, scaled_roi)
    except ValueError as exc:
        return {"image": path, "error": f"{exc} (roi {list(roi)})"}
    reading = found.reading
    result = {"image": path, **reading.as_dict(), "ms": round(found.ms, 3)}
    if len(found.candidates) > 1:
        result["candidates"] = [{"box": list(r.box), "value": r.value, "confidence": round(float(r.confidence), 4),
                                 "score": round(float(p), 4)} for r, p in zip(found.candidates, found.peaks)]
    if reading.confidence < min_confidence:
        result.update(value=None, digits=[])
    if annotate_dir is not None:
        from device.overlay import annotate_to_file

        annotate_to_file(frame, result, Path(annotate_dir) / (Path(path).stem + ".jpg"))
    if factor > 1:
        for item in [result, *result.get("candidates", [])]:
            if item["box"] is not None:
                item["box"] = [v * factor for v in item["box"]]
    return result


def read_images(recognizer, paths: Iterable[str], **kwargs) -> Iterator[dict]:
    """Results in input order, one per path."""
    for path in paths:
        yield read_image(recognizer, path, **kwargs)
