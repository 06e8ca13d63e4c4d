"""MNIST sequences, the classic synthetic multi-digit task: 1-5 handwritten digits side by side.

Digits are trimmed to their ink columns and placed with random spacing (sometimes touching or
overlapping), a little vertical jitter and either polarity. Train draws from ``x_train``; val and
test from the two halves of ``x_test``, so no handwritten digit is in two splits.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from trainer import effects
from trainer.fetch import data_root, missing

log = logging.getLogger(__name__)

MAX_MNIST_DIGITS = 5


def mnist_path() -> Path:
    return data_root() / "mnist" / "mnist.npz"


@lru_cache(maxsize=2)
def load_split(split: str, path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, 28, 28] uint8 white-on-black, labels [n]) of a split, read once per process."""
    path = path or mnist_path()
    if not path.is_file():
        raise missing("MNIST", path, "mnist")
    with np.load(path) as data:
        if split == "train":
            return data["x_train"], data["y_train"]
        half = len(data["x_test"]) // 2
        part = slice(0, half) if split == "val" else slice(half, None)
        return data["x_test"][part], data["y_test"][part]


def _trim(digit: np.ndarray) -> np.ndarray:
    """The digit's ink columns only, so spacing is measured between strokes, not between 28 px boxes."""
    cols = np.flatnonzero(digit.max(axis=0) > 30)
    return digit[:, cols[0] : cols[-1] + 1] if cols.size else digit


def compose_sequence(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Place trimmed digits left to right with gaps of -3..+8 px (negative overlaps), max-blended."""
    parts = [_trim(d) for d in digits]
    gaps = rng.integers(-3, 9, len(parts))
    margin = int(rng.integers(2, 10))
    width = sum(p.shape[1] for p in parts) + int(np.clip(gaps[1:], 0, None).sum()) + 2 * margin + 8
    canvas = np.zeros((36, width), np.uint8)
    x = margin
    for i, part in enumerate(parts):
        if i:
            x = max(0, x + int(gaps[i]))
        y = int(rng.integers(0, 9))
        region = canvas[y : y + 28, x : x + part.shape[1]]
        np.maximum(region, part[:, : region.shape[1]], out=region)
        x += part.shape[1]
    canvas = canvas[:, : x + margin]
    if canvas.shape[1] < canvas.shape[0]:  # crops are at least square, like the model's other crops
        pad = canvas.shape[0] - canvas.shape[1]
        canvas = np.pad(canvas, ((0, 0), (pad // 2, pad - pad // 2)))
    return canvas


def iter_mnist(split: str, rng: np.random.Generator, max_digits: int = MAX_MNIST_DIGITS, path: Path | None = None):
    """The ``mnist`` source: endless sequences of 1..max_digits digits (grey), either polarity."""
    images, labels = load_split(split, path)
    while True:
        n = int(rng.integers(1, max_digits + 1))
        idx = rng.integers(0, len(images), n)
        seq = compose_sequence([images[i] for i in idx], rng)
        ink, paper = rng.uniform(150, 255), rng.uniform(0, 90)
        img = (paper + seq.astype(np.float32) * ((ink - paper) / 255.0)).astype(np.uint8)
        if rng.random() < 0.5:
            img = 255 - img
        if rng.random() < 0.5:
            img = effects.add_noise(img, rng, rng.uniform(2, 10))
        yield img, "".join(str(int(labels[i])) for i in idx)
