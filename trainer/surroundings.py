"""What a loose crop brings along: the clutter families ``trainer.framing`` draws into a crop's margins.

Each family is one ``add_*`` function ``(canvas, rng, box, digit_height, housing_level)`` in ``ADDERS``,
drawn in ``FAMILIES`` order so each can be held out of training and tested on alone:

- ``bezel``: the window's frame or a plate border, a housing of another material around it;
- ``fixings``: screws, rivets, brackets and bars at the sides (the things read as a leading "1");
- ``dial``: arcs with tick marks, a needle, and scale numerals at 0.25-0.55x the digit height;
- ``script``: text in Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai ..., barcodes, stickers;
- ``photo``: glare streaks, droplets, dirt and over-exposure, which may cross the number.

Everything but ``photo`` stays off the number's own box. Kept apart from the framing itself (margins,
housing, the ``framed`` source) so a new kind of clutter is one function and one name here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from trainer import effects

FAMILIES = ("bezel", "fixings", "dial", "script", "photo")
# Words drawn in other scripts: letters only, so reading any of them as a digit is an error.
SCRIPT_TEXTS = (
    ("DejaVuSans.ttf", ("Wasser", "Gaz", "kWh", "Strom", "Zähler", "Typ", "Made in EU", "Nr.", "Hausnr.")),
    ("DejaVuSans.ttf", ("Вода", "Счётчик", "Газ", "кВт·ч", "ГОСТ", "Класс")),
    ("DejaVuSans.ttf", ("Νερό", "Μετρητής", "ΔΕΗ", "κλάση")),
    ("NotoSansArabic-Regular.ttf", ("ماء", "عداد", "غاز", "شارع")),
    ("NotoSansHebrew-Regular.ttf", ("מים", "מונה", "רחוב")),
    ("NotoSansDevanagari-Regular.ttf", ("पानी", "मीटर", "बिजली")),
    ("NotoSansThai-Regular.ttf", ("น้ำ", "มิเตอร์", "ถนน")),
    ("NotoSansGeorgian-Regular.ttf", ("წყალი", "მრიცხველი")),
    ("NotoSansArmenian-Regular.ttf", ("Ջուր", "Հաշվիչ")),
)
FONT_DIRS = ("/usr/share/fonts",)


@lru_cache(maxsize=1)
def text_bank() -> tuple[np.ndarray, ...]:
    """Every script word rasterised once as a float alpha mask ~32 px tall (placing is cheap, PIL is not)."""
    from PIL import Image, ImageDraw, ImageFont

    files = {p.name: p for root in FONT_DIRS if Path(root).is_dir() for p in Path(root).rglob("*.ttf")}
    masks = []
    for name, words in SCRIPT_TEXTS:
        if name not in files:
            continue
        font = ImageFont.truetype(str(files[name]), 28)
        for word in words:
            x0, y0, x1, y1 = font.getbbox(word)
            if x1 <= x0 or y1 <= y0:
                continue
            img = Image.new("L", (x1 - x0 + 2, y1 - y0 + 2))
            ImageDraw.Draw(img).text((1 - x0, 1 - y0), word, fill=255, font=font)
            masks.append(np.asarray(img, np.float32) / 255.0)
    if not masks:  # no fonts at all: OpenCV's Latin letters keep the family alive
        for word in ("Wasser", "Gas", "Typ", "Nr"):
            layer = np.zeros((36, 20 * len(word)), np.uint8)
            cv2.putText(layer, word, (2, 28), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2, cv2.LINE_AA)
            masks.append(layer.astype(np.float32) / 255.0)
    return tuple(masks)


def _stamp(canvas: np.ndarray, mask: np.ndarray, x: int, y: int, colour, keep_out) -> None:
    """Blend ``colour`` through ``mask`` at (x, y), never inside the ``keep_out`` box (x0, y0, x1, y1)."""
    h, w = mask.shape
    H, W = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    a = mask[cy0 - y : cy1 - y, cx0 - x : cx1 - x].copy()
    kx0, ky0, kx1, ky1 = keep_out
    ix0, iy0, ix1, iy1 = max(cx0, kx0), max(cy0, ky0), min(cx1, kx1), min(cy1, ky1)
    if ix0 < ix1 and iy0 < iy1:
        a[iy0 - cy0 : iy1 - cy0, ix0 - cx0 : ix1 - cx0] = 0
    region = canvas[cy0:cy1, cx0:cx1]
    aa = effects.per_pixel(a, region)
    region[:] = region * (1 - aa) + np.float32(colour) * aa


def _ink_against(rng: np.random.Generator, level: float) -> float:
    """A grey level that stands out from ``level`` (clutter must be visible, or it teaches nothing)."""
    return float(np.clip(level + (rng.uniform(60, 200) if level < 128 else -rng.uniform(60, 200)), 0, 255))


def _clutter_ink(canvas: np.ndarray, rng: np.random.Generator, housing_level: float) -> tuple[float, tuple]:
    """A grey level that stands out from the housing, and the same as the colour OpenCV draws with."""
    level = _ink_against(rng, housing_level)
    return level, (level,) * (1 if canvas.ndim == 2 else 3)


def _scale_numeral(rng: np.random.Generator, height: int) -> np.ndarray:
    """1-3 digits drawn with OpenCV's Hershey faces as an alpha mask ``height`` px tall (dial scales)."""
    text = str(int(rng.choice([rng.integers(0, 10), rng.integers(1, 13) * 10, rng.integers(1, 9) * 100])))
    font = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN)[int(rng.integers(3))]
    scale = cv2.getFontScaleFromHeight(font, max(3, height), 1)
    thick = max(1, height // 8)
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    layer = np.zeros((th + base + 2, tw + 2), np.uint8)
    cv2.putText(layer, text, (1, th + 1), font, scale, 255, thick, cv2.LINE_AA)
    return layer.astype(np.float32) / 255.0


def _outside_spot(rng, H, W, box, w, h, gap):
    """A top-left corner for a w x h thing in the margins: above, below, left or right of ``box`` with a gap."""
    x0, y0, x1, y1 = box
    side = int(rng.integers(4))
    if side == 0 and y0 - gap - h >= 0:
        return int(rng.uniform(0, max(1, W - w))), int(rng.uniform(0, y0 - gap - h + 1))
    if side == 1 and y1 + gap + h <= H:
        return int(rng.uniform(0, max(1, W - w))), int(rng.uniform(y1 + gap, H - h + 1))
    if side == 2 and x0 - gap - w >= 0:
        return int(rng.uniform(0, x0 - gap - w + 1)), int(rng.uniform(0, max(1, H - h)))
    if x1 + gap + w <= W:
        return int(rng.uniform(x1 + gap, W - w + 1)), int(rng.uniform(0, max(1, H - h)))
    return None


def add_bezel(canvas, rng, box, dh, housing_level):
    """The window's frame around the number: a bevelled border, maybe rounded, maybe a second outer one."""
    x0, y0, x1, y1 = box
    pad = int(rng.uniform(0.05, 0.35) * dh)
    t = max(1, int(rng.uniform(0.06, 0.3) * dh))
    level = _ink_against(rng, housing_level) if rng.random() < 0.5 else rng.uniform(0, 255)
    colour = (level,) * (1 if canvas.ndim == 2 else 3)
    rect = (x0 - pad - t // 2, y0 - pad - t // 2), (x1 + pad + t // 2, y1 + pad + t // 2)
    cv2.rectangle(canvas, rect[0], rect[1], colour, t, cv2.LINE_AA)
    if rng.random() < 0.5:  # bevel: a lighter or darker inner edge
        shade = (float(np.clip(level * rng.uniform(0.4, 1.6), 0, 255)),) * len(colour)
        cv2.rectangle(canvas, (rect[0][0] + t // 2, rect[0][1] + t // 2),
                      (rect[1][0] - t // 2, rect[1][1] - t // 2), shade, 1, cv2.LINE_AA)
    if rng.random() < 0.35:  # a plate border further out
        out = int(pad + t + rng.uniform(0.2, 0.6) * dh)
        cv2.rectangle(canvas, (x0 - out, y0 - out), (x1 + out, y1 + out), colour, max(1, t // 2), cv2.LINE_AA)


def add_fixings(canvas, rng, box, dh, housing_level):
    """Screws, rivets and brackets beside the number: round heads with slots, vertical bars at the sides."""
    x0, y0, x1, y1 = box
    H, W = canvas.shape[:2]
    level, colour = _clutter_ink(canvas, rng, housing_level)
    gap = max(2, int(rng.uniform(0.3, 0.8) * dh))
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.random()
        if kind < 0.45:  # a bracket or bar: a vertical stroke beside the number, the classic false "1"
            side = rng.random() < 0.5
            x = int(x0 - gap - rng.uniform(0, 0.5) * dh) if side else int(x1 + gap + rng.uniform(0, 0.5) * dh)
            top = int(y0 - rng.uniform(0, 0.8) * dh)
            bottom = int(y1 + rng.uniform(0, 0.8) * dh)
            cv2.line(canvas, (x, top), (x, bottom), colour, max(1, int(rng.uniform(0.05, 0.2) * dh)), cv2.LINE_AA)
        else:  # a screw or rivet head
            r = max(2, int(rng.uniform(0.1, 0.25) * dh))
            spot = _outside_spot(rng, H, W, box, 2 * r, 2 * r, gap // 2)
            if spot is None:
                continue
            cx, cy = spot[0] + r, spot[1] + r
            cv2.circle(canvas, (cx, cy), r, colour, -1, cv2.LINE_AA)
            dark = (float(np.clip(level * 0.4, 0, 255)),) * len(colour)
            cv2.circle(canvas, (cx, cy), r, dark, 1, cv2.LINE_AA)
            if kind < 0.8:
                angle = rng.uniform(0, np.pi)
                dx, dy = int(np.cos(angle) * (r - 1)), int(np.sin(angle) * (r - 1))
                cv2.line(canvas, (cx - dx, cy - dy), (cx + dx, cy + dy), dark, max(1, r // 3), cv2.LINE_AA)


def add_dial(canvas, rng, box, dh, housing_level):
    """A dial face around the counter: arcs with ticks, a needle, and small scale numerals off its line."""
    x0, y0, x1, y1 = box
    H, W = canvas.shape[:2]
    level, colour = _clutter_ink(canvas, rng, housing_level)
    arc = np.zeros(canvas.shape[:2], np.float32)
    cx, cy = int((x0 + x1) / 2 + rng.uniform(-0.3, 0.3) * (x1 - x0)), int(y1 + rng.uniform(0.5, 4) * dh)
    radius = int(max(cy - y0 + rng.uniform(0.3, 1.2) * dh, (x1 - x0) * rng.uniform(0.4, 0.9)))
    start, end = rng.uniform(180, 220), rng.uniform(320, 360)
    cv2.ellipse(arc, (cx, cy), (radius, radius), 0, start, end, 1.0, max(1, int(dh * 0.06)), cv2.LINE_AA)
    ticks = int(rng.integers(8, 30))
    for a in np.linspace(np.radians(start), np.radians(end), ticks):
        length = dh * (0.25 if rng.random() < 0.2 else 0.12)
        p0 = (int(cx + np.cos(a) * radius), int(cy + np.sin(a) * radius))
        p1 = (int(cx + np.cos(a) * (radius - length)), int(cy + np.sin(a) * (radius - length)))
        cv2.line(arc, p0, p1, 1.0, max(1, int(dh * 0.05)), cv2.LINE_AA)
    if rng.random() < 0.3:  # a needle from the centre
        a = np.radians(rng.uniform(start, end))
        cv2.line(arc, (cx, cy), (int(cx + np.cos(a) * radius), int(cy + np.sin(a) * radius)), 1.0,
                 max(1, int(dh * 0.08)), cv2.LINE_AA)
    _stamp(canvas, arc, 0, 0, colour[0] if canvas.ndim == 2 else colour, box)
    for _ in range(int(rng.integers(1, 5))):  # scale numerals, clearly smaller and off the number's line
        mask = _scale_numeral(rng, int(rng.uniform(0.25, 0.55) * dh))
        spot = _outside_spot(rng, H, W, box, mask.shape[1], mask.shape[0], max(2, int(0.15 * dh)))
        if spot is not None:
            _stamp(canvas, mask, spot[0], spot[1], level, box)


def add_script(canvas, rng, box, dh, housing_level):
    """Text in several scripts, a barcode or a sticker in the margins: letters and bars, never digits."""
    x0, y0, x1, y1 = box
    H, W = canvas.shape[:2]
    bank = text_bank()
    level = _ink_against(rng, housing_level)
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.2:  # a barcode: bars of random widths, above or below only
            bw = int(rng.uniform(1.0, 3.0) * dh)
            bh = max(3, int(rng.uniform(0.25, 0.6) * dh))
            widths = rng.integers(1, 4, size=max(4, bw // 2))
            bars = np.repeat(np.arange(len(widths)) % 2 == 0, widths)[:bw].astype(np.float32)
            mask = np.repeat(bars[None, :], bh, axis=0)
            y = int(rng.uniform(0, max(1, y0 - bh - 2))) if rng.random() < 0.5 else int(rng.uniform(y1 + 2, max(y1 + 3, H - bh)))
            _stamp(canvas, mask, int(rng.uniform(0, max(1, W - bw))), y, level, box)
            continue
        mask = bank[int(rng.integers(len(bank)))]
        th = max(4, int(rng.uniform(0.25, 0.7) * dh))
        tw = max(2, round(mask.shape[1] * th / mask.shape[0]))
        mask = cv2.resize(mask, (tw, th), interpolation=cv2.INTER_AREA)
        spot = _outside_spot(rng, H, W, box, tw, th, max(2, int(0.2 * dh)))
        if spot is None:
            continue
        if rng.random() < 0.3:  # on a sticker of its own colour
            sticker = rng.uniform(0, 255)
            pad = max(1, th // 4)
            sx0, sy0 = max(0, spot[0] - pad), max(0, spot[1] - pad)
            sx1, sy1 = min(W, spot[0] + tw + pad), min(H, spot[1] + th + pad)
            kx0, ky0, kx1, ky1 = box
            if sx1 <= kx0 or sx0 >= kx1 or sy1 <= ky0 or sy0 >= ky1:
                canvas[sy0:sy1, sx0:sx1] = sticker
                _stamp(canvas, mask, spot[0], spot[1], _ink_against(rng, sticker), box)
                continue
        _stamp(canvas, mask, spot[0], spot[1], level, box)


def add_photo_faults(canvas, rng, box, dh, housing_level):
    """Glare streaks, droplets, dirt or over-exposure: the only clutter that may cross the number."""
    H, W = canvas.shape[:2]
    kind = rng.random()
    if kind < 0.35:  # a specular streak across the glass
        layer = np.zeros((H, W), np.float32)
        a = rng.uniform(0, np.pi)
        c = (rng.uniform(0, W), rng.uniform(0, H))
        d = (np.cos(a) * W * 2, np.sin(a) * W * 2)
        cv2.line(layer, (int(c[0] - d[0]), int(c[1] - d[1])), (int(c[0] + d[0]), int(c[1] + d[1])), 1.0,
                 max(1, int(rng.uniform(0.05, 0.5) * dh)))
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, dh * rng.uniform(0.03, 0.15))) * rng.uniform(0.3, 0.8)
        _stamp(canvas, layer, 0, 0, 255.0, (0, 0, 0, 0))
    elif kind < 0.6:  # droplets: small bright-rimmed discs
        for _ in range(int(rng.integers(2, 12))):
            r = max(1, int(rng.uniform(0.04, 0.18) * dh))
            p = (int(rng.uniform(0, W)), int(rng.uniform(0, H)))
            rim = (float(rng.uniform(180, 255)),) * (1 if canvas.ndim == 2 else 3)
            cv2.circle(canvas, p, r, rim, 1, cv2.LINE_AA)
    elif kind < 0.8:  # dirt: dark soft blotches
        layer = np.zeros((H, W), np.float32)
        for _ in range(int(rng.integers(1, 6))):
            cv2.circle(layer, (int(rng.uniform(0, W)), int(rng.uniform(0, H))),
                       max(1, int(rng.uniform(0.05, 0.4) * dh)), 1.0, -1)
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, dh * 0.1)) * rng.uniform(0.2, 0.6)
        _stamp(canvas, layer, 0, 0, 20.0, (0, 0, 0, 0))
    else:  # over-exposure: a saturated bright region, maybe reaching into the number
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        yy, xx = np.mgrid[:H, :W].astype(np.float32)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (dh * rng.uniform(0.4, 1.5)) ** 2))
        gain = 1.0 + rng.uniform(0.5, 1.5) * blob
        canvas[:] = np.minimum(255.0, canvas * effects.per_pixel(gain, canvas))


ADDERS = {
    "bezel": add_bezel,
    "fixings": add_fixings,
    "dial": add_dial,
    "script": add_script,
    "photo": add_photo_faults,
}


def check_families(families) -> tuple[str, ...]:
    """The families named, checked: unknown names are an error that lists the known ones."""
    chosen = tuple(families)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown clutter famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}: "
                         f"want some of {', '.join(FAMILIES)}")
    return chosen
