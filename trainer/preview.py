"""``digitcam data preview``: a contact sheet of a source's samples with their labels, for a person to check.

Each cell shows the raw crop (colour, as the source made it) above the exact model input that
``prepare_crop`` makes of it, with the label underneath ('-' marks a "no number" crop). For
``--source scenes`` each cell is a whole frame with the number's box drawn.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import cv2
import numpy as np

from device.contract import InputSpec, prepare_crop
from device.errors import DigitcamError
from trainer.sources import SOURCES, iter_samples, iter_scenes

log = logging.getLogger(__name__)

CELL_W = 256
CROP_H = 64
TEXT_H = 18
COLUMNS = 4


def _fit(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Scale an RGB/grey image to fit h x w (keeping its aspect) on a mid-grey cell."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    ih, iw = image.shape[:2]
    scale = min(h / ih, w / iw)
    nh, nw = max(1, int(ih * scale)), max(1, int(iw * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
    cell = np.full((h, w, 3), 128, np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    cell[y : y + nh, x : x + nw] = resized
    return cell


def _caption(text: str, w: int) -> np.ndarray:
    strip = np.full((TEXT_H, w, 3), 255, np.uint8)
    cv2.putText(strip, text, (4, TEXT_H - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def crop_cell(image: np.ndarray, label: str, spec: InputSpec = InputSpec()) -> np.ndarray:
    """Raw crop, model input (2x) and label stacked into one cell."""
    model_in = prepare_crop(image, spec)[:, :, 0]
    raw = _fit(image, CROP_H, CELL_W)
    seen = _fit(model_in, 2 * spec.height, CELL_W)
    h, w = image.shape[:2]
    return np.vstack([raw, seen, _caption(f"{label or '-'}   ({w}x{h})", CELL_W)])


def scene_cell(frame: np.ndarray, label: str, box) -> np.ndarray:
    """A frame scaled down with the number's box drawn in green."""
    scale = CELL_W * 2 / frame.shape[1]
    small = cv2.resize(frame, (CELL_W * 2, int(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA).copy()
    if box is not None:
        x, y, w, h = (int(round(v * scale)) for v in box)
        cv2.rectangle(small, (x, y), (x + w, y + h), (0, 255, 0), 2)
    return np.vstack([small, _caption(label or "- (no number)", small.shape[1])])


def contact_sheet(cells: list[np.ndarray], columns: int = COLUMNS) -> np.ndarray:
    """Cells of equal size in a grid, with thin white gutters."""
    h, w = cells[0].shape[:2]
    rows = (len(cells) + columns - 1) // columns
    sheet = np.full((rows * (h + 4), columns * (w + 4), 3), 255, np.uint8)
    for i, cell in enumerate(cells):
        r, c = divmod(i, columns)
        sheet[r * (h + 4) : r * (h + 4) + h, c * (w + 4) : c * (w + 4) + w] = cell
    return sheet


def build_sheet(source: str, n: int, seed: int, split: str, **options) -> np.ndarray:
    """The contact sheet (RGB) of the first n samples of a source."""
    if source == "scenes":
        cells = [scene_cell(f, lbl, b) for f, lbl, b in itertools.islice(iter_scenes(split, seed), n)]
        return contact_sheet(cells, columns=2)
    if source == "rendered":
        options.setdefault("colour", True)  # the model sees the same grey; people see more in colour
    cells = [crop_cell(img, lbl) for img, lbl in itertools.islice(iter_samples(source, split, seed, **options), n)]
    if not cells:
        raise DigitcamError(f"source {source!r} gave no samples for split {split!r}")
    return contact_sheet(cells)


def main(args) -> int:
    """Entry point of ``digitcam data preview``."""
    if args.source not in SOURCES and args.source != "scenes":
        raise DigitcamError(f"unknown source {args.source!r}: want one of {', '.join([*SOURCES, 'scenes'])}")
    if args.n < 1:
        raise DigitcamError(f"-n must be at least 1, got {args.n}")
    options = {}
    if args.source == "svhn":
        if args.svhn_dir is None:
            raise DigitcamError("--source svhn needs --svhn-dir (a folder with digitStruct.mat and PNGs)")
        options["svhn_dir"] = args.svhn_dir
    try:
        sheet = build_sheet(args.source, args.n, args.seed, args.split, **options)
    except (FileNotFoundError, ValueError) as exc:
        raise DigitcamError(str(exc)) from exc
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise DigitcamError(f"cannot write {out}")
    print(f"wrote {out} ({args.source}/{args.split}, seed {args.seed})")
    return 0
