"""Decoding image files into frames, with a one-line error for anything that is not a usable image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.errors import SourceError

MAX_PIXELS = 64_000_000  # refuse decompression bombs before they eat a Pi's memory
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


def check_frame(frame, what: str = "frame") -> np.ndarray:
    """A decoded frame must be a non-empty 2-D or 3-D array of a sane size; else SourceError."""
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
        shape = getattr(frame, "shape", None)
        raise SourceError(f"unreadable {what}: not an image (shape {shape})")
    if frame.ndim == 3 and frame.shape[2] not in (1, 3, 4):
        raise SourceError(f"unreadable {what}: {frame.shape[2]} channels")
    if frame.shape[0] * frame.shape[1] > MAX_PIXELS:
        raise SourceError(f"unreadable {what}: {frame.shape[1]}x{frame.shape[0]} is too large")
    return frame


def is_blank(frame: np.ndarray, levels: int = 8) -> bool:
    """True when a frame shows nothing (lens cap, darkness, dead sensor): every sampled pixel within
    ``levels`` shades of the others. A grid of every 8th pixel keeps this cheap on a Pi."""
    sample = frame[::8, ::8]
    return sample.size == 0 or int(sample.max()) - int(sample.min()) < levels


def decode_image(data: bytes, what: str = "image") -> np.ndarray:
    """Encoded bytes (JPEG, PNG, ...) -> BGR or grey array, keeping 16-bit depth for the contract to reduce."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise SourceError(f"unreadable {what}: empty file")
    try:
        frame = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise SourceError(f"unreadable {what}: {str(exc).strip().splitlines()[-1]}") from None
    if frame is None:
        raise SourceError(f"unreadable {what}: not a decodable image")
    return check_frame(frame, what)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file; a missing, empty, truncated or foreign file raises SourceError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"unreadable image {path}: {exc.strerror or exc}") from None
    return decode_image(data, f"image {path}")
