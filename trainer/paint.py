"""How each style looks: variants of the ink, and the painters that colour a crop in a target domain's look.

Step 3 of a rendered sample (``trainer.render``): the ink mask from ``trainer.canvas`` may be redrawn
(dot matrix, outline, slant, a unit caption beside it), then ``PAINTERS[style]`` paints the background,
colours and decorations of a plaque, drum counter, LCD/LED display, wall or label inside the crop.
Kept apart from the layout so a new look is one painter here and one name in ``render.STYLES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from trainer import effects

# ---- ink variants and clutter -----------------------------------------------------------------------

# Letters only, and none that looks like a digit in some font (no l, I, O, o, S, Z, B, g, q).
UNIT_TEXTS = ("kWh", "KWH", "kW", "MWh", "Wh", "kvarh", "cu.m", "Nr.", "V", "A", "cf", "Nm", "kVA", "MJ")
_HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX)


@lru_cache(maxsize=16)
def _disc(pitch: int) -> np.ndarray:
    yy, xx = np.mgrid[:pitch, :pitch] - (pitch - 1) / 2
    return (np.hypot(yy, xx) <= pitch * 0.42 + 0.1).astype(np.float32)


def dot_matrix(alpha: np.ndarray, pitch: int) -> np.ndarray:
    """The ink redrawn as a grid of round dots, as on LED matrix and thermal-printer displays."""
    h, w = alpha.shape
    gh, gw = max(1, h // pitch), max(1, w // pitch)
    grid = (cv2.resize(alpha, (gw, gh), interpolation=cv2.INTER_AREA) > 0.2).astype(np.float32)
    dots = np.kron(grid, _disc(pitch))
    out = np.zeros_like(alpha)
    out[: dots.shape[0], : dots.shape[1]] = dots[:h, :w]
    return out


def with_units(alpha: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A small unit or caption ('kWh', 'Nr.') beside or under the number, never over it: not digits to read.

    Captions are letters only, so a model that reads them as digits is wrong; they may be cut by the edge.
    """
    out = alpha.copy()
    bx0, by0, bx1, by1 = box
    h = by1 - by0
    text = str(rng.choice(UNIT_TEXTS))
    font = _HERSHEY[int(rng.integers(len(_HERSHEY)))]
    scale = cv2.getFontScaleFromHeight(font, max(4, int(h * rng.uniform(0.25, 0.5))), 1)
    thickness = max(1, int(h / 18))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    if rng.random() < 0.6:  # to the right, at the baseline or the top of the digits
        org = (bx1 + max(2, int(0.1 * h)), by1 if rng.random() < 0.6 else by0 + th)
    else:  # under the number
        org = (int(bx0 + rng.uniform(0, max(1, bx1 - bx0 - tw))), by1 + th + max(2, int(0.1 * h)))
    layer = np.zeros(alpha.shape, np.uint8)  # OpenCV draws text into 8-bit images only
    cv2.putText(layer, text, org, font, scale, 255, thickness, cv2.LINE_AA)
    np.maximum(out, layer.astype(np.float32) * (1.0 / 255.0), out=out)
    out[by0:by1, bx0:bx1] = alpha[by0:by1, bx0:bx1]  # the number itself stays untouched
    return out


def outlined(alpha: np.ndarray, width: int) -> np.ndarray:
    """Only the edge of the ink, ``width`` px wide: outlined segments and stencil faces."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return np.clip(cv2.dilate(alpha, kernel) - cv2.erode(alpha, kernel), 0, 1)


def slanted(alpha: np.ndarray, shear: float) -> np.ndarray:
    """The ink sheared by ``shear`` (x shift per row, about the middle row): italic seven-segment faces."""
    h, w = alpha.shape
    matrix = np.float32([[1, -shear, shear * h / 2], [0, 1, 0]])
    return cv2.warpAffine(alpha, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


# ---- painting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """How painting is done: ``easy`` keeps to flat grey looks; ``grey`` paints one channel.

    The model sees the channel mean of a colour crop, and painting (blends, gains, textures) is linear,
    so painting grey gives the model the same pixels at a third of the cost; colour is for scenes and
    for people looking at contact sheets.
    """

    easy: bool = False
    grey: bool = True


def colour_of_level(rng: np.random.Generator, level: float, saturation: float, look: Look) -> np.ndarray:
    """A random colour whose channel mean (what the model's grey conversion sees) is ``level``."""
    if look.grey:
        return np.float32(min(255.0, max(0.0, level)))
    c = rng.uniform(-1, 1, 3) * saturation * 120.0
    c = c - c.mean() + level
    return np.clip(c, 0, 255).astype(np.float32)


def as_colour(rgb, look: Look) -> np.ndarray:
    """A fixed RGB colour as this look paints it (its channel mean when grey)."""
    rgb = np.asarray(rgb, np.float32)
    return np.float32(rgb.mean()) if look.grey else rgb


def polarity_pair(rng: np.random.Generator, saturation: float, look: Look, min_gap: float = 70.0):
    """Background and ink colours with enough grey-level difference, either polarity."""
    bg = rng.uniform(0, 255)
    gap = rng.uniform(min_gap, 230)
    ink = bg - gap if (bg - gap >= 0 and (bg + gap > 255 or rng.random() < 0.6)) else bg + gap
    ink = min(255.0, max(0.0, ink))
    return colour_of_level(rng, bg, saturation, look), colour_of_level(rng, ink, saturation, look)


def _blend(base: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """base * (1 - alpha) + colour * alpha for a grey or colour float base and an HxW alpha."""
    a = effects.per_pixel(alpha, base)
    return base * (1.0 - a) + colour * a


def _textured(rng: np.random.Generator, h: int, w: int, colour: np.ndarray, amount: float) -> np.ndarray:
    """A flat colour with low-frequency texture of ``amount`` grey levels (paper, plaster, plastic)."""
    base = np.empty((h, w) + np.shape(colour), np.float32)
    base[:] = colour
    if amount > 0:
        base += effects.per_pixel((effects.window(effects.texture_bank(), h, w, rng) - 0.5) * amount, base)
    return base


def _cv(colour) -> tuple:
    """A colour as the tuple OpenCV's drawing functions take."""
    return tuple(float(v) for v in np.atleast_1d(colour))


def _screw(img: np.ndarray, rng: np.random.Generator, x: int, y: int, r: int) -> None:
    grey = float(rng.uniform(90, 220))
    cv2.circle(img, (x, y), r, (grey, grey, grey), -1, cv2.LINE_AA)
    cv2.circle(img, (x, y), r, (grey * 0.5,) * 3, 1, cv2.LINE_AA)
    if r >= 3:
        cv2.line(img, (x - r + 1, y), (x + r - 1, y), (grey * 0.4,) * 3, 1, cv2.LINE_AA)


def paint_plaque(rng, alpha, off, cells, box, look: Look) -> np.ndarray:
    """House-number plaque: a coloured plate, maybe a border and screws, a drop shadow or an engraving."""
    h, w = alpha.shape
    easy = look.easy
    bg, ink = polarity_pair(rng, 0.0 if easy else rng.uniform(0, 1), look)
    img = _textured(rng, h, w, bg, 0 if easy else rng.uniform(0, 25))
    if not easy:
        if rng.random() < 0.4:  # drop shadow or engraving highlight
            dx, dy = rng.integers(-2, 3, 2)
            shadow = np.roll(alpha, (int(dy), int(dx)), axis=(0, 1))
            shade = bg * rng.uniform(0.3, 0.7) if rng.random() < 0.7 else np.minimum(bg * 1.4 + 40, 255)
            img = _blend(img, shade, shadow * rng.uniform(0.4, 0.9))
        bx0, by0, bx1, by1 = box
        if rng.random() < 0.4:  # border line around the number
            pad = int(rng.uniform(0.1, 0.5) * (by1 - by0))
            t = int(rng.integers(1, 4))
            cv2.rectangle(img, (bx0 - pad, by0 - pad), (bx1 + pad, by1 + pad), _cv(ink), t, cv2.LINE_AA)
        if rng.random() < 0.3:  # screws near the plate's ends
            r = max(2, int((by1 - by0) * rng.uniform(0.06, 0.12)))
            yc = int((by0 + by1) / 2 + rng.uniform(-0.4, 0.4) * (by1 - by0))
            gap = int(rng.uniform(0.2, 0.6) * (by1 - by0))
            _screw(img, rng, bx0 - gap, yc, r)
            _screw(img, rng, bx1 + gap, yc, r)
    return _blend(img, ink, alpha)


def paint_drum(rng, alpha, off, cells, box, look: Look) -> np.ndarray:
    """Drum counter: white-on-black or black-on-white wheels, dark dividers, cylinder shading, red tail."""
    h, w = alpha.shape
    frame_level = rng.uniform(0, 255)
    img = _textured(rng, h, w, colour_of_level(rng, frame_level, rng.uniform(0, 0.6), look), rng.uniform(0, 20))
    dark_wheels = rng.random() < 0.6
    wheel_level = rng.uniform(5, 60) if dark_wheels else rng.uniform(180, 250)
    ink_level = rng.uniform(200, 250) if dark_wheels else rng.uniform(5, 60)
    wheel = colour_of_level(rng, wheel_level, rng.uniform(0, 0.3), look)
    ink = colour_of_level(rng, ink_level, rng.uniform(0, 0.2), look)
    # distinct tail wheels (tenths, litres): red with light digits, or white with dark ones on a dark counter
    red_tail = int(rng.integers(1, 4)) if rng.random() < 0.35 else 0
    white_tail = dark_wheels and rng.random() < 0.4
    if white_tail:
        red_wheel, tail_ink = colour_of_level(rng, rng.uniform(200, 250), 0.1, look), rng.uniform(5, 50)
    else:
        red_wheel = as_colour([rng.uniform(150, 220), rng.uniform(10, 50), rng.uniform(10, 50)], look)
        tail_ink = 240.0
    shade_depth = rng.uniform(0.0, 0.6)
    ink_img = np.empty_like(img)
    ink_img[:] = ink
    divider = int(rng.integers(0, 4))
    profile = None
    for i, (x0, y0, x1, y1) in enumerate(cells):
        x0c, x1c = max(0, x0 + divider // 2), min(w, x1 - (divider + 1) // 2)
        y0c, y1c = max(0, y0), min(h, y1)
        if x0c >= x1c or y0c >= y1c:
            continue
        colour = red_wheel if i >= len(cells) - red_tail else wheel
        if profile is None:  # all wheels are one height: a cylinder is darker at top and bottom
            profile = 1.0 - shade_depth * np.linspace(-1, 1, y1 - y0, dtype=np.float32) ** 2
        shade = profile[y0c - y0 : y1c - y0, None]
        shade = shade if img.ndim == 2 else shade[:, :, None]
        img[y0c:y1c, x0c:x1c] = colour * shade
        if i >= len(cells) - red_tail:
            ink_img[y0c:y1c, x0c:x1c] = tail_ink
    a = effects.per_pixel(alpha, img)
    out = img * (1.0 - a) + ink_img * a
    if red_tail and cells and rng.random() < 0.4:  # the window's edge hides part of the tail wheels
        x0 = max(0, cells[max(0, len(cells) - red_tail)][0])
        y0, y1 = max(0, cells[-1][1]), min(h, cells[-1][3])
        cover = int((y1 - y0) * rng.uniform(0.08, 0.22))
        rows = slice(y0, y0 + cover) if rng.random() < 0.5 else slice(y1 - cover, y1)
        out[rows, x0:] = colour_of_level(rng, frame_level, 0.0, look)
    return out


def paint_lcd(rng, alpha, off, cells, box, look: Look) -> np.ndarray:
    """LCD (dark segments on grey-green, faint 'off' segments) or LED (bright glowing segments on black)."""
    h, w = alpha.shape
    if rng.random() < 0.65:
        bg = colour_of_level(rng, rng.uniform(120, 215), rng.uniform(0.1, 0.5), look)
        ink = colour_of_level(rng, rng.uniform(10, 70), 0.1, look)
        img = _textured(rng, h, w, bg, rng.uniform(0, 15))
        if off is not None:
            img = _blend(img, ink, off * rng.uniform(0.04, 0.2))
        return _blend(img, ink, alpha)
    hue = rng.choice([[255, 40, 30], [60, 255, 80], [80, 160, 255], [255, 255, 255], [255, 170, 30]])
    ink = as_colour(hue, look) * rng.uniform(0.7, 1.0)
    img = _textured(rng, h, w, colour_of_level(rng, rng.uniform(0, 50), 0.1, look), rng.uniform(0, 10))
    if off is not None:
        img = _blend(img, ink, off * rng.uniform(0.03, 0.15))
    glow = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(1.0, 3.0)) * rng.uniform(0.3, 0.8)
    img = _blend(img, ink, np.maximum(alpha, glow))
    return img


def paint_wall(rng, alpha, off, cells, box, look: Look) -> np.ndarray:
    """Painted on plaster, brick or wood: strong texture, rough paint edges, paint a little thin."""
    h, w = alpha.shape
    bg, ink = polarity_pair(rng, rng.uniform(0, 0.8), look)
    img = _textured(rng, h, w, bg, rng.uniform(20, 70))
    rough = effects.window(effects.texture_bank(), h, w, rng)
    paint = np.clip(alpha * rng.uniform(0.7, 1.0) + (rough - 0.5) * rng.uniform(0, 0.8) * alpha, 0, 1)
    if rng.random() < 0.4:
        paint = cv2.GaussianBlur(paint, (0, 0), rng.uniform(0.5, 1.2))
    return _blend(img, ink, paint)


def paint_label(rng, alpha, off, cells, box, look: Look) -> np.ndarray:
    """Printed label, sticker or screen: flat colours, either polarity; now and then a meter's red dial
    ring (red digits on white with tick marks under them) or light digits on a red plate."""
    h, w = alpha.shape
    kind = 1.0 if look.easy else rng.random()
    if kind < 0.1:  # red on white, with scale ticks below the digits
        bg = as_colour([rng.uniform(215, 255)] * 3, look)
        ink = as_colour([rng.uniform(170, 230), rng.uniform(10, 60), rng.uniform(10, 60)], look)
        img = _textured(rng, h, w, bg, rng.uniform(0, 6))
        bx0, by0, bx1, by1 = box
        ticks = np.zeros_like(alpha)
        step = max(2, int((by1 - by0) * rng.uniform(0.15, 0.4)))
        for x in range(bx0, bx1, step):
            cv2.line(ticks, (x, by1 + 1), (x, by1 + max(2, (by1 - by0) // 6)), 1.0, 1)
        return _blend(img, ink, np.maximum(alpha, ticks))
    if kind < 0.17:  # light digits on red
        bg = as_colour([rng.uniform(140, 220), rng.uniform(10, 50), rng.uniform(10, 50)], look)
        ink = as_colour([rng.uniform(220, 255)] * 3, look)
        return _blend(_textured(rng, h, w, bg, rng.uniform(0, 8)), ink, alpha)
    bg, ink = polarity_pair(rng, 0.0 if look.easy else rng.uniform(0, 0.5), look)
    img = _textured(rng, h, w, bg, 0 if look.easy else rng.uniform(0, 8))
    return _blend(img, ink, alpha)


PAINTERS = {
    "plaque": paint_plaque,
    "drum": paint_drum,
    "lcd": paint_lcd,
    "wall": paint_wall,
    "label": paint_label,
}
