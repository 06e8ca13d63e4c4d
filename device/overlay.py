"""Drawing the box and the number back onto a frame (``--annotate``, the MQTT snapshot)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.contract import to_gray

GREEN = (60, 220, 60)
RED = (40, 40, 230)


def annotate(frame: np.ndarray, box, value: str | None, confidence: float) -> np.ndarray:
    """A BGR copy of ``frame`` with the box and ``value (confidence)`` drawn on it, AR style."""
    canvas = frame.copy() if frame.ndim == 3 and frame.shape[2] == 3 else cv2.cvtColor(to_gray(frame), cv2.COLOR_GRAY2BGR)
    if canvas.dtype != np.uint8:
        canvas = cv2.cvtColor(to_gray(frame), cv2.COLOR_GRAY2BGR)
    h, w = canvas.shape[:2]
    thick = max(1, round(min(h, w) / 200))
    colour = GREEN if value is not None else RED
    label = f"{value if value is not None else '-'} ({confidence:.2f})"
    scale = max(0.4, min(h, w) / 500)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    if box is not None:
        x, y, bw, bh = (int(v) for v in box)
        cv2.rectangle(canvas, (x, y), (x + bw - 1, y + bh - 1), colour, thick)
        ty = y - base - 2 if y - th - base - 2 >= 0 else min(h - base - 1, y + bh + th + 2)
        tx = min(max(0, x), max(0, w - tw))
    else:
        tx, ty = 2, th + 2
    cv2.rectangle(canvas, (tx, ty - th - 2), (tx + tw, ty + base), (0, 0, 0), -1)
    cv2.putText(canvas, label, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    return canvas


def annotate_result(frame: np.ndarray, result: dict) -> np.ndarray:
    return annotate(frame, result.get("box"), result.get("value"), float(result.get("confidence") or 0.0))


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def annotate_to_file(frame: np.ndarray, result: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(annotate_result(frame, result)))
    return path
