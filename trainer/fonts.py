"""Finding the typefaces the renderer draws digits with, and their digit glyphs rendered once.

PIL text rendering costs far more than composing arrays, so each font's ten digits are rasterised once
per process at one size (``GLYPH_SIZE``) into alpha masks; the renderer then only places and scales
them. A font that cannot be read or lacks distinct digits is skipped with a counted warning, and if no
font is installed at all PIL's built-in bitmap font keeps the pipeline alive.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trainer.skips import skip

log = logging.getLogger(__name__)

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
# Families that draw digits the way signs, plaques, meters and displays do (Noto is huge: only a few).
FAMILY_PATTERNS = (
    "DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "Liberation", "Free", "DSEG7", "DSEG14",
    "NimbusSans", "NimbusMono", "NimbusRoman", "URWGothic", "URWBookman", "C059", "P052",
    "NotoSans-", "NotoSerif-", "NotoSansMono-",
    # meters, plates and signs: OCR-A/B, DIN, cockpit and terminal faces, condensed and display sans
    "OCRA", "OCRB", "OSP-DIN", "B612", "BebasNeue", "Roboto", "OpenSans", "Cantarell", "LeagueSpartan",
    "Jura", "3270", "ComicNeue", "Hack", "Inconsolata", "Lato", "Dosis", "Courier Prime", "MekanusADF",
)
# Faces whose "digits" are not digits (DSEG's SEGG-CHAN draws smiling faces in the segments) or whose
# strokes are too thin to survive a camera (hairline weights).
EXCLUDED = ("SEGGCHAN", "Hairline")
# Plain, upright sans faces for the "easy" rendered set that the test suite trains a tiny model on.
EASY_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LiberationSans-Regular.ttf", "DejaVuSansMono.ttf")
SEGMENT_PREFIX = "DSEG"
GLYPH_SIZE = 32  # pixels per em; digits come out ~23 px tall, near their height in the 32 px model input
DIGITS = "0123456789"


@lru_cache(maxsize=None)
def find_fonts(dirs: tuple[str, ...] = FONT_DIRS) -> tuple[Path, ...]:
    """All usable .ttf/.otf files of the families above, sorted so a seed picks the same font everywhere."""
    found = []
    for root in dirs:
        base = Path(root)
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if (
                path.suffix.lower() in (".ttf", ".otf")
                and any(path.name.startswith(p) for p in FAMILY_PATTERNS)
                and not any(x in path.name for x in EXCLUDED)
            ):
                found.append(path)
    if not found:
        log.warning("no known fonts under %s; rendering falls back to PIL's built-in font", ", ".join(dirs))
    return tuple(sorted(found, key=lambda p: p.name))


@dataclass(frozen=True)
class GlyphSet:
    """One font's digits as alpha masks sharing a baseline band, ready to be placed side by side.

    ``masks[d]`` is ``[height, w_d]`` uint8 (255 = ink) starting at the glyph's left ink edge;
    ``advance[d]`` is the pen advance in pixels. ``full`` is the all-segments-on glyph of a segment font
    (drawn faintly under each digit as the LCD's "off" segments), else None.
    """

    name: str
    masks: tuple[np.ndarray, ...]
    left: tuple[int, ...]
    advance: tuple[float, ...]
    height: int
    segment: bool
    full: np.ndarray | None = None
    digit_width: float = 0.0  # mean advance
    alphas: tuple[np.ndarray, ...] = ()  # masks as float32 0..1, what the renderer blends
    full_alpha: np.ndarray | None = None

    @property
    def family(self) -> str:
        """The family a face belongs to ('DSEG7Classic', 'Roboto', 'RobotoCondensed'), for balanced picks."""
        base = re.sub(r"(Bold|Oblique|Italic|Light|Condensed)+$", "", self.name.split("-")[0].split(" ")[0])
        return base[:4] if base.startswith(("OCRA", "OCRB")) else base  # OCR-B's optical sizes: one family


def _rasterise(font, chars: str) -> tuple[list[np.ndarray], list[int], list[float], int]:
    """Draw each char on its own canvas aligned at a common baseline; crop to the shared ink band."""
    boxes = [font.getbbox(c, anchor="ls") for c in chars]
    top = min(b[1] for b in boxes)
    bottom = max(b[3] for b in boxes)
    height = bottom - top
    masks, lefts, advances = [], [], []
    for c, (x0, _, x1, _) in zip(chars, boxes):
        w = max(1, x1 - x0)
        canvas = Image.new("L", (w, height), 0)
        ImageDraw.Draw(canvas).text((-x0, -top), c, font=font, fill=255, anchor="ls")
        masks.append(np.asarray(canvas))
        lefts.append(int(x0))
        advances.append(float(font.getlength(c)))
    return masks, lefts, advances, height


def load_glyphs(path: Path | None, size: int = GLYPH_SIZE) -> GlyphSet | None:
    """Rasterise one font's digits; None (with a counted warning) when the font is unusable."""
    try:
        font = ImageFont.truetype(str(path), size) if path is not None else ImageFont.load_default(size)
        segment = path is not None and path.name.startswith(SEGMENT_PREFIX)
        chars = DIGITS + ("8" if segment else "")
        masks, lefts, advances, height = _rasterise(font, chars)
    except Exception as exc:  # noqa: BLE001 - any broken font file must only cost us that font
        skip("font", f"{path}: {exc}")
        return None
    digit_masks = masks[:10]
    if any(m.max() < 128 for m in digit_masks) or len({m.tobytes() for m in digit_masks}) < 10 or height < 8:
        skip("font", f"{path}: digits missing or not distinct")
        return None
    full = masks[10] if segment else None
    name = path.stem if path is not None else "pil-default"
    return GlyphSet(
        name, tuple(digit_masks), tuple(lefts[:10]), tuple(advances[:10]), height, segment, full,
        digit_width=float(np.mean(advances[:10])),
        alphas=tuple(m.astype(np.float32) / 255.0 for m in digit_masks),
        full_alpha=full.astype(np.float32) / 255.0 if full is not None else None,
    )


@lru_cache(maxsize=None)
def glyph_sets(names: tuple[str, ...] | None = None, size: int = GLYPH_SIZE) -> tuple[GlyphSet, ...]:
    """Glyphs of every installed font (or only the named font files), loaded once per process."""
    paths = find_fonts()
    if names is not None:
        paths = tuple(p for p in paths if p.name in names)
    sets = tuple(g for g in (load_glyphs(p, size) for p in paths) if g is not None)
    if not sets:
        fallback = load_glyphs(None, size)
        sets = (fallback,) if fallback is not None else ()
    if not sets:
        raise RuntimeError("no usable font at all: install fonts-dejavu-core")
    return sets
