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


def jpeg_size(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG's frame header, without decoding; None if not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:  # no length field
            at += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame header
            if at + 10 > len(data):
                return None
            return (int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(data[at + 5 : at + 7], "big"), data[at + 9])
        at += 2 + length
    return None


_REDUCED = {  # (colour, grey) decode flags per scale; orientation ignored, as IMREAD_UNCHANGED does
    2: (cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
    4: (cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    8: (cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
}


def decode_reduced(data: bytes, what: str = "image", min_side: int = 0) -> tuple[np.ndarray, int]:
    """Like ``decode_image``, but a JPEG whose shorter side is at least twice ``min_side`` is decoded at
    1/2, 1/4 or 1/8 size (the largest keeping that side >= ``min_side``): (frame, the factor).

    A JPEG decoder can skip most of the work for a reduced image (it scales the DCT), so a 4000x3000
    photo costs a few ms instead of ~100 and the locator, which sees 256x192, loses nothing.
    """
    size = jpeg_size(data) if min_side > 0 else None
    factor = 1
    if size is not None:
        while factor < 8 and min(size[:2]) // (factor * 2) >= min_side:
            factor *= 2
    if factor == 1:
        return decode_image(data, what), 1
    flags = _REDUCED[factor][size[2] == 1] | cv2.IMREAD_IGNORE_ORIENTATION
    frame = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if frame is None:
        raise SourceError(f"unreadable {what}: not a decodable image")
    return check_frame(frame, what), factor


def read_bytes(path: Path) -> bytes:
    """A file's bytes; a missing or unreadable file raises SourceError."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"unreadable image {path}: {exc.strerror or exc}") from None


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file; a missing, empty, truncated or foreign file raises SourceError."""
    path = Path(path)
    return decode_image(read_bytes(path), f"image {path}")


def load_image_reduced(path: str | Path, min_side: int) -> tuple[np.ndarray, int]:
    """Read an image file, a large JPEG at reduced size (``decode_reduced``): (frame, the factor)."""
    path = Path(path)
    return decode_reduced(read_bytes(path), f"image {path}", min_side)
