"""Finding the number in a frame: the locator model, the crop it gives the recognizer, and a box tracker.

The locator is a tiny int8 heat-map network (``trainer/locator/model.py``; design and measurements in
``docs/LOCATOR.md``). A frame is letterboxed, grey, into the model's input (``fit_frame``); the model
says for each grid cell how likely it lies on the number and how far the number's edges are from it.
``decode_heatmap`` turns that into one box: the cells around the strongest peak vote for the edges,
weighted by their heat. No peak above the threshold means no number (``None``).

The box is then widened by a margin the way the recognizer's training crops were cut
(``trainer.render.frame``) and mapped back to full-resolution pixels, so the crop is read at full detail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.bundled import REPO_LOCATOR, bundled_locator  # noqa: F401  (REPO_LOCATOR: for callers of device.locate)
from device.contract import to_gray
from device.errors import ModelError
from device.manifest import read_verified_manifest
from device.tflite_model import TFLiteModel, uint8_image_shape

log = logging.getLogger(__name__)

LOCATOR_KIND = "locator"
LOCATOR_PREPROCESS = "gray-letterbox-locator-v1"
STRIDE = 4  # input pixels per output cell
BOX_UNIT = 8.0  # the ``box`` output counts edge distances in units of this many input pixels
DEFAULT_THRESHOLD = 0.5  # peak heat below this: no number in the frame
DEFAULT_MARGIN = 0.0  # of the number's height, added on every side (the trained box already has a margin)
BLOB_FRACTION = 0.5  # cells at least this share of the peak belong to the peak's blob
MIN_ASPECT, MAX_ASPECT = 1.0, 6.0  # the crop's width:height range, as in the recognizer's training crops
REFINE_GROW_X, REFINE_GROW_Y = 0.25, 0.5  # the second pass's window around the first box, of its width/height
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
# A box covering this share of the image means the image is already a crop of the number: read it
# whole. Chosen with recognizer v2 on 400 + 400 framed val crops (loose margins and clutter) and the same
# numbers cropped tight (bench/loose_crops.py): 0.4 read 58.5 / 83.0 % right, 0.6 72.8 / 80.2 %, 0.8 and
# above 72.8 / 76.8 %; 0.6 has the best sum. (v1 era: 0.3 cost 640x480 scenes 2.5 points.) docs/MODEL.md.
WHOLE_FRAME_COVER = 0.6
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


# ---- geometry shared with the trainer -----------------------------------------------------------------


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


def cell_centres(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Input-pixel centres of the output grid's columns (x) and rows (y)."""
    return (np.arange(cols, dtype=np.float32) + 0.5) * STRIDE, (np.arange(rows, dtype=np.float32) + 0.5) * STRIDE


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


def expand(box, frame_shape, margin: float) -> Box:
    """A tight (x, y, w, h) -> the crop the recognizer expects, in whole pixels inside the frame.

    ``margin`` times the number's height on every side, then widened to at least 1:1 or heightened to
    at most 6:1 around its centre, as ``trainer.render.frame`` cuts the training crops.
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


# ---- the model ---------------------------------------------------------------------------------------


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
        ``WHOLE_FRAME_COVER`` of it). The first is ``find``'s box whenever its blob is one thing.
        """
        if roi is not None:
            x, y, _, _ = roi
            return [Candidate((b[0] + x, b[1] + y, b[2], b[3]), c.score)
                    for c in self.candidates(crop(frame, roi)) for b in [c.box]]
        heat, ltrb, fit = self.maps(frame)
        out: list[Candidate] = []
        for corners, score in decode_candidates(heat, ltrb, self.threshold, self.max_candidates, self.candidate_floor):
            box = self._crop_box(fit.to_frame(corners), frame)
            if box is not None and all(box != other.box for other in out):
                out.append(Candidate(box, score))
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


# ---- temporal stability ---------------------------------------------------------------------------------


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
