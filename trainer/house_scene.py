"""House fronts: the wanted number is the house plaque, among the other text a front door carries.

A wall with a door (panels, a glass pane, a handle), a letterbox with its slot and a name label, a
bell panel with names, a window or two, and signs that hold other numbers: a street sign with a
house-number range, a business plate with a phone number and opening hours, a "No. 12" on the
letterbox. The plaque comes from the renderer (held-out font families on val/test), at 4-25 % of
the frame height, beside the door or above it. Drawn in portrait half the time, as phones take them.
"""

from __future__ import annotations

import cv2
import numpy as np

from trainer.cluttered import Box, _colour, digits, fit_paste, text

STREETS = ("Hauptstr.", "Bahnhofstrasse", "Rue de la Paix", "Via Roma", "Oak Avenue", "Kirchweg", "Mill Lane", "ul. Polna")
BUSINESS = ("Dr. med. A. Weber", "Praxis fur Physiotherapie", "Steuerberater", "Hair & Beauty", "ARCHITEKTEN", "Notariat")


def sign(img: np.ndarray, x: float, y: float, height: float, lines: list[str], rng: np.random.Generator) -> Box:
    """A plate at (x, y) with ``lines`` of text ``height`` px tall; its box."""
    plate, ink = (_colour(rng, 180, 255), _colour(rng, 0, 80)) if rng.random() < 0.6 else (_colour(rng, 0, 90), _colour(rng, 190, 255))
    probe = np.zeros(img.shape[:2], np.uint8)
    width = max(text(probe, s, (0, height * 2), height, 255, rng)[2] for s in lines) + height
    h_total = len(lines) * height * 1.6 + height * 0.6
    cv2.rectangle(img, (int(x), int(y)), (int(x + width), int(y + h_total)), plate, -1)
    for i, s in enumerate(lines):
        text(img, s, (x + height * 0.5, y + height * (1.3 + 1.6 * i)), height, ink, rng)
    return int(x), int(y), int(width), int(h_total)


def house_scene(img: np.ndarray, rng: np.random.Generator, sample) -> tuple[str, Box | None]:
    """Draw a house front over ``img`` (in place); the plaque's (label, box), or ("", None) when ``sample`` is None."""
    h, w = img.shape[:2]
    img[:] = cv2.addWeighted(img, 0.5, np.full_like(img, _colour(rng, 60, 230)), 0.5, 0)  # a rendered wall
    dw, dh = w * rng.uniform(0.22, 0.38), h * rng.uniform(0.5, 0.8)
    dx, dy = w * rng.uniform(0.05, 0.95) - dw / 2, h - dh - h * rng.uniform(0, 0.08)
    door = _colour(rng, 20, 200)
    cv2.rectangle(img, (int(dx), int(dy)), (int(dx + dw), int(dy + dh)), door, -1)
    cv2.rectangle(img, (int(dx), int(dy)), (int(dx + dw), int(dy + dh)), _colour(rng, 0, 255), max(2, int(w / 120)))
    if rng.random() < 0.6:  # a glass pane with a reflection
        g = (int(dx + dw * 0.2), int(dy + dh * 0.1), int(dx + dw * 0.8), int(dy + dh * 0.45))
        cv2.rectangle(img, g[:2], g[2:], _colour(rng, 120, 220), -1)
        cv2.line(img, (g[0], g[3]), (g[2], g[1]), (245, 245, 245), max(1, int(dw / 30)), cv2.LINE_AA)
    cv2.circle(img, (int(dx + dw * 0.85), int(dy + dh * 0.55)), max(2, int(dw / 25)), (200, 190, 120), -1)
    for _ in range(int(rng.integers(0, 3))):  # windows
        wx, wy = rng.uniform(0, w * 0.8), rng.uniform(0, h * 0.4)
        cv2.rectangle(img, (int(wx), int(wy)), (int(wx + w * 0.18), int(wy + h * 0.15)), _colour(rng, 40, 160), -1)
        cv2.rectangle(img, (int(wx), int(wy)), (int(wx + w * 0.18), int(wy + h * 0.15)), (235, 235, 235), max(2, int(w / 100)))
    small = h * rng.uniform(0.018, 0.04)
    others = [[f"{rng.choice(STREETS)}", f"{int(rng.integers(1, 60))}-{int(rng.integers(60, 200))}"],
              [str(rng.choice(BUSINESS)), f"Tel. 0{digits(rng, 3, 4)} {digits(rng, 5, 7)}", f"Mo-Fr {int(rng.integers(7, 10))}-{int(rng.integers(16, 20))}"],
              [f"No. {int(rng.integers(1, 200))}", "BRIEFE"], ["Mueller", "Schmidt  2. OG", "Rossi"]]
    rng.shuffle(others)
    for lines in others[: int(rng.integers(1, 4))]:
        sign(img, rng.uniform(0, w * 0.75), rng.uniform(0, h * 0.85), small, lines, rng)
    if rng.random() < 0.7:  # the letterbox
        lx, ly, lw = rng.uniform(0, w * 0.8), rng.uniform(h * 0.4, h * 0.85), w * rng.uniform(0.12, 0.2)
        cv2.rectangle(img, (int(lx), int(ly)), (int(lx + lw), int(ly + lw * 0.7)), _colour(rng, 0, 255), -1)
        cv2.rectangle(img, (int(lx + lw * 0.1), int(ly + lw * 0.15)), (int(lx + lw * 0.9), int(ly + lw * 0.22)), (15, 15, 15), -1)
    if sample is None:
        return "", None
    crop, label = sample(rng)
    height = h * np.exp(rng.uniform(np.log(0.04), np.log(0.25)))
    width = height * crop.shape[1] / crop.shape[0]
    if rng.random() < 0.5:  # beside the door
        x = dx + dw + height * 0.3 if dx + dw + width < w else dx - width - height * 0.3
        y = dy + rng.uniform(0, 0.3) * dh
    else:  # above it
        x, y = dx + dw / 2 - width / 2, dy - height * 1.3
    return label, fit_paste(img, crop, x, y, height)
