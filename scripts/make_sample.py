#!/usr/bin/env python3
"""Make ``samples/meter/``: the bundled replay of a counting meter that the README's run command reads.

A mechanical counter (white digits on dark drums behind a window, on a grey meter face) counts up in
irregular steps. Each value is shown for several frames with a little camera shake and sensor noise;
the frame where the last drum turns shows it half-way between two digits, the case the smoother exists
for. ``samples/meter/labels.csv`` lists the value every frame shows ('' while a drum is turning).

Deterministic: the same seed gives the same bytes. Run: ``.venv/bin/python scripts/make_sample.py``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"  # Debian fonts-dejavu-core
FRAME_W, FRAME_H = 320, 180
WINDOW = (64, 62, 192, 56)  # x, y, w, h of the counter window in the frame: the sensor's roi
DIGITS = 6
FRAMES_PER_VALUE = 6


def counter_values(rng: np.random.Generator, start: int = 4711, count: int = 12) -> list[int]:
    """An increasing meter: mostly small steps, now and then a larger one."""
    values = [start]
    for _ in range(count - 1):
        values.append(values[-1] + int(rng.choice([1, 1, 2, 3, 7, 19])))
    return values


def drum_strip(font: ImageFont.FreeTypeFont, cell_w: int, cell_h: int) -> np.ndarray:
    """One drum: the digits 0..9 and 0 again stacked vertically, white on near-black, grey uint8."""
    strip = Image.new("L", (cell_w, cell_h * 11), 25)
    draw = ImageDraw.Draw(strip)
    for i in range(11):
        text = str(i % 10)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        draw.text(((cell_w - (right - left)) / 2 - left, i * cell_h + (cell_h - (bottom - top)) / 2 - top), text,
                  fill=235, font=font)
    return np.asarray(strip)


def counter_image(value: float, strip: np.ndarray, cell_w: int, cell_h: int) -> np.ndarray:
    """The window's drums showing ``value``; a fractional value turns the last drum part of the way."""
    whole = int(value)
    frac = value - whole
    text = f"{whole:0{DIGITS}d}"
    cells = []
    for pos, ch in enumerate(text):
        offset = int(ch) * cell_h
        # the last drum turns with the fraction, and so does any drum whose right neighbours all show 9
        if frac and all(c == "9" for c in text[pos + 1:]):
            offset += int(round(frac * cell_h))
        cells.append(strip[offset: offset + cell_h])
        cells.append(np.full((cell_h, 3), 90, np.uint8))  # the gap between drums
    return np.hstack(cells[:-1])


def meter_face(rng: np.random.Generator) -> np.ndarray:
    """The meter's grey plastic face with a little texture and printed text, BGR."""
    face = np.full((FRAME_H, FRAME_W, 3), (150, 156, 160), np.float32)
    face += rng.normal(0, 3, (FRAME_H, FRAME_W, 1))
    face = np.clip(face, 0, 255).astype(np.uint8)
    cv2.putText(face, "m3", (WINDOW[0] + WINDOW[2] + 8, WINDOW[1] + 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                (40, 40, 40), 2, cv2.LINE_AA)
    cv2.putText(face, "DIGITCAM SAMPLE METER  Qn 2.5", (40, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1,
                cv2.LINE_AA)
    cv2.rectangle(face, (WINDOW[0] - 4, WINDOW[1] - 4), (WINDOW[0] + WINDOW[2] + 3, WINDOW[1] + WINDOW[3] + 3),
                  (30, 30, 30), 3)
    return face


def render_frame(face: np.ndarray, value: float, strip, cell_w, cell_h, rng: np.random.Generator) -> np.ndarray:
    frame = face.copy()
    drums = counter_image(value, strip, cell_w, cell_h)
    drums = cv2.resize(drums, (WINDOW[2], WINDOW[3]), interpolation=cv2.INTER_AREA)
    x, y, w, h = WINDOW
    frame[y: y + h, x: x + w] = drums[:, :, None]
    shake = np.float32([[1, 0, rng.uniform(-1.5, 1.5)], [0, 1, rng.uniform(-1.5, 1.5)]])
    frame = cv2.warpAffine(frame, shake, (FRAME_W, FRAME_H), borderMode=cv2.BORDER_REPLICATE)
    frame = frame.astype(np.float32) * rng.uniform(0.85, 1.1) + rng.normal(0, 4, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_sample(out: Path, seed: int = 5) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    font = ImageFont.truetype(FONT, 40)
    cell_w, cell_h = 30, 48
    strip = drum_strip(font, cell_w, cell_h)
    face = meter_face(rng)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jpg"):
        old.unlink()
    rows = []
    values = counter_values(rng)
    for i, value in enumerate(values):
        for j in range(FRAMES_PER_VALUE):
            turning = j == FRAMES_PER_VALUE - 1 and i + 1 < len(values)
            shown = value + (0.5 if turning else 0.0)  # the last drum half-way to the next digit
            frame = render_frame(face, shown, strip, cell_w, cell_h, rng)
            name = f"frame_{len(rows):04d}.jpg"
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 88])
            assert ok
            (out / name).write_bytes(buf.tobytes())
            rows.append((name, "" if turning else f"{value:0{DIGITS}d}"))
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "value"])
        writer.writerows(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "samples" / "meter")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rows = make_sample(args.out, args.seed)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {len(rows)} frames, {len({v for _, v in rows if v})} values, {size / 1024:.0f} KiB to {args.out}")


if __name__ == "__main__":
    main()
