"""``digitcam eval``: how well an exported model reads a labelled set, measured the way the device runs it.

The int8 ``.tflite`` goes through ``device.recognize.Recognizer`` (no TensorFlow needed). A set is a
folder of images named by their label (``1234.png``, ``1234_anything.jpg``; a name starting with
``_`` means "no number"), a CSV of ``path,label`` rows, or a built-in source split such as
``meters:val`` or ``rendered:test:2000``. Several sets may be given separated by commas.

The report (``report.json``) holds per set: sequence, per-digit (1 - character error rate) and length
accuracy; accuracy at 90 % and 95 % coverage when the least confident readings are rejected, with the
confidence threshold that achieves it; the whole coverage-accuracy curve; a digit confusion matrix;
and the worst errors (wrong but confident). PNGs: the curve, the confusion matrix and a sheet of the
worst errors as the model saw them.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.contract import NUM_CLASSES, InputSpec, check_label, prepare_crop
from device.errors import DigitcamError, SourceError
from device.images import IMAGE_SUFFIXES, load_image
from device.config import SensorConfig
from trainer.calibration import auroc, ece

log = logging.getLogger(__name__)

COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 21))
WORST = 48
BATCH = 64
DEFAULT_BUILTIN_N = 2000
DEFAULT_GATE = SensorConfig().min_confidence  # what a daemon sensor holds back by default


@dataclass
class LabelledSet:
    """Prepared model inputs with their labels and where each came from."""

    name: str
    images: np.ndarray  # [n, H, W, 1] uint8
    labels: list[str]
    ids: list[str]


# ---- loading --------------------------------------------------------------------------------------


def label_from_filename(path: Path) -> str:
    """``1234.png`` / ``1234_cam2.jpg`` -> '1234'; ``_empty.png`` -> '' (no number)."""
    stem = path.stem.split("_", 1)[0]
    if not re.fullmatch(r"\d{0,8}", stem):
        raise SourceError(f"cannot take a label from file name {path.name!r}: want <digits>[_anything]{path.suffix}")
    return stem


def _prepare_files(name: str, pairs: list[tuple[Path, str]], spec: InputSpec) -> LabelledSet:
    if not pairs:
        raise SourceError(f"labelled set {name} has no images")
    images = [prepare_crop(load_image(p), spec) for p, _ in pairs]
    return LabelledSet(name, np.stack(images), [lab for _, lab in pairs], [str(p) for p, _ in pairs])


def load_folder(path: Path, spec: InputSpec) -> LabelledSet:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return _prepare_files(str(path), [(p, label_from_filename(p)) for p in files], spec)


def load_csv(path: Path, spec: InputSpec) -> LabelledSet:
    """Rows ``path,label`` (a header row is skipped); paths are relative to the CSV's folder."""
    pairs = []
    with open(path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].startswith("#") or (lineno == 1 and row[0].strip().lower() == "path"):
                continue
            if len(row) < 2:
                raise SourceError(f"{path}:{lineno}: want 'path,label', got {','.join(row)!r}")
            label = row[1].strip()
            try:
                check_label(label)
            except ValueError as exc:
                raise SourceError(f"{path}:{lineno}: {exc}") from None
            pairs.append((path.parent / row[0].strip(), label))
    return _prepare_files(str(path), pairs, spec)


def builtin_options(parts: list[str], text: str) -> dict:
    """``key=value`` parts of a built-in set name as source options ('true'/'false' and integers typed)."""
    options = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SourceError(f"labelled set {text!r}: {part!r} is not key=value")
        typed = {"true": True, "false": False}.get(value.lower(), value)
        options[key] = int(value) if value.isdigit() else typed
    return options


def load_builtin(text: str, spec: InputSpec) -> LabelledSet:
    """``source:split[:n][:key=value...]`` -> the first n samples of a trainer source (the same ones every
    time), with source options such as ``meters:test:2000:kind=midroll`` or ``framed:test:500:tight=true``."""
    from trainer.sources import fixed_set, source_names
    from trainer.train_config import VAL_SEED

    parts = text.split(":")
    if len(parts) < 2 or parts[0] not in source_names():
        raise SourceError(f"no such labelled set {text!r}: want a folder, a .csv or one of "
                          f"{', '.join(source_names())} as source:split[:n][:key=value]")
    sized = len(parts) >= 3 and parts[2].isdigit()
    n = int(parts[2]) if sized else DEFAULT_BUILTIN_N
    options = builtin_options(parts[3 if sized else 2 :], text)
    try:
        images, labels = fixed_set(parts[0], parts[1], n, VAL_SEED, spec, **options)
    except (ValueError, TypeError) as exc:
        raise SourceError(f"labelled set {text}: {exc}") from None
    if not labels:
        raise SourceError(f"labelled set {text} is empty")
    return LabelledSet(text, images, labels, [f"{text}#{i}" for i in range(len(labels))])


def load_set(text: str, spec: InputSpec) -> LabelledSet:
    path = Path(text)
    if path.is_dir():
        return load_folder(path, spec)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise SourceError(f"labels CSV not found: {path}")
        return load_csv(path, spec)
    return load_builtin(text, spec)


# ---- metrics --------------------------------------------------------------------------------------


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def coverage_curve(correct: np.ndarray, confidence: np.ndarray) -> list[dict]:
    """Accuracy of the most confident fraction c of readings, for c in COVERAGES, with the threshold."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    curve = []
    for c in COVERAGES:
        k = max(1, int(round(c * len(order))))
        curve.append({"coverage": c, "accuracy": 100.0 * hits[k - 1] / k, "threshold": float(confidence[order[k - 1]])})
    return curve


def score(values: list[str], confidences: list[float], labels: list[str], weakest_digits=None) -> dict:
    """All the numbers of one set's report from predictions and labels (``weakest_digits``: each reading's
    lowest per-digit confidence, where a rolling wheel shows)."""
    correct = np.array([v == lab for v, lab in zip(values, labels)], dtype=bool)
    conf = np.asarray(confidences, dtype=np.float64)
    chars = sum(len(lab) for lab in labels)
    errors = sum(edit_distance(v, lab) for v, lab in zip(values, labels))
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)  # [true, predicted] where lengths agree
    for v, lab in zip(values, labels):
        if len(v) == len(lab):
            for t, p in zip(lab, v):
                confusion[int(t), int(p)] += 1
    curve = coverage_curve(correct, conf)
    at = {round(p["coverage"], 2): p for p in curve}
    accuracy = 100.0 * correct.mean()
    return {
        "n": len(labels),
        "sequence_accuracy": accuracy,
        "digit_accuracy": 100.0 * max(0.0, 1 - errors / chars) if chars else float("nan"),
        "length_accuracy": 100.0 * np.mean([len(v) == len(lab) for v, lab in zip(values, labels)]),
        "accuracy_at_95_coverage": at[0.95]["accuracy"],
        "threshold_at_95_coverage": at[0.95]["threshold"],
        "accuracy_at_90_coverage": at[0.9]["accuracy"],
        "threshold_at_90_coverage": at[0.9]["threshold"],
        # Confidence is useful when dropping the least confident 10 % raises accuracy (or it is already 100 %).
        "confidence_useful": bool(at[0.9]["accuracy"] > accuracy or accuracy == 100.0),
        "auroc": round(auroc(correct, conf), 4),
        "ece": round(ece(correct, conf), 4),
        # share a daemon with the default gate would hold back: mid-roll wheels want most of theirs held
        "below_default_gate": float((conf < DEFAULT_GATE).mean()) if len(conf) else float("nan"),
        # share with some digit below the gate: a meter sensor waits for such a wheel (device/meter.py)
        "digit_below_default_gate": (float((np.asarray(weakest_digits) < DEFAULT_GATE).mean())
                                     if weakest_digits is not None and len(conf) else float("nan")),
        "coverage_curve": curve,
        "confusion": confusion.tolist(),
    }


def evaluate_set(recognizer, data: LabelledSet) -> tuple[dict, list[dict]]:
    """Run the model over a set; returns (metrics, per-sample rows)."""
    readings = []
    for start in range(0, len(data.images), BATCH):
        readings.extend(recognizer.infer(data.images[start : start + BATCH]))
    values = [r.value or "" for r in readings]
    confidences = [float(r.confidence) for r in readings]
    weakest = [min((d.confidence for d in r.digits), default=float(r.confidence)) for r in readings]
    metrics = score(values, confidences, data.labels, weakest)
    rows = [{"id": i, "label": lab, "value": v, "confidence": c}
            for i, lab, v, c in zip(data.ids, data.labels, values, confidences)]
    return metrics, rows


# ---- pictures -------------------------------------------------------------------------------------


def _text(img, text, org, scale=0.4, colour=(0, 0, 0)):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_curves(curves: dict[str, list[dict]], path: Path) -> None:
    """Coverage (x) against accuracy (y), one line per set."""
    w, h, m = 520, 360, 50
    img = np.full((h, w, 3), 255, np.uint8)
    lo = min([min(p["accuracy"] for p in c) for c in curves.values()] + [90.0])
    lo = float(np.floor(lo / 5) * 5)
    x_of = lambda c: int(m + c * (w - 2 * m))  # noqa: E731
    y_of = lambda a: int(h - m - (a - lo) / (100.0 - lo) * (h - 2 * m))  # noqa: E731
    cv2.rectangle(img, (m, m), (w - m, h - m), (0, 0, 0), 1)
    for frac in (0.5, 0.9, 0.95):
        cv2.line(img, (x_of(frac), m), (x_of(frac), h - m), (220, 220, 220), 1)
    _text(img, f"{lo:.0f}%", (5, h - m))
    _text(img, "100%", (5, m + 5))
    _text(img, "coverage 0 -> 1 (least confident rejected first)", (m, h - 15))
    palette = [(200, 60, 0), (0, 140, 0), (0, 0, 200), (160, 0, 160), (0, 140, 160), (90, 90, 90)]
    for k, (name, curve) in enumerate(curves.items()):
        colour = palette[k % len(palette)]
        pts = np.array([(x_of(p["coverage"]), y_of(p["accuracy"])) for p in curve], np.int32)
        cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
        _text(img, name, (m + 8, m + 16 + 16 * k), colour=colour)
    cv2.imwrite(str(path), img)


def draw_confusion(confusion: list[list[int]], path: Path) -> None:
    """Rows = true digit, columns = predicted, shaded by row share; diagonal share in each cell."""
    cm = np.asarray(confusion, dtype=np.float64)
    cell, m = 36, 30
    img = np.full((m + cell * NUM_CLASSES + 5, m + cell * NUM_CLASSES + 5, 3), 255, np.uint8)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    for t in range(NUM_CLASSES):
        _text(img, str(t), (8, m + t * cell + 22))
        _text(img, str(t), (m + t * cell + 14, 20))
        for p in range(NUM_CLASSES):
            x, y = m + p * cell, m + t * cell
            shade = int(255 - 200 * share[t, p])
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), (shade, shade, 255) if t != p else (shade, 255, shade), -1)
            if cm[t, p]:
                _text(img, str(int(cm[t, p])), (x + 3, y + 22), 0.33)
    cv2.imwrite(str(path), img)


def draw_worst(data: LabelledSet, rows: list[dict], path: Path) -> list[dict]:
    """The confidently wrong readings, as the model saw them, with label and reading; returns those rows."""
    wrong = [i for i, r in enumerate(rows) if r["value"] != r["label"]]
    wrong.sort(key=lambda i: -rows[i]["confidence"])
    wrong = wrong[:WORST]
    h, w = data.images.shape[1:3]
    cols, pad = 4, 18
    n_rows = max(1, (len(wrong) + cols - 1) // cols)
    sheet = np.full((n_rows * (h * 2 + pad), cols * (w * 2 + 4), 3), 255, np.uint8)
    for k, i in enumerate(wrong):
        y, x = (k // cols) * (h * 2 + pad), (k % cols) * (w * 2 + 4)
        crop = cv2.resize(data.images[i, :, :, 0], (w * 2, h * 2), interpolation=cv2.INTER_NEAREST)
        sheet[y : y + h * 2, x : x + w * 2] = crop[:, :, None]
        r = rows[i]
        _text(sheet, f"{r['label'] or '-'} -> {r['value'] or '-'} {r['confidence']:.2f}", (x + 2, y + h * 2 + 13),
              0.4, (0, 0, 200))
    cv2.imwrite(str(path), sheet)
    return [rows[i] for i in wrong]


# ---- entry ----------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "set"


def evaluate(model_path: Path, datasets: list[str], output: Path) -> dict:
    """Evaluate one model on one or more sets; writes report.json and PNGs under ``output``."""
    from device.recognize import Recognizer

    recognizer = Recognizer(model_path)
    output.mkdir(parents=True, exist_ok=True)
    report = {"model": recognizer.describe(), "model_file": str(model_path), "sets": {}}
    curves = {}
    for text in datasets:
        data = load_set(text, recognizer.spec)
        metrics, rows = evaluate_set(recognizer, data)
        slug = _slug(data.name if not Path(text).exists() else Path(text).name)
        metrics["worst_errors"] = draw_worst(data, rows, output / f"{slug}.worst.png")
        draw_confusion(metrics["confusion"], output / f"{slug}.confusion.png")
        report["sets"][data.name] = metrics
        curves[slug] = metrics["coverage_curve"]
        log.info("%s: sequence %.2f %%, digit %.2f %%, length %.2f %%, at 90%% coverage %.2f %% (n=%d)", data.name,
                 metrics["sequence_accuracy"], metrics["digit_accuracy"], metrics["length_accuracy"],
                 metrics["accuracy_at_90_coverage"], metrics["n"])
    draw_curves(curves, output / "coverage.png")
    (output / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(args) -> int:
    from device.bundled import default_model

    datasets = [d for d in str(args.dataset).split(",") if d]
    if not datasets:
        raise DigitcamError("eval: no labelled set given")
    report = evaluate(Path(args.model or default_model()), datasets, Path(args.output))
    print(f"{'set':<28} {'n':>6} {'seq%':>7} {'digit%':>7} {'len%':>7} {'@95%':>7} {'@90%':>7} {'AUROC':>6} {'ECE':>6} "
          f"{'<gate':>6} {'digit<gate':>10}")
    for name, m in report["sets"].items():
        print(f"{name:<28} {m['n']:>6} {m['sequence_accuracy']:>7.2f} {m['digit_accuracy']:>7.2f} "
              f"{m['length_accuracy']:>7.2f} {m['accuracy_at_95_coverage']:>7.2f} {m['accuracy_at_90_coverage']:>7.2f} "
              f"{m['auroc']:>6.3f} {m['ece']:>6.3f} {m['below_default_gate']:>6.2f} "
              f"{m['digit_below_default_gate']:>10.2f}")
    print(f"report: {Path(args.output) / 'report.json'}")
    return 0
