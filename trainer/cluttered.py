"""Cluttered scenes: frames with many numbers besides the wanted one, as real photos have them.

Three kinds, each defining which number is wanted (the label and box):

* ``cluster``: an instrument cluster at night: one or two dials with arcs of scale numerals, ticks, a
  needle and unit labels, warning icons, and the odometer (4-8 digits, 3-8 % of the frame height) in
  a small window under a dial. Wanted: the odometer.
* ``meter``: a water/gas meter face: the counter (4-8 digits) and, printed around it, a serial
  number, a year, "Qn 2,5 m3/h"-style ratings, small sub-dials with their numerals, a barcode with
  its digits. Wanted: the counter.
* ``watermark``: an ordinary scene (``trainer.scenes``) with a camera's date/time stamp or a
  phone-model line burnt into a corner. Wanted: the scene's number, not the date.

The distracting numbers are drawn with OpenCV's Hershey fonts, the wanted one comes from the renderer
(held-out font families on val/test) or a real meter strip, so a split's fonts stay its own.
Evaluation only so far; ``digitcam locator scenes --cluttered R`` renders them for training.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("cluster", "meter", "watermark")
_HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC)
Box = tuple[int, int, int, int]


def _colour(rng: np.random.Generator, lo: float = 0, hi: float = 255) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(lo, hi, 3))


def text(img: np.ndarray, s: str, org, height: float, colour, rng: np.random.Generator, thickness: int | None = None,
         centred: bool = False, font: int | None = None) -> tuple[int, int, int, int]:
    """Draw ``s`` with its capitals ``height`` px tall at ``org`` (baseline left, or centre); returns its box."""
    font = _HERSHEY[int(rng.integers(len(_HERSHEY)))] if font is None else font
    (_, th), _ = cv2.getTextSize("0", font, 1.0, 1)
    scale = max(0.2, height / max(1, th))
    t = thickness or max(1, int(round(height / 12)))
    (tw, th), _ = cv2.getTextSize(s, font, scale, t)
    x, y = int(org[0]), int(org[1])
    if centred:
        x, y = x - tw // 2, y + th // 2
    cv2.putText(img, s, (x, y), font, scale, colour, t, cv2.LINE_AA)
    return x, y - th, tw, th


def fit_paste(frame: np.ndarray, crop: np.ndarray, x: float, y: float, height: float) -> Box:
    """Paste ``crop`` scaled to ``height`` px with its top-left at (x, y), kept inside the frame; its box."""
    fh, fw = frame.shape[:2]
    ch, cw = crop.shape[:2]
    scale = min(height / ch, 0.95 * fw / cw, 0.95 * fh / ch)
    nh, nw = max(4, int(ch * scale)), max(4, int(cw * scale))
    crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x, y = int(np.clip(x, 0, fw - nw)), int(np.clip(y, 0, fh - nh))
    frame[y : y + nh, x : x + nw] = crop
    return x, y, nw, nh


def counter_number(sample, rng: np.random.Generator, min_len: int = 4) -> tuple[np.ndarray, str]:
    """A number from ``sample(rng)`` with at least ``min_len`` digits: a counter, not a house number."""
    for _ in range(50):
        crop, label = sample(rng)
        if len(label) >= min_len:
            return crop, label
    return crop, label


def digits(rng: np.random.Generator, lo: int, hi: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, int(rng.integers(lo, hi + 1))))


# ---- instrument cluster ---------------------------------------------------------------------------------


def dial(img: np.ndarray, centre, radius: float, rng: np.random.Generator) -> None:
    """A gauge: bezel, an arc of ticks and scale numerals (0 20 40 ... or 0 1 2 ...), unit, needle."""
    cx, cy = centre
    ink = _colour(rng, 170, 255)
    cv2.circle(img, (int(cx), int(cy)), int(radius), _colour(rng, 120, 230), max(2, int(radius / 25)), cv2.LINE_AA)
    top = int(rng.choice([8, 12, 13, 14, 16]))
    step = int(rng.choice([1, 10, 20])) if top < 10 else int(rng.choice([10, 20]))
    values = [v * step for v in range(top + 1)]
    start, sweep = np.deg2rad(225.0), np.deg2rad(rng.uniform(240, 280))
    size = radius * rng.uniform(0.09, 0.16)
    for i, v in enumerate(values):
        a = start - sweep * i / max(1, len(values) - 1)
        ca, sa = np.cos(a), -np.sin(a)
        p0, p1 = (cx + 0.95 * radius * ca, cy + 0.95 * radius * sa), (cx + 0.82 * radius * ca, cy + 0.82 * radius * sa)
        cv2.line(img, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), ink, max(1, int(radius / 40)), cv2.LINE_AA)
        mid = (cx + 0.95 * radius * np.cos(a - sweep / (2 * len(values))), cy - 0.95 * radius * np.sin(a - sweep / (2 * len(values))))
        cv2.circle(img, (int(mid[0]), int(mid[1])), 1, ink, -1)
        text(img, str(v), (cx + 0.66 * radius * ca, cy + 0.66 * radius * sa), size, ink, rng, centred=True)
    unit = str(rng.choice(["km/h", "mph", "x1000r/min", "RPM", "x1000", "MPH"]))
    text(img, unit, (cx, cy - 0.3 * radius), size * 0.7, ink, rng, centred=True)
    a = start - sweep * rng.uniform(0, 0.8)
    tip = (int(cx + 0.85 * radius * np.cos(a)), int(cy - 0.85 * radius * np.sin(a)))
    cv2.line(img, (int(cx), int(cy)), tip, (230, float(rng.uniform(40, 140)), 30), max(2, int(radius / 30)), cv2.LINE_AA)
    cv2.circle(img, (int(cx), int(cy)), max(3, int(radius / 12)), _colour(rng, 20, 80), -1)


def icons(img: np.ndarray, rng: np.random.Generator, n: int) -> None:
    """Warning lamps: amber, red, green, blue shapes, some with a mark or a letter."""
    h, w = img.shape[:2]
    for _ in range(n):
        x, y, s = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(8, max(9, h // 14)))
        colour = [(255, 170, 0), (230, 40, 30), (40, 220, 60), (40, 120, 255)][int(rng.integers(4))]
        shape = int(rng.integers(4))
        if shape == 0:
            pts = np.array([[x, y - s], [x - s, y + s], [x + s, y + s]], np.int32)
            cv2.polylines(img, [pts], True, colour, 2, cv2.LINE_AA)
            text(img, "!", (x, y + s // 2), s * 0.8, colour, rng, centred=True)
        elif shape == 1:
            cv2.circle(img, (x, y), s, colour, 2, cv2.LINE_AA)
            text(img, str(rng.choice(["P", "ABS", "(!)", "i"])), (x, y), s * 0.6, colour, rng, centred=True)
        elif shape == 2:
            cv2.rectangle(img, (x - s, y - s // 2), (x + s, y + s // 2), colour, 2)
            cv2.line(img, (x - s, y), (x + s, y), colour, 1)
        else:
            text(img, str(rng.choice(["D", "N", "R", "P", "ECO", "AUTO", "OFF"])), (x, y), s, colour, rng)


def cluster_scene(img: np.ndarray, rng: np.random.Generator, sample) -> tuple[str, Box | None]:
    """Draw an instrument cluster over ``img`` (in place); returns the odometer's (label, box).

    ``sample`` None draws the cluster without its odometer: a negative full of numerals ("", None).
    """
    h, w = img.shape[:2]
    img[:] = (img.astype(np.float32) * rng.uniform(0.1, 0.35)).astype(np.uint8)  # a dark dashboard
    two = rng.random() < 0.6
    radius = min(h * rng.uniform(0.28, 0.4), w * 0.21) if two else h * rng.uniform(0.35, 0.48)
    centres = [(w * 0.28, h * 0.48), (w * 0.72, h * 0.48)] if two else [(w * rng.uniform(0.4, 0.6), h * 0.5)]
    centres = [(x + rng.uniform(-0.04, 0.04) * w, y + rng.uniform(-0.06, 0.06) * h) for x, y in centres]
    for c in centres:
        dial(img, c, radius, rng)
    icons(img, rng, int(rng.integers(2, 9)))
    for _ in range(int(rng.integers(0, 4))):  # the outside temperature, the clock, the trip, the range
        s = str(rng.choice([f"{int(rng.integers(-9, 35))} C", f"{int(rng.integers(0, 24))}:{int(rng.integers(0, 60)):02d}",
                            f"TRIP {int(rng.integers(0, 999))}.{int(rng.integers(0, 10))}", f"{int(rng.integers(20, 800))} km"]))
        text(img, s, (rng.uniform(0, 0.8) * w, rng.uniform(0.05, 1.0) * h), h * rng.uniform(0.025, 0.05), _colour(rng, 150, 255), rng)
    if sample is None:
        return "", None
    crop, label = counter_number(sample, rng)
    cx, cy = centres[int(rng.integers(len(centres)))] if rng.random() < 0.8 else (w / 2, h * 0.8)
    height = h * np.exp(rng.uniform(np.log(0.03), np.log(0.08)))
    width = height * crop.shape[1] / crop.shape[0]
    x, y = cx - width / 2, cy + radius * rng.uniform(0.3, 0.55)
    cv2.rectangle(img, (int(x - height * 0.4), int(y - height * 0.3)), (int(x + width + height * 0.4), int(y + height * 1.3)),
                  _colour(rng, 0, 40), -1)
    box = fit_paste(img, crop, x, y, height)
    if rng.random() < 0.6:
        text(img, str(rng.choice(["km", "mi", "ODO", "TOTAL"])), (box[0] + box[2] + height * 0.5, box[1] + box[3]),
             height * 0.5, _colour(rng, 150, 255), rng)
    return label, box


# ---- meter face ----------------------------------------------------------------------------------------


def sub_dial(img: np.ndarray, centre, radius: float, rng: np.random.Generator, ink) -> None:
    """One of a water meter's little pointers: numerals 0..9 round a circle, a red pointer."""
    cx, cy = centre
    cv2.circle(img, (int(cx), int(cy)), int(radius), ink, 1, cv2.LINE_AA)
    for v in range(10):
        a = np.pi / 2 - 2 * np.pi * v / 10
        text(img, str(v), (cx + 0.72 * radius * np.cos(a), cy - 0.72 * radius * np.sin(a)), radius * 0.28, ink, rng, 1, centred=True)
    a = rng.uniform(0, 2 * np.pi)
    cv2.line(img, (int(cx), int(cy)), (int(cx + 0.6 * radius * np.cos(a)), int(cy - 0.6 * radius * np.sin(a))), (220, 30, 30), 2)
    if rng.random() < 0.7:
        text(img, str(rng.choice(["x0,1", "x0,01", "x0,001", "x0.0001"])), (cx, cy + radius * 1.35), radius * 0.3, ink, rng, 1,
             centred=True)


def barcode(img: np.ndarray, x: int, y: int, width: int, height: int, rng: np.random.Generator, ink) -> None:
    """Bars of random widths with the code's digits printed under them."""
    at = x
    while at < x + width:
        bar = int(rng.integers(1, 4))
        if rng.random() < 0.55:
            cv2.rectangle(img, (at, y), (min(x + width, at + bar), y + height), ink, -1)
        at += bar
    text(img, digits(rng, 8, 13), (x, y + height + max(6, height // 4)), max(5, height / 5), ink, rng, 1)


def meter_scene(img: np.ndarray, rng: np.random.Generator, sample) -> tuple[str, Box | None]:
    """Draw a meter face over ``img`` (in place); returns the counter's (label, box).

    ``sample`` None leaves the counter's window blank (fogged or covered): a negative ("", None).
    """
    h, w = img.shape[:2]
    face, ink = _colour(rng, 170, 250), _colour(rng, 0, 70)
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.42, 0.58)
    r = min(h, w) * rng.uniform(0.4, 0.55)
    if rng.random() < 0.6:
        cv2.circle(img, (int(cx), int(cy)), int(r), face, -1, cv2.LINE_AA)
        cv2.circle(img, (int(cx), int(cy)), int(r), _colour(rng, 60, 200), max(3, int(r / 20)), cv2.LINE_AA)
    else:
        cv2.rectangle(img, (int(cx - 1.3 * r), int(cy - r)), (int(cx + 1.3 * r), int(cy + r)), face, -1)
    if sample is None:
        crop, label = np.full((20, int(rng.integers(70, 130)), 3), _colour(rng, 0, 90), np.uint8), ""
    else:
        crop, label = counter_number(sample, rng)
    height = h * rng.uniform(0.05, 0.16)
    width = height * crop.shape[1] / crop.shape[0]
    x, y = cx - width / 2 + rng.uniform(-0.1, 0.1) * r, cy - r * rng.uniform(0.15, 0.45)
    box = fit_paste(img, crop, x, y, height)
    bx, by, bw, bh = box
    if rng.random() < 0.7:
        text(img, str(rng.choice(["m3", "m³", "m3/h", "kWh", "l"])).replace("³", "3"), (bx + bw + bh * 0.3, by + bh), bh * 0.5, ink, rng)
    free = [(cx - 0.8 * r, cy + 0.25 * r), (cx - 0.1 * r, cy + 0.3 * r), (cx + 0.35 * r, cy + 0.2 * r), (cx - 0.7 * r, by - 0.15 * r),
            (cx - 0.8 * r, cy + 0.6 * r), (cx + 0.1 * r, cy + 0.65 * r)]
    rng.shuffle(free)
    lines = [f"Qn {rng.choice(['1,5', '2,5', '6', '10'])} m3/h", f"Q3 = {rng.choice(['2,5', '4', '10'])} m3/h",
             f"No {digits(rng, 6, 9)}", str(int(rng.integers(1995, 2026))), f"R{rng.choice(['80', '100', '160', '200'])}-H",
             f"PN{rng.choice(['10', '16'])}", f"{digits(rng, 2, 4)}-{digits(rng, 4, 6)}", f"DE-{digits(rng, 2, 2)}-MI001-{digits(rng, 4, 4)}"]
    rng.shuffle(lines)
    for (tx, ty), s in zip(free[: int(rng.integers(3, 6))], lines):
        text(img, s, (tx, ty), bh * rng.uniform(0.25, 0.8), ink, rng)
    for _ in range(int(rng.integers(0, 4))):
        sub_dial(img, (cx + rng.uniform(-0.6, 0.6) * r, cy + rng.uniform(0.35, 0.7) * r), r * rng.uniform(0.1, 0.18), rng, ink)
    if rng.random() < 0.5:
        bwid = int(r * rng.uniform(0.4, 0.8))
        barcode(img, int(cx + rng.uniform(-0.9, 0.1) * r), int(cy + r * rng.uniform(0.75, 0.9)), bwid, int(bwid * 0.25), rng, ink)
    img[by : by + bh, bx : bx + bw] = cv2.resize(crop, (bw, bh), interpolation=cv2.INTER_AREA)  # nothing drawn over it
    return (label, box) if sample is not None else ("", None)


# ---- watermark -----------------------------------------------------------------------------------------


def watermark(img: np.ndarray, rng: np.random.Generator, avoid: Box | None) -> None:
    """A camera's date stamp (and now and then a phone's model line) burnt into a corner, off ``avoid``."""
    h, w = img.shape[:2]
    y, mo, d, hh, mm = int(rng.integers(2005, 2027)), int(rng.integers(1, 13)), int(rng.integers(1, 29)), int(rng.integers(0, 24)), int(rng.integers(0, 60))
    stamp = str(rng.choice([f"{y}/{mo:02d}/{d:02d} {hh:02d}:{mm:02d}", f"{d:02d}.{mo:02d}.{y} {hh:02d}:{mm:02d}",
                            f"{y}-{mo:02d}-{d:02d} {hh:02d}:{mm:02d}:{int(rng.integers(0, 60)):02d}", f"'{y % 100:02d} {mo} {d}"]))
    colour = [(255, 150, 40), (255, 220, 60), (250, 250, 250)][int(rng.integers(3))]
    height = h * rng.uniform(0.025, 0.06)
    font = _HERSHEY[int(rng.integers(len(_HERSHEY)))]
    for _ in range(10):
        corner = int(rng.integers(4))
        x = w * (0.03 if corner % 2 == 0 else rng.uniform(0.5, 0.65))
        yb = h * (0.08 if corner < 2 else 0.95)
        probe = np.zeros(img.shape[:2], np.uint8)
        tb = text(probe, stamp, (x, yb), height, 255, rng, font=font)
        if avoid is None or not _overlap(tb, avoid):
            break
    else:
        return
    text(img, stamp, (x + 1, yb + 1), height, (20, 20, 20), rng, font=font)
    text(img, stamp, (x, yb), height, colour, rng, font=font)
    if rng.random() < 0.3:
        line = str(rng.choice(["SHOT ON PHONE 12 PRO", "Shot with Pixel 7", "AI QUAD CAMERA", "48MP"]))
        org = (w * 0.03, h * 0.9 if corner < 2 else h * 0.1)
        lb = text(np.zeros(img.shape[:2], np.uint8), line, org, height * 0.8, 255, rng, font=font)
        if avoid is None or not _overlap(lb, avoid):
            text(img, line, org, height * 0.8, (240, 240, 240), rng, font=font)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and a[0] + a[2] > b[0] and a[1] < b[1] + b[3] and a[1] + a[3] > b[1]
