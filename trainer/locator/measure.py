"""Measure an exported locator through the device's own ``Locator`` on held-out scenes: box IoU of three
decoders, null rates over thresholds, end to end with a recognizer, and already-cropped numbers."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from device.boxes import crop
from device.heatmap import STRIDE
from device.reader import FrameReader
from trainer.cluttered import KINDS

VAL_SEED, TEST_SEED = 1001, 2002


def held_out_scenes(split: str, n: int, seed: int, strips: float = 0.0, cluttered: float = 0.0,
                    kinds: tuple[str, ...] = KINDS):
    """The first ``n`` scenes of a held-out split at full resolution: (frame, label, box).

    ``strips`` > 0: that share of the numbers are the split's real meter strips (meters never trained on).
    ``cluttered`` > 0: that share of the scenes are cluttered ones (``trainer.cluttered``), of ``kinds``.
    """
    from trainer.sources import iter_scenes

    return list(itertools.islice(iter_scenes(split, seed, strips=strips, cluttered=cluttered, cluttered_kinds=kinds), n))


def blob_box(heat: np.ndarray, threshold: float):
    """The alternative decoder measured in docs/LOCATOR.md: the blob's cell extent, no edge regression."""
    import cv2

    peak_at = int(np.argmax(heat))
    if heat.flat[peak_at] < threshold:
        return None
    _, labels = cv2.connectedComponents((heat >= 0.5 * heat.flat[peak_at]).astype(np.uint8), connectivity=8)
    rows, cols = np.nonzero(labels == labels.flat[peak_at])
    return cols.min() * STRIDE, rows.min() * STRIDE, (cols.max() + 1) * STRIDE, (rows.max() + 1) * STRIDE


def measure(model_path: Path, scenes, recognizer=None, thresholds=(0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95),
            margins=(0.0, 0.1, 0.25)) -> dict:
    """Box IoU of three decoders (blob extent, one pass, refined), null rates over thresholds, end to end.

    IoU is measured with the threshold at 0 (every scene gets a box); the threshold sweep then says which
    scenes a threshold would have dropped. End to end uses the manifest's threshold, refine and margins.
    """
    from device.boxes import box_iou
    from device.heatmap import decode_heatmap
    from device.locate import Locator

    chosen = Locator(model_path)
    one = Locator(model_path, threshold=0.0, refine=False)
    two = Locator(model_path, threshold=0.0, refine=True)
    peaks, ious, ms, has, heights, boxes = [], {"blob": [], "one_pass": [], "refined": []}, [], [], [], []
    for frame, _, box in scenes:
        start = time.perf_counter()
        heat, ltrb, fit = one.maps(frame)
        corners, peak = decode_heatmap(heat, ltrb, 0.0)
        ms.append((time.perf_counter() - start) * 1000)
        refined = two.locate(frame).box
        peaks.append(peak)
        has.append(box is not None)
        heights.append(box[3] if box is not None else 0)
        boxes.append(refined if chosen.refine else fit.to_frame(corners))
        for name, pred in (("blob", fit.to_frame(blob_box(heat, 0.0))), ("one_pass", fit.to_frame(corners)),
                           ("refined", refined)):
            ious[name].append(box_iou(pred, box) if box is not None else 0.0)
    peaks, has, heights = np.asarray(peaks), np.asarray(has), np.asarray(heights)
    ious = {k: np.asarray(v) for k, v in ious.items()}
    used = ious["refined" if chosen.refine else "one_pass"]
    report = {
        "n": len(scenes), "with_number": int(has.sum()), "without_number": int((~has).sum()),
        "ms_one_pass_median": round(float(np.median(ms)), 3),
        "decoders": {k: {"iou_mean": round(float(v[has].mean()), 4), "iou_ge_0.7": round(float((v[has] >= 0.7).mean()), 4)}
                     for k, v in ious.items()},
        "by_height": {},
        "thresholds": {},
    }
    for lo, hi in ((0, 40), (40, 80), (80, 480)):
        sel = has & (heights >= lo) & (heights < hi)
        report["by_height"][f"{lo}-{hi}px"] = {"n": int(sel.sum()), "iou_ge_0.7": round(float((used[sel] >= 0.7).mean()), 4)}
    for t in thresholds:
        report["thresholds"][str(t)] = {
            "found_iou_ge_0.7": round(float(((peaks >= t) & (used >= 0.7))[has].mean()), 4),
            "missed": round(float((peaks < t)[has].mean()), 4),
            "empty_null": round(float((peaks < t)[~has].mean()), 4) if (~has).any() else None,
        }
    if recognizer is not None:
        report.update(end_to_end(chosen, recognizer, scenes, boxes, peaks, margins))
    return report


def end_to_end(locator, recognizer, scenes, boxes, peaks, margins) -> dict:
    """Sequence accuracy of locate + read for each crop margin, and of reading the true box (the ceiling)."""
    from device.boxes import expand

    has = np.asarray([box is not None for _, _, box in scenes])
    truth_hits = 0
    for frame, label, box in scenes:
        if box is not None:
            (truth,), _ = recognizer.read([crop(frame, tuple(int(v) for v in box))])
            truth_hits += (truth.value or "") == label
    report = {"true_box_accuracy": round(truth_hits / max(1, has.sum()), 4), "threshold": locator.threshold,
              "margins": {}}
    for margin in margins:
        hits, null_ok = 0, 0
        for (frame, label, box), pred, peak in zip(scenes, boxes, peaks):
            value = None
            if peak >= locator.threshold:
                (reading,), _ = recognizer.read([crop(frame, expand(pred, frame.shape, margin))])
                value = reading.value
            if box is not None:
                hits += (value or "") == label
            else:
                null_ok += value is None
        report["margins"][str(margin)] = {"accuracy": round(hits / max(1, has.sum()), 4),
                                          "empty_null": round(null_ok / max(1, (~has).sum()), 4)}
    report["find_and_read"] = find_and_read(locator, recognizer, scenes)
    return report


MIN_CONFIDENCES = (0.3, 0.5, 0.7)  # the daemon's sensors drop reads below ``min_confidence`` (default 0.5)


def find_and_read(locator, recognizer, scenes) -> dict:
    """What ``digitcam read`` does: ``Locator.find`` (manifest threshold, margin, whole-image rule), then read.

    Also what a daemon sensor counts at each ``min_confidence``: a read below it is dropped, so a right
    read is lost and a read on a scene without a number becomes null.
    """
    right, null, confidence, has = [], [], [], []
    reader = FrameReader(recognizer, locator)
    for frame, label, box in scenes:
        reading, _ = reader.find_and_read(frame)  # no box: no value, confidence 1
        value, conf = reading.value, reading.confidence
        right.append((value or "") == label)
        null.append(value is None)
        confidence.append(conf)
        has.append(box is not None)
    right, null, confidence, has = (np.asarray(v) for v in (right, null, confidence, has))

    def shares(kept):
        return {"accuracy": round(float((right & kept & has).sum() / max(1, has.sum())), 4),
                "empty_null": round(float(((null | ~kept) & ~has).sum() / max(1, (~has).sum())), 4)}

    report = shares(np.ones_like(has))
    report["min_confidence"] = {str(c): shares(confidence >= c) for c in MIN_CONFIDENCES}
    return report


def tight_crops(locator, recognizer, n: int, seed: int = TEST_SEED) -> dict:
    """Already-cropped numbers (the recognizer's own test crops): read whole, located, located or whole."""
    from trainer.sources import iter_samples

    counts = {"whole": 0, "located": 0, "located_or_whole": 0, "not_found": 0}
    for image, label in itertools.islice(iter_samples("rendered", "test", seed, colour=True), n):
        (whole,), _ = recognizer.read([image])
        box = locator.find(image)
        located = None
        if box is not None:
            reading, _ = FrameReader(recognizer, locator).read_box(image, box)
            located = reading.value
        counts["not_found"] += box is None
        counts["whole"] += (whole.value or "") == label
        counts["located"] += (located or "") == label
        counts["located_or_whole"] += ((located if box is not None else whole.value) or "") == label
    return {k: round(v / n, 4) for k, v in counts.items()} | {"n": n}
