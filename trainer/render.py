"""Rendered numbers in the looks of the target domains: plaques, drum counters, LCD/LED displays, walls.

A sample is made in four steps, each cheap because glyphs are pre-rasterised (``trainer.fonts``):

1. *layout*: the digits (and maybe partial neighbouring digits) are placed as an alpha mask on a canvas
   with room around them; drum counters put each digit in its own wheel cell, the last one maybe rolling;
2. *framing*: a crop is cut around the number the way a locator or a configured ROI would cut it —
   mostly with a margin, sometimes tight, sometimes clipping a neighbouring digit at the edge;
3. *painting*: the domain's background, colours and decorations are drawn only inside that crop;
4. *camera*: the crop is scaled to a random small size and passed through ``trainer.effects.camera``.

``Renderer(difficulty="easy")`` keeps to a few plain fonts, grey dark-on-light or light-on-dark and mild
jitter: the test suite trains a tiny model on it in a minute.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from trainer import effects
from trainer.fonts import EASY_FONTS, GlyphSet, glyph_sets

log = logging.getLogger(__name__)

STYLES = ("plaque", "drum", "lcd", "wall", "label")
STYLE_WEIGHTS = (0.25, 0.25, 0.2, 0.15, 0.15)
DIFFICULTIES = ("easy", "full")
MAX_LEN = 8
# Rolling wheel (docs/MODEL.md, the same rule as the real meter digits in trainer/meters.py): the fraction
# f of the way from D to D+1. f <= 0.5 reads D (the last fully passed digit); f >= 0.8 reads D+1 (the digit
# has arrived); 0.5 < f < 0.8 is mid-roll: labelled D or D+1 at random, half each, so the model learns to
# split its belief there and the digit's confidence says "rolling" (the daemon's gate then waits for it).
ROLL_READS_CURRENT = (0.0, 0.5)
ROLL_READS_NEXT = (0.8, 1.0)


def reads_arrived(f: float, rng: np.random.Generator) -> bool:
    """Whether a wheel at fraction ``f`` is read as the digit arriving (D+1) by the rule above."""
    return f >= ROLL_READS_NEXT[0] or (f > ROLL_READS_CURRENT[1] and rng.random() < 0.5)


def previous_value(label: str) -> str:
    """The counter value one step before ``label``, with its wheels' wrap (000 -> 999)."""
    return str((int(label) - 1) % 10 ** len(label)).zfill(len(label))


def carry_chain(leaving: str) -> int:
    """How many wheels turn when the last one does: the last wheel, its run of 9s and the one before them."""
    nines = len(leaving) - len(leaving.rstrip("9"))
    return min(len(leaving), nines + 1)


@dataclass
class Layout:
    """Where the ink is on the canvas: the number's box, the wheel cells, and neighbour digits' extents."""

    alpha: np.ndarray  # float32 [H, W] 0..1, the ink of every placed glyph
    off: np.ndarray | None  # float32 [H, W], the LCD's "off" segments, or None
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the number (without neighbours)
    cells: list[tuple[int, int, int, int]] = field(default_factory=list)  # drum wheel rects x0, y0, x1, y1
    left_neighbour: tuple[int, int] | None = None  # x0, x1 of a neighbour's ink left of the number
    right_neighbour: tuple[int, int] | None = None


_LENGTH_WEIGHTS = np.array([1.0, 1.2, 1.4, 1.4, 1.4, 1.4, 1.2, 1.0])


def random_label(rng: np.random.Generator, max_len: int = MAX_LEN) -> str:
    """1..max_len digits; lengths 3-6 (house numbers are short, meters long) a little more often."""
    cdf = np.cumsum(_LENGTH_WEIGHTS[:max_len])
    n = 1 + int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return (rng.integers(0, 10, min(n, max_len)).astype(np.uint8) + 48).tobytes().decode()


def _place(alpha: np.ndarray, mask: np.ndarray, x: int, y: int, clip: tuple[int, int] | None = None) -> None:
    """Max-blend a float glyph alpha into the float canvas at (x, y), optionally only rows clip[0]..clip[1]."""
    h, w = mask.shape
    y0, y1 = y, y + h
    lo, hi = clip if clip is not None else (0, alpha.shape[0])
    cy0, cy1 = max(y0, lo, 0), min(y1, hi, alpha.shape[0])
    cx0, cx1 = max(x, 0), min(x + w, alpha.shape[1])
    if cy0 >= cy1 or cx0 >= cx1:
        return
    region = alpha[cy0:cy1, cx0:cx1]
    np.maximum(region, mask[cy0 - y0 : cy1 - y0, cx0 - x : cx1 - x], out=region)


def _neighbour_digit(rng: np.random.Generator) -> int:
    """A digit for a partly visible neighbour; never '1', whose thin stroke could show whole."""
    return int(rng.choice([0, 2, 3, 4, 5, 6, 7, 8, 9]))


def layout(
    glyphs: GlyphSet,
    label: str,
    rng: np.random.Generator,
    *,
    spacing: float = 0.0,
    cell_scale: float | None = None,
    roll: float | None = None,
    rolling: int = 1,
    neighbours: tuple[bool, bool] = (False, False),
    jitter_y: float = 0.0,
) -> Layout:
    """Place the label's digits on a padded canvas.

    ``spacing`` is extra space between digits in digit widths (negative overlaps them); ``cell_scale`` puts
    each digit centred in a wheel cell that much wider than the widest digit (drum counters); ``roll`` is
    the fraction of the way to the next digit of the last ``rolling`` wheels (the label holds the digits
    they are leaving; ``rolled_label`` says what that reads).
    """
    h = glyphs.height
    dw = glyphs.digit_width
    digits = [int(c) for c in label]
    # Short numbers get widened to a square crop, which would pull a neighbour fully in: none for them.
    left_n = [_neighbour_digit(rng)] if neighbours[0] and len(digits) >= 3 else []
    right_n = [_neighbour_digit(rng)] if neighbours[1] and len(digits) >= 3 else []
    chars = left_n + digits + right_n
    first = len(left_n)
    last = first + len(digits) - 1
    if cell_scale is not None:
        pitch = max(m.shape[1] for m in glyphs.masks) * cell_scale
        cell_h = int(h * (1.15 + 0.2 * cell_scale))
        wheel_pitch = int(h * rng.uniform(1.12, 1.4))  # digit spacing on the wheel: neighbours peek in
        steps = [pitch] * len(chars)
    else:
        pitch = 0.0
        cell_h = h
        steps = [glyphs.advance[d] + spacing * dw for d in chars]
    pad_x, pad_y = int(1.3 * h), int(0.9 * h) + (cell_h - h) // 2
    width = int(sum(steps) + 2 * pad_x + dw)
    height = h + 2 * pad_y
    alpha = np.zeros((height, width), np.float32)
    off = np.zeros_like(alpha) if glyphs.full is not None else None
    cells: list[tuple[int, int, int, int]] = []
    extents: list[tuple[int, int]] = []
    pen = float(pad_x)
    for i, d in enumerate(chars):
        mask = glyphs.masks[d]
        dy = int(round(rng.uniform(-jitter_y, jitter_y) * h)) if jitter_y else 0
        if cell_scale is not None:
            x = int(pen + (pitch - mask.shape[1]) / 2)
            cy0 = pad_y - (cell_h - h) // 2
            cells.append((int(pen), cy0, int(pen + pitch), cy0 + cell_h))
        else:
            x = int(pen + glyphs.left[d])
        y = pad_y + dy
        if cell_scale is not None:
            # A wheel: the digit with its wheel neighbours above and below, seen through the cell window;
            # a rolling wheel shows D leaving upwards and D+1 arriving from below.
            off_y = 0
            if roll is not None and last - rolling < i <= last:
                off_y = int(round(roll * wheel_pitch))
            clip = (cells[-1][1], cells[-1][3])
            for k in (-1, 0, 1, 2):
                _place(alpha, glyphs.alphas[(d + k) % 10], x, y - off_y + k * wheel_pitch, clip)
        else:
            _place(alpha, glyphs.alphas[d], x, y)
        if off is not None:
            _place(off, glyphs.full_alpha, int(pen + glyphs.left[8]) if cell_scale is None else x, y)
        extents.append((x, x + mask.shape[1]))
        pen += steps[i]
    box = (extents[first][0], pad_y, extents[last][1], pad_y + h)
    if cells:
        box = (cells[first][0], cells[first][1], cells[last][2], cells[last][3])
    return Layout(
        alpha=alpha,
        off=off,
        box=box,
        cells=cells,
        left_neighbour=extents[0] if left_n else None,
        right_neighbour=extents[-1] if right_n else None,
    )


def frame(lay: Layout, rng: np.random.Generator, tight: float = 0.15) -> tuple[int, int, int, int]:
    """Choose the crop (x0, y0, x1, y1) around the number as a locator or an ROI would.

    Margins are drawn relative to the number's height; a neighbour digit may show at most ~35 % of its
    ink at the edge. The crop's aspect ratio is kept within 1:1 .. 6:1, like the model's crops.
    """
    x0, y0, x1, y1 = lay.box
    h = y1 - y0
    if rng.random() < tight:
        m = rng.uniform(0.0, 0.08, 4) * h
    else:
        m = rng.uniform(0.04, 0.5, 4) * h
        m[1] = m[0] * rng.uniform(0.6, 1.6)  # top and bottom margins alike, as a box around text is
    cx0, cy0, cx1, cy1 = x0 - m[2], y0 - m[0], x1 + m[3], y1 + m[1]
    if lay.left_neighbour is not None:
        nx0, nx1 = lay.left_neighbour
        limit = nx1 - rng.uniform(0.08, 0.28) * (nx1 - nx0)
        cx0 = min(x0, max(cx0, limit) if rng.random() < 0.3 else limit)  # never into the number
    if lay.right_neighbour is not None:
        nx0, nx1 = lay.right_neighbour
        limit = nx0 + rng.uniform(0.08, 0.28) * (nx1 - nx0)
        cx1 = max(x1, min(cx1, limit) if rng.random() < 0.3 else limit)
    cw, ch = cx1 - cx0, cy1 - cy0
    if cw < ch:  # at least square: widen
        grow = (ch - cw) / 2
        cx0, cx1 = cx0 - grow, cx1 + grow
    elif cw > 6 * ch:  # at most 6:1: heighten
        grow = (cw / 6 - ch) / 2
        cy0, cy1 = cy0 - grow, cy1 + grow
    H, W = lay.alpha.shape
    return int(max(0, cx0)), int(max(0, cy0)), int(min(W, np.ceil(cx1))), int(min(H, np.ceil(cy1)))


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


# ---- the renderer ---------------------------------------------------------------------------------


def _by_family(fonts: tuple[GlyphSet, ...]) -> tuple[tuple[GlyphSet, ...], ...]:
    """Faces grouped by family, in a stable order."""
    families: dict[str, list[GlyphSet]] = {}
    for g in fonts:
        families.setdefault(g.family, []).append(g)
    return tuple(tuple(v) for _, v in sorted(families.items()))


def held_out_family(family: str) -> bool:
    """About one font family in five is never drawn for training, so val/test measure unseen typefaces."""
    return zlib.crc32(family.encode()) % 5 == 0


def fonts_for_split(fonts: tuple[GlyphSet, ...], split: str) -> tuple[GlyphSet, ...]:
    """Train draws the other families, val/test only the held-out ones (all of them if none is held out)."""
    chosen = tuple(g for g in fonts if held_out_family(g.family) == (split != "train"))
    return chosen or fonts


class Renderer:
    """Draws (image, label) samples; ``difficulty`` 'easy' or 'full', ``empty_rate`` share of no-number crops.

    ``split`` picks the font families (see ``held_out_family``); the easy fonts are shared by all splits.
    """

    def __init__(
        self, difficulty: str = "full", empty_rate: float = 0.06, max_len: int = MAX_LEN, colour: bool = False,
        styles: tuple[str, ...] | None = None, split: str = "train",
    ):
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown difficulty {difficulty!r}: want one of {', '.join(DIFFICULTIES)}")
        unknown = sorted(set(styles or ()) - set(STYLES))
        if unknown or (styles is not None and not styles):
            raise ValueError(f"unknown style(s) {unknown or styles!r}: want some of {', '.join(STYLES)}")
        self.easy = difficulty == "easy"
        chosen = tuple(styles) if styles else (("label",) if self.easy else STYLES)
        weights = np.array([STYLE_WEIGHTS[STYLES.index(st)] for st in chosen])
        self.styles, self.style_p = chosen, weights / weights.sum()
        self.look = Look(easy=self.easy, grey=not colour)
        self.empty_rate = empty_rate
        self.max_len = max_len
        fonts = glyph_sets(EASY_FONTS) if self.easy else glyph_sets()
        self.fonts = fonts
        segment = tuple(g for g in fonts if g.segment) or fonts
        text = tuple(g for g in fonts if not g.segment) or fonts
        if not self.easy:
            segment, text = fonts_for_split(segment, split), fonts_for_split(text, split)
        self.segment_fonts = _by_family(segment)
        self.text_fonts = _by_family(text)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """One (RGB uint8 crop, label) pair."""
        if rng.random() < self.empty_rate:
            return self._empty(rng), ""
        label = random_label(rng, self.max_len)
        style = self.styles[0] if len(self.styles) == 1 else str(rng.choice(self.styles, p=self.style_p))
        if style == "drum" and len(label) >= 2 and rng.random() < 0.15:  # at a carry: ..x99 or ..x00
            k = int(rng.integers(1, len(label)))
            label = label[: len(label) - k] + ("9" if rng.random() < 0.5 else "0") * k
        return self._draw(rng, label, style)

    def _font_for(self, rng: np.random.Generator, style: str) -> GlyphSet:
        pool = self.segment_fonts if style == "lcd" and rng.random() < 0.85 else self.text_fonts
        if style != "lcd" and rng.random() < 0.08:  # segment digits on plaques and labels too, now and then
            pool = self.segment_fonts
        family = pool[int(rng.integers(len(pool)))]  # a family first, so big families are not favoured
        return family[int(rng.integers(len(family)))]

    def _draw(self, rng: np.random.Generator, label: str, style: str) -> tuple[np.ndarray, str]:
        dots = not self.easy and style == "lcd" and rng.random() < 0.2  # a dot-matrix display
        glyphs = self._font_for(rng, "label" if dots else style)
        roll, rolling, leaving = None, 1, label
        if style == "drum":
            if rng.random() < 0.35:  # a counter caught turning at any fraction, read by the rolling rule
                roll = float(rng.uniform(0.03, 0.97))
                leaving = previous_value(label) if reads_arrived(roll, rng) else label
                rolling = carry_chain(leaving)
            lay = layout(
                glyphs, leaving, rng, cell_scale=rng.uniform(1.05, 1.6), roll=roll, rolling=rolling,
                neighbours=(rng.random() < 0.25, rng.random() < 0.25), jitter_y=rng.uniform(0, 0.05),
            )
        else:
            spacing = rng.uniform(-0.05, 0.15) if self.easy else rng.uniform(-0.12, 0.5)
            nb = (False, False) if self.easy else (rng.random() < 0.12, rng.random() < 0.12)
            lay = layout(glyphs, label, rng, spacing=spacing, neighbours=nb)
        x0, y0, x1, y1 = frame(lay, rng, tight=0.15 if not self.easy else 0.05)
        alpha = lay.alpha[y0:y1, x0:x1]
        off = lay.off[y0:y1, x0:x1] if lay.off is not None else None
        cells = [(a - x0, b - y0, c - x0, d - y0) for a, b, c, d in lay.cells]
        bx0, by0, bx1, by1 = lay.box
        box = (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0)
        if not self.easy:
            if dots:
                pitch = max(2, round((by1 - by0) / 9))  # ~9 dots per digit height keeps thin segments
                alpha = dot_matrix(alpha, pitch)
                off = dot_matrix(off, pitch) if off is not None else None
            if rng.random() < 0.15:
                alpha = with_units(alpha, box, rng)
            if rng.random() < 0.08:  # outlined digits (stencil LCDs, embossed plates)
                alpha = outlined(alpha, max(1, round((by1 - by0) / 14)))
            if rng.random() < 0.12:  # italic / slanted displays
                alpha = slanted(alpha, float(rng.uniform(-0.12, 0.25)))
        img = PAINTERS[style](rng, alpha, off, cells, box, self.look)
        img = np.clip(img, 0, 255).astype(np.uint8)
        img = self._resize(rng, img)
        img = effects.camera(img, rng, 0.25 if self.easy else rng.uniform(0.2, 1.0))
        return img, label

    def _resize(self, rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
        """Scale the crop to a random small height, as the number would appear in a camera frame."""
        h, w = img.shape[:2]
        target_h = int(rng.integers(24, 48) if self.easy else rng.integers(20, 72))
        scale = target_h / h
        if not self.easy:
            scale_x = scale * rng.uniform(0.85, 1.15)  # anamorphic squeeze: condensed or wide lettering
        else:
            scale_x = scale
        size = (max(2, round(w * scale_x)), max(2, target_h))
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

    def _empty(self, rng: np.random.Generator) -> np.ndarray:
        """A 'no number' crop from the same looks: background, maybe a caption or the sliver of a digit.

        The sliver (at most a sixth of one digit, cut by the edge) and captions are what number crops
        have at their edges too, so the model learns they are not a number.
        """
        style = "label" if self.easy else str(rng.choice(["plaque", "lcd", "wall", "label"]))
        glyphs = self._font_for(rng, style)
        lay = layout(glyphs, str(_neighbour_digit(rng)), rng)
        dx0, dy0, dx1, dy1 = lay.box
        h = int((dy1 - dy0) * rng.uniform(1.05, 1.8))
        w = int(h * rng.uniform(1.0, 5.0))
        y0 = max(0, int((dy0 + dy1) / 2 - h / 2))
        if not self.easy and rng.random() < 0.4:  # the digit's right edge shows at the crop's left
            x0 = int(dx1 - rng.uniform(0.05, 0.18) * (dx1 - dx0))
        else:
            x0 = dx1 + int(rng.uniform(0.1, 0.6) * h)
        alpha = np.zeros((h, w), np.float32)
        part = lay.alpha[y0 : y0 + h, x0 : x0 + w]
        alpha[: part.shape[0], : part.shape[1]] = part
        if not self.easy and rng.random() < 0.4:
            alpha = with_units(alpha, (0, int(h * 0.2), 1, int(h * 0.8)), rng)
        if not self.easy and rng.random() < 0.3:  # clutter: a line or an edge of something
            p = rng.integers(0, [w, h, w, h])
            cv2.line(alpha, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), 1.0, int(rng.integers(1, 4)))
        img = PAINTERS[style](rng, alpha, None, [], (0, 0, w, h), self.look)
        img = self._resize(rng, np.clip(img, 0, 255).astype(np.uint8))
        return effects.camera(img, rng, 0.25 if self.easy else rng.uniform(0.2, 1.0))


def iter_rendered(split: str, rng: np.random.Generator, difficulty: str = "full", empty_rate: float = 0.06,
                  max_len: int = MAX_LEN, colour: bool = False, styles: tuple[str, ...] | None = None):
    """The ``rendered`` source: an endless stream for every split (splits differ by seed and font families).

    Crops come grey (what the model sees; fastest) unless ``colour=True`` (contact sheets, scenes);
    ``styles`` keeps to some looks (e.g. ``("drum",)``) for per-domain evaluation sets.
    """
    if isinstance(styles, str):  # "drum,lcd" from a set name such as rendered:test:500:styles=drum
        styles = tuple(styles.split(","))
    renderer = Renderer(difficulty, empty_rate, max_len, colour, styles, split=split)
    while True:
        yield renderer.sample(rng)
