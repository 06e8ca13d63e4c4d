"""Where the ink goes: a number's digits placed on a canvas, and the crop cut around them.

Steps 1 and 2 of a rendered sample (``trainer.render``): ``layout`` puts the digits as an alpha mask on
a padded canvas, plainly or each in its own counter wheel (the last wheels maybe caught rolling, by the
rolling rule below), with maybe a partial neighbouring digit either side; ``frame`` then cuts the crop
around them as a locator or an ROI would. Nothing here knows colours or styles: that is
``trainer.paint``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainer.fonts import GlyphSet

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


def neighbour_digit(rng: np.random.Generator) -> int:
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
    they are leaving; ``reads_arrived`` says what that reads).
    """
    h = glyphs.height
    dw = glyphs.digit_width
    digits = [int(c) for c in label]
    # Short numbers get widened to a square crop, which would pull a neighbour fully in: none for them.
    left_n = [neighbour_digit(rng)] if neighbours[0] and len(digits) >= 3 else []
    right_n = [neighbour_digit(rng)] if neighbours[1] and len(digits) >= 3 else []
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
