"""Confidence you can gate on: how well it separates right from wrong, and a temperature that makes it honest.

A reading's confidence gates what the daemon publishes (``min_confidence``), so it must mean what it
says on every kind of crop. ``auroc`` (does a higher confidence mean "more likely right"?) and ``ece``
(does 0.8 mean right 80 % of the time?) measure it per set, beside ``trainer.evaluate``'s accuracy at
90 % / 95 % coverage. ``fit_temperature`` picks the
one temperature (``device.contract.calibrated``) that minimises the log loss of "the reading is right"
on validation sets; it goes into the manifest and the device applies it. Test sets are never used.
"""

from __future__ import annotations

import logging

import numpy as np

from device.contract import decode_outputs

log = logging.getLogger(__name__)

ECE_BINS = 15
TEMPERATURES = tuple(float(t) for t in np.exp(np.linspace(np.log(0.5), np.log(8.0), 57)))


def auroc(correct: np.ndarray, confidence: np.ndarray) -> float:
    """Probability that a right reading is more confident than a wrong one (ties count half); nan if one
    class is missing."""
    correct = np.asarray(correct, bool)
    conf = np.asarray(confidence, np.float64)
    pos, neg = conf[correct], np.sort(conf[~correct])
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")  # wrong readings less confident than each right one
    tied = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(pos) * len(neg)))


def ece(correct: np.ndarray, confidence: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the mean |accuracy - confidence| over equal-width bins, by bin size."""
    correct = np.asarray(correct, np.float64)
    conf = np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total / max(1, len(conf)))


def log_loss(correct: np.ndarray, confidence: np.ndarray) -> float:
    p = np.clip(np.asarray(confidence, np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(correct, np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def readings_at(outputs: list[dict], temperature: float) -> list:
    """Readings of stored model outputs (one dict of named arrays per batch) at a temperature."""
    return [r for batch in outputs for r in decode_outputs(batch, temperature)]


def fit_temperature(recognizer, sets: dict[str, tuple[np.ndarray, list[str]]], batch: int = 128) -> dict:
    """The temperature minimising the log loss of right-vs-wrong over all ``sets`` (name -> images, labels),
    with each set's ECE before and after; the model is run once, decoding is repeated per temperature."""
    outputs, labels = [], []
    for images, set_labels in sets.values():
        for start in range(0, len(images), batch):
            outputs.append(recognizer.probabilities(images[start : start + batch]))
        labels.extend(set_labels)

    def scored(t):
        readings = readings_at(outputs, t)
        correct = np.array([(r.value or "") == lab for r, lab in zip(readings, labels)])
        return correct, np.array([r.confidence for r in readings])

    losses = {t: log_loss(*scored(t)) for t in TEMPERATURES}
    best = min(losses, key=losses.get)
    before, after = scored(1.0), scored(best)
    ece_before, ece_after = round(ece(*before), 4), round(ece(*after), 4)
    log.info("calibration: temperature %.3f, log loss %.4f -> %.4f, ECE %.4f -> %.4f", best, log_loss(*before),
             losses[best], ece_before, ece_after)
    return {"temperature": round(best, 4), "fitted_on": list(sets), "n": len(labels),
            "ece_before": ece_before, "ece_after": ece_after}
