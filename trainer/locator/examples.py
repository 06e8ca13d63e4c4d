"""Locator training examples: whole scenes and zoomed windows around the number, as model inputs and corners.

Training examples are whole scenes and, for a share of them, *zoomed* windows around the number
(down to a tight crop), so the same model also finds a number that already fills the image.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import numpy as np

from device.heatmap import fit_frame
from trainer.cluttered import KINDS

log = logging.getLogger(__name__)

ZOOM_RATE = 0.3  # share of training examples cut as a window around the number instead of the whole scene

# Training scenes are rendered at half the camera's size: 3.7x faster, and the model sees them at
# 160x120 anyway. Held-out scenes are rendered at the full 480x640 the device sees.
RENDER_SIZE = (240, 320)


def zoom_window(frame_shape, box, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random window (x, y, w, h) inside the frame that contains ``box``: from a tight crop to a wide view."""
    fh, fw = frame_shape[:2]
    if box is None:
        ww = int(rng.uniform(0.15, 0.7) * fw)
        wh = int(max(8, ww * rng.uniform(0.2, 0.8)))
        return int(rng.integers(0, fw - ww + 1)), int(rng.integers(0, max(1, fh - wh + 1))), ww, min(wh, fh)
    bx, by, bw, bh = box
    if rng.random() < 0.5:  # tight: the number fills most of the window, like a recognizer crop
        ww = bw / rng.uniform(0.6, 0.97)
        wh = bh * rng.uniform(1.1, 2.5)
    else:  # a closer view with some surroundings
        ww = bw / rng.uniform(0.2, 0.6)
        wh = ww * rng.uniform(0.5, 0.85)
    ww, wh = min(fw, max(ww, bw)), min(fh, max(wh, bh))
    x = rng.uniform(max(0, bx + bw - ww), max(0, min(bx, fw - ww)) + 1e-6)
    y = rng.uniform(max(0, by + bh - wh), max(0, min(by, fh - wh)) + 1e-6)
    return int(x), int(y), max(1, int(round(ww))), max(1, int(round(wh)))


def scene_example(frame: np.ndarray, box, rng: np.random.Generator | None, height: int, width: int,
                  zoom_rate: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A scene -> (model input ``[height, width]`` uint8, the number's input-pixel corners or NaNs)."""
    if rng is not None and rng.random() < zoom_rate:
        wx, wy, ww, wh = zoom_window(frame.shape, box, rng)
        frame = frame[wy : wy + wh, wx : wx + ww]
        if box is not None:
            x0, y0 = max(box[0], wx), max(box[1], wy)
            x1, y1 = min(box[0] + box[2], wx + ww), min(box[1] + box[3], wy + wh)
            box = (x0 - wx, y0 - wy, x1 - x0, y1 - y0)
    small, fit = fit_frame(frame, height, width)
    corners = np.full(4, np.nan, np.float32) if box is None else np.asarray(fit.to_input(box), np.float32)
    return small, corners


def make_scene_set(split: str, n: int, seed: int, height: int, width: int, zoom_rate: float = 0.0,
                   cache: Path | None = None, size: tuple[int, int] = RENDER_SIZE,
                   log_size: bool = False, strips: float = 0.0,
                   empty_rate: float | None = None, plain_rate: float = 0.0,
                   cluttered: float = 0.0, cluttered_kinds: tuple[str, ...] = KINDS,
                   cluttered_empty: float = 0.0, framed: float = 0.0,
                   framed_empty: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes as model inputs ``[n, h, w]`` uint8 and corners ``[n, 4]`` (NaN: no number); cached."""
    if cache is not None and cache.is_file():
        data = np.load(cache)
        if len(data["images"]) >= n:
            return data["images"][:n], data["corners"][:n]
    from trainer.sources import iter_scenes

    rng = np.random.default_rng(seed + 17)
    options = {"plain_rate": plain_rate, "cluttered": cluttered, "cluttered_kinds": cluttered_kinds,
               "cluttered_empty": cluttered_empty, "framed": framed, "framed_empty": framed_empty} | ({} if empty_rate is None else {"empty_rate": empty_rate})
    images = np.zeros((n, height, width), np.uint8)
    corners = np.zeros((n, 4), np.float32)
    started = time.monotonic()
    for i, (frame, _, box) in enumerate(itertools.islice(iter_scenes(split, seed, size=size, log_size=log_size, strips=strips, **options), n)):
        images[i], corners[i] = scene_example(frame, box, rng, height, width, zoom_rate)
        if i and i % 2000 == 0:
            log.info("%s scenes: %d/%d (%.0f/s)", split, i, n, i / (time.monotonic() - started))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, corners=corners)
    return images, corners


def load_scene_files(files) -> tuple[np.ndarray, np.ndarray]:
    """Scene sets written by ``scenes`` (or a run's cache), concatenated: (images, corners)."""
    sets = [np.load(f) for f in files]
    return np.concatenate([d["images"] for d in sets]), np.concatenate([d["corners"] for d in sets])
