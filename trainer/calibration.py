"""Confidence you can gate on: how well it separates right from wrong, and a temperature that makes it honest.

A reading's confidence gates what the daemon publishes (``min_confidence``), so it must mean what it
says on every kind of crop. ``confidence_report`` measures it per set: AUROC of right vs wrong (does a
higher confidence mean "more likely right"?), expected calibration error (does 0.8 mean right 80 % of
the time?) and accuracy when the least confident 10 % / 5 % are dropped. ``fit_temperature`` picks the
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
    pos, neg = conf[correct], conf[~correct]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order), np.float64)
    values = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


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


def accuracy_at_coverage(correct: np.ndarray, confidence: np.ndarray, coverage: float) -> float:
    """Percent right among the ``coverage`` most confident readings."""
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    k = max(1, int(round(coverage * len(order))))
    return float(100.0 * np.asarray(correct, np.float64)[order[:k]].mean())


def confidence_report(correct, confidence) -> dict:
    """The gate-worthiness numbers of one set."""
    correct = np.asarray(correct, bool)
    return {
        "auroc": round(auroc(correct, confidence), 4),
        "ece": round(ece(correct, confidence), 4),
        "accuracy_at_90_coverage": round(accuracy_at_coverage(correct, confidence, 0.9), 2),
        "accuracy_at_95_coverage": round(accuracy_at_coverage(correct, confidence, 0.95), 2),
    }


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
    log.info("calibration: temperature %.3f, log loss %.4f -> %.4f, ECE %.4f -> %.4f", best, losses.get(1.0, log_loss(*before)),
             losses[best], ece(*before), ece(*after))
    return {"temperature": round(best, 4), "fitted_on": list(sets), "n": len(labels),
            "ece_before": round(ece(*before), 4), "ece_after": round(ece(*after), 4)}
