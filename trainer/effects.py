"""Camera effects: what a cheap camera, a plastic window and bad light do to a clean rendered number.

Every effect is a small function ``(image uint8 HxW grey or HxWx3 RGB, rng, ...) -> image`` so the renderer, the meter strips
and the scene compositor share them. They work on images near the model's input size and draw their
noise from a precomputed bank, which keeps a sample well under a millisecond.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import cv2
import numpy as np

log = logging.getLogger(__name__)

_BANK_SHAPE = (512, 1024)  # as large as a half-size scene frame; bigger requests tile it


@lru_cache(maxsize=1)
def noise_bank() -> np.ndarray:
    """A fixed field of unit gaussian noise; effects cut random windows from it instead of sampling anew."""
    return np.random.default_rng(12345).standard_normal(_BANK_SHAPE).astype(np.float32)


@lru_cache(maxsize=1)
def texture_bank() -> np.ndarray:
    """Low-pass noise at several scales in 0..1: plaster, paper, brushed metal and dirt all come from it."""
    rng = np.random.default_rng(54321)
    h, w = _BANK_SHAPE
    total = np.zeros(_BANK_SHAPE, np.float32)
    for scale, weight in ((2, 0.5), (8, 0.3), (32, 0.2)):
        small = rng.standard_normal((h // scale + 1, w // scale + 1)).astype(np.float32)
        total += weight * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w]
    total -= total.min()
    return total / total.max()


def window(bank: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random h x w window of a bank (tiled when the request is larger than the bank)."""
    bh, bw = bank.shape
    if h > bh or w > bw:
        bank = np.tile(bank, (h // bh + 1, w // bw + 1))
        bh, bw = bank.shape
    y = int(rng.integers(0, bh - h + 1))
    x = int(rng.integers(0, bw - w + 1))
    return bank[y : y + h, x : x + w]


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


def per_pixel(field: np.ndarray, img: np.ndarray) -> np.ndarray:
    """An HxW field shaped to broadcast over a grey (HxW) or colour (HxWxC) image."""
    return field if img.ndim == 2 else field[:, :, None]


def add_noise(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Sensor noise: grey-level gaussian noise of ``sigma`` grey levels."""
    h, w = img.shape[:2]
    n = window(noise_bank(), h, w, rng) * sigma
    return _to_u8(img.astype(np.float32) + per_pixel(n, img))


def gaussian_blur(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Focus blur."""
    return cv2.GaussianBlur(img, (0, 0), sigma)


def motion_blur(img: np.ndarray, rng: np.random.Generator, length: int) -> np.ndarray:
    """Blur along a random direction, as from a shaking mount or a passing car."""
    length = max(2, int(length))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(img, -1, kernel)


def uneven_light(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A linear light gradient across the crop plus an optional soft spot (shadow of a roof or a hand)."""
    h, w = img.shape[:2]
    gx = np.linspace(-1, 1, w, dtype=np.float32) * rng.uniform(-strength, strength)
    gy = np.linspace(-1, 1, h, dtype=np.float32) * rng.uniform(-strength, strength)
    gain = 1.0 + gy[:, None] + gx[None, :]
    return _to_u8(img.astype(np.float32) * per_pixel(np.clip(gain, 0.15, 2.0), img))


def glare(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A bright elliptical specular spot, as from a lamp reflecting on a meter window or glossy plaque."""
    h, w = img.shape[:2]
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    sx, sy = rng.uniform(0.05, 0.4) * w + 1, rng.uniform(0.1, 0.6) * h + 1
    xs = ((np.arange(w, dtype=np.float32) - cx) / sx) ** 2
    ys = ((np.arange(h, dtype=np.float32) - cy) / sy) ** 2
    spot = np.exp(-(ys[:, None] + xs[None, :])) * (255.0 * strength)
    return _to_u8(img.astype(np.float32) + per_pixel(spot, img))


def colour_cast(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """White balance off: each channel scaled a little differently (sodium lamps, IR-cut-less cameras).

    On a grey image this is what the model would see of it: a change of brightness.
    """
    gains = (1.0 + rng.uniform(-strength, strength, 3 if img.ndim == 3 else 1)).astype(np.float32)
    return _to_u8(img.astype(np.float32) * gains)


def contrast(img: np.ndarray, rng: np.random.Generator, low: float) -> np.ndarray:
    """Washed out or dim: scale the contrast around a random level (fog, dirty window, night)."""
    k = rng.uniform(low, 1.0)
    mid = rng.uniform(40, 215)
    return _to_u8((img.astype(np.float32) - mid) * k + mid)


def jpeg(img: np.ndarray, rng: np.random.Generator, quality: int) -> np.ndarray:
    """JPEG artefacts at a given quality, as from an IP camera's stream."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else img


def low_resolution(img: np.ndarray, rng: np.random.Generator, factor: float) -> np.ndarray:
    """Down- then up-sample: a number seen from far away by a small sensor."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(2, round(w / factor)), max(2, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def perspective(img: np.ndarray, rng: np.random.Generator, amount: float, angle: float) -> np.ndarray:
    """Rotate by up to ``angle`` degrees and move the corners by up to ``amount`` of the height (oblique view)."""
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-amount, amount, (4, 2)).astype(np.float32) * np.float32([0.5 * h, h])
    # Rotating a wide crop swings its ends up and down; keep that within ~12 % of the height.
    angle = min(angle, float(np.degrees(np.arcsin(min(1.0, 0.24 * h / w)))))
    theta = np.deg2rad(rng.uniform(-angle, angle))
    c, s = np.cos(theta), np.sin(theta)
    centre = np.float32([w / 2, h / 2])
    rot = (src - centre) @ np.float32([[c, s], [-s, c]]) + centre
    matrix = cv2.getPerspectiveTransform(src, (rot + jitter).astype(np.float32))
    return cv2.warpPerspective(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def camera(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """The usual chain of effects, each with its own probability; ``strength`` 0 leaves the image alone.

    The order follows the light path: scene light, lens (blur), sensor (noise, resolution), encoder (JPEG).
    Blur and resolution loss scale with the crop's height so a small crop is not blurred past reading.
    """
    if strength <= 0:
        return img
    s = strength
    size = min(1.0, img.shape[0] / 40.0)
    if rng.random() < 0.5 * s:
        img = perspective(img, rng, 0.12 * s, 4.0 * s)
    if rng.random() < 0.5 * s:
        img = uneven_light(img, rng, 0.5 * s)
    if rng.random() < 0.15 * s:
        img = glare(img, rng, rng.uniform(0.2, 0.8))
    if rng.random() < 0.4 * s:
        img = colour_cast(img, rng, 0.25 * s)
    if rng.random() < 0.35 * s:
        img = contrast(img, rng, max(0.4, 1.0 - 0.6 * s))
    r = rng.random()
    if r < 0.3 * s:
        img = gaussian_blur(img, rng, rng.uniform(0.3, 0.5 + 1.2 * s) * size)
    elif r < 0.4 * s:
        img = motion_blur(img, rng, rng.integers(2, 3 + int(5 * s * size)))
    elif rng.random() < 0.3 * s:
        # never below ~8 px per digit height (digits fill ~60 % of a crop's height)
        most = max(1.0, min(1.3 + 1.7 * s * size, img.shape[0] * 0.6 / 8))
        if most > 1.05:
            img = low_resolution(img, rng, rng.uniform(1.0, most))
    if rng.random() < 0.6 * s:
        # noise at most ~a third of the image's own spread, so a faint number is not drowned
        img = add_noise(img, rng, min(rng.uniform(2, 4 + 14 * s), 1.0 + 0.35 * float(img.std())))
    if rng.random() < 0.3 * s:
        img = jpeg(img, rng, rng.integers(max(10, int(60 - 45 * s)), 85))
    return img
