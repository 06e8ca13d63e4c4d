"""Sequence accuracy and the float model's readings, shared by training (validation each epoch) and
export (the int8 parity check), so neither has to import the other."""

from __future__ import annotations

import numpy as np

from device.contract import decode_outputs

BATCH = 128


def sequence_accuracy(readings, labels: list[str]) -> float:
    """Percent of readings whose value equals the label ('' = no number = value None)."""
    if not labels:
        return float("nan")
    hits = sum((r.value or "") == lab for r, lab in zip(readings, labels))
    return 100.0 * hits / len(labels)


def float_readings(model, images: np.ndarray) -> list:
    """Readings of the float Keras model, decoded by the device's own decoder."""
    out = []
    for start in range(0, len(images), BATCH):
        batch = images[start : start + BATCH].astype(np.float32)
        raw = model(batch, training=False)
        out.extend(decode_outputs({k: np.asarray(v) for k, v in raw.items()}))
    return out
