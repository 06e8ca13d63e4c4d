"""Rendered numbers in the looks of the target domains: plaques, drum counters, LCD/LED displays, walls.

A sample is made in four steps, each cheap because glyphs are pre-rasterised (``trainer.fonts``):

1. *layout* (``trainer.canvas``): the digits (and maybe partial neighbouring digits) are placed as an
   alpha mask on a canvas with room around them; drum counters put each digit in its own wheel cell,
   the last one maybe rolling;
2. *framing* (``trainer.canvas``): a crop is cut around the number the way a locator or a configured
   ROI would cut it — mostly with a margin, sometimes tight, sometimes clipping a neighbouring digit;
3. *painting* (``trainer.paint``): the domain's background, colours and decorations are drawn only
   inside that crop;
4. *camera*: the crop is scaled to a random small size and passed through ``trainer.effects.camera``.

This module is the source itself: which labels, styles and font families are drawn, and the order of
the steps (``Renderer``, ``iter_rendered``). ``Renderer(difficulty="easy")`` keeps to a few plain fonts,
grey dark-on-light or light-on-dark and mild jitter: the test suite trains a tiny model on it in a minute.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from trainer import effects
from trainer.canvas import carry_chain, frame, layout, neighbour_digit, previous_value, reads_arrived
from trainer.fonts import EASY_FONTS, GlyphSet, glyph_sets
from trainer.paint import PAINTERS, Look, dot_matrix, outlined, slanted, with_units

STYLES = ("plaque", "drum", "lcd", "wall", "label")
STYLE_WEIGHTS = (0.25, 0.25, 0.2, 0.15, 0.15)
DIFFICULTIES = ("easy", "full")
MAX_LEN = 8

_LENGTH_WEIGHTS = np.array([1.0, 1.2, 1.4, 1.4, 1.4, 1.4, 1.2, 1.0])


def random_label(rng: np.random.Generator, max_len: int = MAX_LEN) -> str:
    """1..max_len digits; lengths 3-6 (house numbers are short, meters long) a little more often."""
    cdf = np.cumsum(_LENGTH_WEIGHTS[:max_len])
    n = 1 + int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return (rng.integers(0, 10, min(n, max_len)).astype(np.uint8) + 48).tobytes().decode()


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
        lay = layout(glyphs, str(neighbour_digit(rng)), rng)
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
