"""Scenes for the locator: a rendered number composited into a larger frame, with its box.

A frame is a background (wall, door, dashboard or meter face: gradient, texture, panels, lines),
clutter that is not a number (letters, symbols, shapes), and usually one number crop from the
rendered source pasted at a random place and size. The box (x, y, w, h) is the pasted crop: the number
with the margin a recognizer crop has. One frame in ten has no number (label '', box None).
"""

from __future__ import annotations

import logging
import string

import cv2
import numpy as np

from trainer import effects
from trainer.cluttered import KINDS, cluster_scene, meter_scene, watermark
from trainer.framing import frame_loosely_boxed
from trainer.house_scene import house_scene

CLUTTERED_KINDS = (*KINDS, "house")  # every kind ``cluttered_frame`` draws
from trainer.render import Renderer

log = logging.getLogger(__name__)

EMPTY_RATE = 0.1
_LETTERS = string.ascii_letters + "#.-/:%"
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_PLAIN)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A wall, door, panel or meter face: two-colour gradient, texture, a few panels and lines.

    Gradient and texture are made small and scaled up with OpenCV: a full-size float frame built with
    numpy broadcasting cost 50 ms, this costs a few.
    """
    a, b = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    t = np.linspace(0, 1, 16, dtype=np.float32)[:, None]
    ramp = (a * (1 - t) + b * t)[:, None, :] if rng.random() < 0.5 else (a * (1 - t) + b * t)[None, :, :]
    img = cv2.resize(ramp, (w, h), interpolation=cv2.INTER_LINEAR)
    texture = effects.window(effects.texture_bank(), max(2, h // 2), max(2, w // 2), rng) - 0.5
    texture = cv2.resize(texture * np.float32(rng.uniform(10, 80)), (w, h), interpolation=cv2.INTER_LINEAR)
    img += texture[:, :, None]
    for _ in range(int(rng.integers(0, 5))):  # panels, windows, frames
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1 if rng.random() < 0.5 else int(rng.integers(1, 6)))
    for _ in range(int(rng.integers(0, 4))):
        p = rng.integers(0, [w, h, w, h])
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, int(rng.integers(1, 8)))
    return np.clip(img, 0, 255, out=img).astype(np.uint8)


def plain_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A frame with nothing on it: one flat colour or a smooth ramp (lens cap, blank wall, light falling off).

    Such frames are easy to get wrong the other way: a locator that never saw them may find a number in
    mid-grey, the colour its letterbox padding has (docs/LOCATOR.md).
    """
    a = rng.uniform(0, 255, 3).astype(np.float32)
    if rng.random() < 0.5:
        return np.broadcast_to(a.astype(np.uint8), (h, w, 3)).copy()
    b = rng.uniform(0, 255, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xs / w * np.cos(angle) + ys / h * np.sin(angle)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    return np.clip(a * (1 - t[..., None]) + b * t[..., None], 0, 255).astype(np.uint8)


def clutter(img: np.ndarray, rng: np.random.Generator, avoid: tuple[int, int, int, int] | None) -> None:
    """Words and symbols that are not numbers, kept off the number's box so its label stays true."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(0, 6))):
        text = "".join(rng.choice(list(_LETTERS), int(rng.integers(1, 7))))
        scale = rng.uniform(0.4, 2.0)
        thickness = int(rng.integers(1, 4))
        (tw, th), _ = cv2.getTextSize(text, _FONTS[int(rng.integers(len(_FONTS)))], scale, thickness)
        x, y = int(rng.integers(0, max(1, w - tw))), int(rng.integers(th, max(th + 1, h)))
        if avoid is not None:
            ax, ay, aw, ah = avoid
            if x < ax + aw and x + tw > ax and y - th < ay + ah and y > ay:
                continue
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.putText(img, text, (x, y), _FONTS[int(rng.integers(len(_FONTS)))], scale, colour, thickness, cv2.LINE_AA)


def paste(frame: np.ndarray, crop: np.ndarray, rng: np.random.Generator, log_size: bool = False) -> tuple[int, int, int, int]:
    """Paste the crop scaled to 4-40 % of the frame height at a random place; returns its box.

    ``log_size`` draws the height log-uniformly (median 13 % instead of 22 %): three times as many
    small numbers, the locator's weak spot, for training sets.
    """
    h, w = frame.shape[:2]
    ch, cw = crop.shape[:2]
    share = np.exp(rng.uniform(np.log(0.04), np.log(0.4))) if log_size else rng.uniform(0.04, 0.4)
    target_h = int(h * share)
    scale = min(target_h / ch, 0.95 * w / cw)
    nh, nw = max(4, int(ch * scale)), max(4, int(cw * scale))
    crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x, y = int(rng.integers(0, w - nw + 1)), int(rng.integers(0, h - nh + 1))
    frame[y : y + nh, x : x + nw] = crop
    return x, y, nw, nh


def iter_scene_frames(split: str, rng: np.random.Generator, size: tuple[int, int] = (480, 640), difficulty: str = "full",
                      log_size: bool = False, strips: float = 0.0, empty_rate: float = EMPTY_RATE,
                      plain_rate: float = 0.0, cluttered: float = 0.0, cluttered_kinds: tuple[str, ...] = KINDS,
                      cluttered_empty: float = 0.0, framed: float = 0.0, framed_empty: float = 0.0):
    """Endless (frame RGB uint8 [h, w, 3], label, box (x, y, w, h) or None) for the locator.

    ``strips`` is the share of numbers that are real meter strips (photos of the split's own meters)
    instead of rendered crops: real digit wheels, as the camera on a meter sees them. ``plain_rate`` is
    the share of the scenes without a number that are plain (``plain_background``, no clutter).
    ``cluttered`` is the share of scenes with many other numbers around the wanted one
    (``trainer.cluttered``: instrument clusters, meter faces, date stamps); 0, the default, draws
    nothing for it, so the default streams stay as they were. ``cluttered_kinds`` picks among
    ``CLUTTERED_KINDS`` (``"house"``: ``trainer.house_scene``); ``cluttered_empty`` is the
    share of cluttered scenes drawn without their wanted number (negatives full of other numerals).
    ``framed`` is the share of frames that are a number crop framed loosely (``trainer.framing``, every
    clutter family), the image a user's loose ROI or an already-cropped photo gives ``digitcam read``:
    the locator must box the number inside it, not the bezel or a scale numeral. ``framed_empty`` is the
    share of those framed frames whose crop holds no number (a blank window or plate in the same
    housing and clutter): without them the locator learns that a framed middle is always a number.
    """
    h, w = size
    renderer = Renderer(difficulty, empty_rate=0.0, colour=True, split=split)  # val/test: held-out font families
    blank_renderer = Renderer(difficulty, empty_rate=1.0, colour=True, split=split) if framed_empty > 0 else None
    real = None
    if strips > 0:
        from trainer.meters import iter_meter_strips

        real = iter_meter_strips(split, rng)
    def number(rng):
        if real is not None and rng.random() < strips:
            crop, label = next(real)
            return (cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB) if crop.ndim == 2 else crop), label
        return renderer.sample(rng)

    while True:
        if framed > 0 and rng.random() < framed:  # drawn only then: default streams stay as they were
            blank = framed_empty > 0 and rng.random() < framed_empty
            crop, label = blank_renderer.sample(rng) if blank else number(rng)
            image, box = frame_loosely_boxed(crop, rng, digits=not blank)
            yield (cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image), label, (None if blank else box)
            continue
        frame = background(rng, h, w)
        if cluttered > 0 and rng.random() < cluttered:  # drawn only then: default streams stay as they were
            empty = cluttered_empty > 0 and rng.random() < cluttered_empty
            yield cluttered_frame(frame, rng, None if empty else number, log_size, cluttered_kinds)
            continue
        if rng.random() < empty_rate:
            if plain_rate > 0 and rng.random() < plain_rate:  # drawn only then: default streams stay as they were
                yield effects.camera(plain_background(rng, h, w), rng, rng.uniform(0.0, 0.6)), "", None
                continue
            label, box = "", None
        else:
            crop, label = number(rng)
            box = paste(frame, crop, rng, log_size)
        clutter(frame, rng, box)
        frame = effects.camera(frame, rng, rng.uniform(0.0, 0.6))
        yield frame, label, box


def cluttered_frame(frame: np.ndarray, rng: np.random.Generator, number, log_size: bool = False,
                    kinds: tuple[str, ...] = KINDS):
    """One scene of a random kind drawn over ``frame``: (frame, label, box); ``number`` None: no wanted number."""
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "cluster":
        label, box = cluster_scene(frame, rng, number)
    elif kind == "meter":
        label, box = meter_scene(frame, rng, number)
    elif kind == "house":
        if rng.random() < 0.5:  # portrait, as a phone holds it
            frame = np.ascontiguousarray(np.rot90(frame))
        label, box = house_scene(frame, rng, number)
    elif kind == "watermark":
        crop, label = number(rng) if number is not None else (None, "")
        box = paste(frame, crop, rng, log_size) if crop is not None else None
        clutter(frame, rng, box)
        watermark(frame, rng, box)
    else:
        raise ValueError(f"unknown cluttered scene kind {kind!r}: want one of {', '.join(CLUTTERED_KINDS)}")
    return effects.camera(frame, rng, rng.uniform(0.0, 0.6)), label, box
