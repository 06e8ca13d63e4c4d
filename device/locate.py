"""Finding the number in a frame: the locator model and the crop box it gives the recognizer.

The locator is a tiny int8 heat-map network; its input geometry and the decoding of its heat map are
``device/heatmap.py`` (shared with the trainer). The box it finds is widened by a margin the way the
recognizer's training crops were cut and mapped back to full-resolution pixels (``device/boxes.py``),
so the crop is read at full detail. Between searches the daemon's box is tracked (``device/tracker.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.boxes import Box, crop, expand, parse_views, view_boxes, whole_frame
from device.bundled import bundled_locator
from device.errors import ModelError
from device.heatmap import CANDIDATE_FLOOR, MAX_CANDIDATES, Fit, decode_candidates, decode_heatmap, fit_frame
from device.manifest import read_verified_manifest
from device.tflite_model import TFLiteModel, uint8_image_shape

log = logging.getLogger(__name__)

LOCATOR_KIND = "locator"
LOCATOR_PREPROCESS = "gray-letterbox-locator-v1"
DEFAULT_THRESHOLD = 0.5  # peak heat below this: no number in the frame
DEFAULT_MARGIN = 0.0  # of the number's height, added on every side (the trained box already has a margin)
REFINE_GROW_X, REFINE_GROW_Y = 0.25, 0.5  # the second pass's window around the first box, of its width/height
# A box covering this share of the image means the image is already a crop of the number: read it
# whole. Chosen for locator v4 (320x240) and recognizer v4 on 400 + 400 framed val crops (loose margins
# and clutter) and the same numbers cropped tight (bench/loose_crops.py): cover 0.35 read 66.5 / 84.2 %
# right, 0.4 75.0 / 81.5 %, 0.45 77.0 / 78.2 %, 0.5 78.8 / 75.5 %, 0.6 78.8 / 73.5 %; 0.4 has the best sum.
# (Locator v3 boxes a tight crop wider: with it 0.6 was best, 72.8 / 80.2 % with recognizer v2.) docs/MODEL.md.
WHOLE_FRAME_COVER = 0.4


def load_locator_manifest(model_path: Path) -> dict:
    """Read and verify the locator's manifest (preprocessing, sha256, kind); a mismatch is a ModelError."""
    data = read_verified_manifest(model_path, what="locator model", preprocess=LOCATOR_PREPROCESS)
    if data.get("kind") != LOCATOR_KIND:
        raise ModelError(f"{model_path} is not a locator: its manifest says kind {data.get('kind')!r}")
    return data


@dataclass(frozen=True)
class Detection:
    """The number's tight box in frame pixels (floats) and the heat-map peak that found it."""

    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class Candidate:
    """One place the number may be: its crop box in frame pixels and the heat-map peak that found it."""

    box: Box
    score: float
    inner: Box | None = None  # a whole-image candidate's located crop box: its views vote with the whole image


class Locator(TFLiteModel):
    """Finds the number in frames with one interpreter, built once; ``find`` gives the crop box,
    ``candidates`` several separate ones for the reader to choose among."""

    def __init__(self, model_path: str | Path, threads: int = 1, runtime: str = "auto",
                 threshold: float | None = None, margin: float | None = None, refine: bool | None = None,
                 views=None, max_candidates: int = MAX_CANDIDATES, candidate_floor: float | None = CANDIDATE_FLOOR):
        self.model_path = Path(model_path)
        self.manifest = load_locator_manifest(self.model_path)
        self.threshold = float(threshold if threshold is not None else self.manifest.get("threshold", DEFAULT_THRESHOLD))
        self.margin = float(margin if margin is not None else self.manifest.get("margin", DEFAULT_MARGIN))
        self.refine = bool(refine if refine is not None else self.manifest.get("refine", True))
        self.views = parse_views(views if views is not None else self.manifest.get("crops"), str(self.model_path))
        self.max_candidates = int(max_candidates)
        # peaks below it seed no candidate; never above the threshold (None: the threshold)
        self.candidate_floor = None if candidate_floor is None else min(float(candidate_floor), self.threshold)
        inputs = self._open(self.model_path, threads, runtime, no_signature=f"locator {self.model_path} has no signature")
        if len(inputs) != 1 or not {"heatmap", "box"} <= set(self._output_details):
            raise ModelError(f"locator {self.model_path} has inputs {sorted(inputs)} and outputs "
                             f"{sorted(self._output_details)}: want one image input, 'heatmap' and 'box' outputs")
        (self._input_name, details), = inputs.items()
        shape = uint8_image_shape(details)
        if shape is None:
            shape = list(details["shape"])
            raise ModelError(f"locator {self.model_path} input is {np.dtype(details['dtype']).name}{shape}: "
                             "want uint8[1, height, width, 1]")
        self.height, self.width = int(shape[1]), int(shape[2])
        log.info("locator %s@%s (%dx%d, threshold %.2f) on %s", self.manifest.get("name", "locator"),
                 self.manifest.get("version", "?"), self.width, self.height, self.threshold, self.runtime)

    def maps(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, Fit]:
        """The raw outputs for one frame: heat ``[rows, cols]``, edge distances ``[rows, cols, 4]``, the Fit."""
        small, fit = fit_frame(frame, self.height, self.width)
        out = self._run(small[None, :, :, None])
        heat, ltrb = out["heatmap"][0, :, :, 0], out["box"][0]
        return heat, ltrb, fit

    def _locate_once(self, frame: np.ndarray, threshold: float) -> Detection | None:
        heat, ltrb, fit = self.maps(frame)
        found = decode_heatmap(heat, ltrb, threshold)
        if found is None:
            return None
        corners, score = found
        return Detection(box=fit.to_frame(corners), score=score)

    def locate(self, frame: np.ndarray) -> Detection | None:
        """The number's tight box in frame pixels, or None when no cell is hot enough.

        With ``refine`` a second pass looks again at a window around the first box, where the number
        spans most of the model's input and its edges are placed several times more finely.
        """
        found = self._locate_once(frame, self.threshold)
        if found is None or not self.refine:
            return found
        x, y, w, h = found.box
        gx, gy = REFINE_GROW_X * w, REFINE_GROW_Y * h
        x0, y0 = int(max(0, x - gx)), int(max(0, y - gy))
        x1, y1 = int(min(frame.shape[1], np.ceil(x + w + gx))), int(min(frame.shape[0], np.ceil(y + h + gy)))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return found
        again = self._locate_once(frame[y0:y1, x0:x1], 0.0)
        if again is None:
            return found
        bx, by, bw, bh = again.box
        return Detection(box=(bx + x0, by + y0, bw, bh), score=found.score)

    def find(self, frame: np.ndarray, roi: Box | None = None) -> Box | None:
        """The crop box (x, y, w, h, with margin) of the number in ``frame``, or None (no number).

        A box covering ``WHOLE_FRAME_COVER`` of the image gives the whole image: it is a crop already.
        With ``roi`` only that part of the frame is searched (a configured ROI narrowed by the locator);
        the box is still in full-frame pixels.
        """
        if roi is not None:
            x, y, _, _ = roi
            box = self.find(crop(frame, roi))
            return None if box is None else (box[0] + x, box[1] + y, box[2], box[3])
        found = self.locate(frame)
        return None if found is None else self._crop_box(found.box, frame)

    def _crop_box(self, tight, frame: np.ndarray) -> Box | None:
        """A found tight box -> the box to read: expanded by the margin, or the whole image when it covers
        ``WHOLE_FRAME_COVER`` of it; None for an empty box. ``find`` and ``candidates`` both cut so."""
        if min(tight[2:]) <= 0:
            return None
        box = expand(tight, frame.shape, self.margin)
        if box[2] * box[3] >= WHOLE_FRAME_COVER * frame.shape[0] * frame.shape[1]:
            return whole_frame(frame)  # the number fills the image: it is a crop already, read all of it
        return box

    def candidates(self, frame: np.ndarray, roi: Box | None = None) -> list[Candidate]:
        """Up to ``MAX_CANDIDATES`` separate crop boxes, best peak first (empty: no number); one pass.

        Each box is cut as ``find``'s is (``_crop_box``: the whole image, kept once, for a box covering
        ``WHOLE_FRAME_COVER`` of it, with the located box as its ``inner``). The first is ``find``'s box
        whenever its blob is one thing.
        """
        if roi is not None:
            x, y, _, _ = roi
            def shifted(b):
                return None if b is None else (b[0] + x, b[1] + y, b[2], b[3])

            return [Candidate(shifted(c.box), c.score, shifted(c.inner)) for c in self.candidates(crop(frame, roi))]
        heat, ltrb, fit = self.maps(frame)
        out: list[Candidate] = []
        for corners, score in decode_candidates(heat, ltrb, self.threshold, self.max_candidates, self.candidate_floor):
            tight = fit.to_frame(corners)
            box = self._crop_box(tight, frame)
            if box is not None and all(box != other.box for other in out):
                inner = expand(tight, frame.shape, self.margin)
                out.append(Candidate(box, score, inner if inner != box else None))
        return out

    def view_boxes(self, box: Box, frame_shape) -> list[Box]:
        """The crops to read for a box this locator found: ``box`` through each of the manifest's views."""
        return view_boxes(box, frame_shape, self.views)

    def describe(self) -> dict:
        return {"name": self.manifest.get("name"), "version": self.manifest.get("version"),
                "sha256": self.manifest["sha256"][:12]}


def default_locator(path=None, **options) -> Locator | None:
    """The locator to use: ``path`` (must exist), else the bundled model, else None (read the whole frame)."""
    if path is not None:
        return Locator(path, **options)
    bundled = bundled_locator()
    if bundled.is_file():
        return Locator(bundled, **options)
    log.warning("no locator model at %s: reading whole frames", bundled)
    return None
