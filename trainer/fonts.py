"""Finding the typefaces the renderer draws digits with; degrades to whatever fonts are installed."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
# Families that draw digits the way signs, plaques, meters and displays do (Noto is huge: only a few).
FAMILY_PATTERNS = (
    "DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "Liberation", "Free", "DSEG7", "DSEG14",
    "NimbusSans", "NimbusMono", "NimbusRoman", "URWGothic", "URWBookman", "C059", "P052",
    "NotoSans-", "NotoSerif-", "NotoSansMono-",
)


@lru_cache(maxsize=None)
def find_fonts(dirs: tuple[str, ...] = FONT_DIRS) -> tuple[Path, ...]:
    """All usable .ttf/.otf files of the families above, sorted so a seed picks the same font everywhere."""
    found = []
    for root in dirs:
        base = Path(root)
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.suffix.lower() in (".ttf", ".otf") and any(path.name.startswith(p) for p in FAMILY_PATTERNS):
                found.append(path)
    if not found:
        log.warning("no known fonts under %s; rendering falls back to PIL's built-in font", ", ".join(dirs))
    return tuple(sorted(found))
