"""Train, measure and export the locator (``trainer/locator_model.py``) on rendered scenes.

``python -m trainer.locator_train train --out runs/locator`` renders a training set of scenes once
(cached as .npz), trains with checkpoints every epoch (run it again to resume), and
``export`` writes ``models/locator.tflite`` + its manifest with the int8 conversion of
``trainer.export``. ``eval`` measures the exported model through the device's own ``Locator`` on
held-out scenes: box IoU, no-number scenes, and end to end with a recognizer; ``sheet`` draws a
contact sheet of annotated scenes for a person to check. Numbers go to docs/LOCATOR.md.

Training examples are whole scenes and, for a share of them, *zoomed* windows around the number
(down to a tight crop), so the same model also finds a number that already fills the image.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from device.locate import BOX_UNIT, LOCATOR_KIND, LOCATOR_PREPROCESS, STRIDE, cell_centres, crop, fit_frame
from device.reader import FrameReader

log = logging.getLogger(__name__)

POS_WEIGHT = 10.0  # number cells are ~1 % of the grid: weigh their heat-map error up
ZOOM_RATE = 0.3  # share of training examples cut as a window around the number instead of the whole scene
VAL_SEED, TEST_SEED = 1001, 2002
CALIBRATION = 256
# Training scenes are rendered at half the camera's size: 3.7x faster, and the model sees them at
# 160x120 anyway. Held-out scenes are rendered at the full 480x640 the device sees.
RENDER_SIZE = (240, 320)


# ---- examples -------------------------------------------------------------------------------------------


def zoom_window(frame_shape, box, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random window (x, y, w, h) inside the frame that contains ``box``: from a tight crop to a wide view."""
    fh, fw = frame_shape[:2]
    if box is None:
        ww = int(rng.uniform(0.15, 0.7) * fw)
        wh = int(max(8, ww * rng.uniform(0.2, 0.8)))
        return int(rng.integers(0, fw - ww + 1)), int(rng.integers(0, max(1, fh - wh + 1))), ww, min(wh, fh)
    bx, by, bw, bh = box
    if rng.random() < 0.5:  # tight: the number fills most of the window, like a recognizer crop
        ww = bw / rng.uniform(0.6, 0.97)
        wh = bh * rng.uniform(1.1, 2.5)
    else:  # a closer view with some surroundings
        ww = bw / rng.uniform(0.2, 0.6)
        wh = ww * rng.uniform(0.5, 0.85)
    ww, wh = min(fw, max(ww, bw)), min(fh, max(wh, bh))
    x = rng.uniform(max(0, bx + bw - ww), max(0, min(bx, fw - ww)) + 1e-6)
    y = rng.uniform(max(0, by + bh - wh), max(0, min(by, fh - wh)) + 1e-6)
    return int(x), int(y), max(1, int(round(ww))), max(1, int(round(wh)))


def scene_example(frame: np.ndarray, box, rng: np.random.Generator | None, height: int, width: int,
                  zoom_rate: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A scene -> (model input ``[height, width]`` uint8, the number's input-pixel corners or NaNs)."""
    if rng is not None and rng.random() < zoom_rate:
        wx, wy, ww, wh = zoom_window(frame.shape, box, rng)
        frame = frame[wy : wy + wh, wx : wx + ww]
        if box is not None:
            x0, y0 = max(box[0], wx), max(box[1], wy)
            x1, y1 = min(box[0] + box[2], wx + ww), min(box[1] + box[3], wy + wh)
            box = (x0 - wx, y0 - wy, x1 - x0, y1 - y0)
    small, fit = fit_frame(frame, height, width)
    corners = np.full(4, np.nan, np.float32) if box is None else np.asarray(fit.to_input(box), np.float32)
    return small, corners


def make_scene_set(split: str, n: int, seed: int, height: int, width: int, zoom_rate: float = 0.0,
                   cache: Path | None = None, size: tuple[int, int] = RENDER_SIZE,
                   log_size: bool = False, strips: float = 0.0,
                   empty_rate: float | None = None, plain_rate: float = 0.0,
                   cluttered: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes as model inputs ``[n, h, w]`` uint8 and corners ``[n, 4]`` (NaN: no number); cached."""
    if cache is not None and cache.is_file():
        data = np.load(cache)
        if len(data["images"]) >= n:
            return data["images"][:n], data["corners"][:n]
    from trainer.sources import iter_scenes

    rng = np.random.default_rng(seed + 17)
    options = {"plain_rate": plain_rate, "cluttered": cluttered} | ({} if empty_rate is None else {"empty_rate": empty_rate})
    images = np.zeros((n, height, width), np.uint8)
    corners = np.zeros((n, 4), np.float32)
    started = time.monotonic()
    for i, (frame, _, box) in enumerate(itertools.islice(iter_scenes(split, seed, size=size, log_size=log_size, strips=strips, **options), n)):
        images[i], corners[i] = scene_example(frame, box, rng, height, width, zoom_rate)
        if i and i % 2000 == 0:
            log.info("%s scenes: %d/%d (%.0f/s)", split, i, n, i / (time.monotonic() - started))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, corners=corners)
    return images, corners


def load_scene_files(files) -> tuple[np.ndarray, np.ndarray]:
    """Scene sets written by ``scenes`` (or a run's cache), concatenated: (images, corners)."""
    sets = [np.load(f) for f in files]
    return np.concatenate([d["images"] for d in sets]), np.concatenate([d["corners"] for d in sets])


# ---- targets and losses ----------------------------------------------------------------------------------


def encode_targets(corners, rows: int, cols: int):
    """Corners ``[B, 4]`` (NaN: no number) -> heat ``[B, rows, cols, 1]`` and ltrb+weight ``[B, rows, cols, 5]``.

    A cell is on the number when its centre lies inside the box; the cell holding the box's centre
    always is, so a number thinner than a cell still has one. ltrb are the distances from the cell
    centre to the box edges in ``BOX_UNIT`` pixels, the inverse of ``device.locate.decode_heatmap``.
    """
    import tensorflow as tf

    corners = tf.convert_to_tensor(corners, tf.float32)
    present = tf.logical_not(tf.reduce_any(tf.math.is_nan(corners), axis=1))
    c = tf.where(present[:, None], corners, tf.zeros_like(corners))
    cx, cy = (tf.constant(v) for v in cell_centres(rows, cols))
    x0, y0, x1, y1 = (c[:, i, None, None] for i in range(4))
    left, right = cx[None, None, :] - x0, x1 - cx[None, None, :]
    top, bottom = cy[None, :, None] - y0, y1 - cy[None, :, None]
    shape = [tf.shape(c)[0], rows, cols]
    left, right = tf.broadcast_to(left, shape), tf.broadcast_to(right, shape)
    top, bottom = tf.broadcast_to(top, shape), tf.broadcast_to(bottom, shape)
    inside = (left > 0) & (right > 0) & (top > 0) & (bottom > 0)
    col = tf.clip_by_value(tf.cast(tf.floor((x0 + x1) / 2 / STRIDE), tf.int32), 0, cols - 1)
    row = tf.clip_by_value(tf.cast(tf.floor((y0 + y1) / 2 / STRIDE), tf.int32), 0, rows - 1)
    centre = (tf.range(cols)[None, None, :] == col) & (tf.range(rows)[None, :, None] == row)
    on = tf.cast((inside | centre) & present[:, None, None], tf.float32)
    ltrb = tf.maximum(tf.stack([left, top, right, bottom], axis=-1), 0.0) / BOX_UNIT
    return on[..., None], tf.concat([ltrb * on[..., None], on[..., None]], axis=-1)


def heat_loss(y_true, y_pred):
    """Binary cross-entropy per cell, number cells weighted ``POS_WEIGHT`` times."""
    import tensorflow as tf

    p = tf.clip_by_value(y_pred, 1e-6, 1 - 1e-6)
    bce = -(y_true * tf.math.log(p) + (1 - y_true) * tf.math.log(1 - p))
    return tf.reduce_mean(bce * (1 + (POS_WEIGHT - 1) * y_true), axis=[1, 2, 3])


def box_loss(y_true, y_pred):
    """IoU loss (UnitBox, Yu et al. 2016) of each number cell's box against the true box; scale-free."""
    import tensorflow as tf

    t, w = y_true[..., :4], y_true[..., 4]
    inter = (tf.minimum(t[..., 0], y_pred[..., 0]) + tf.minimum(t[..., 2], y_pred[..., 2])) * (
        tf.minimum(t[..., 1], y_pred[..., 1]) + tf.minimum(t[..., 3], y_pred[..., 3]))
    area_t = (t[..., 0] + t[..., 2]) * (t[..., 1] + t[..., 3])
    area_p = (y_pred[..., 0] + y_pred[..., 2]) * (y_pred[..., 1] + y_pred[..., 3])
    iou = (inter + 1e-3) / (area_t + area_p - inter + 1e-3)
    per_cell = -tf.math.log(tf.clip_by_value(iou, 1e-4, 1.0)) * w
    return tf.reduce_sum(per_cell, axis=[1, 2]) / tf.maximum(tf.reduce_sum(w, axis=[1, 2]), 1.0)


def training_dataset(images: np.ndarray, corners: np.ndarray, rows: int, cols: int, batch: int, seed: int):
    """Shuffled, lightly augmented (gain, offset, inversion, noise) batches of (images, targets)."""
    import tensorflow as tf

    def augment(x, c):
        x = tf.cast(x, tf.float32)[..., None]
        n = tf.shape(x)[0]
        gain = tf.random.uniform([n, 1, 1, 1], 0.6, 1.3)
        offset = tf.random.uniform([n, 1, 1, 1], -40.0, 40.0)
        x = (x - 128.0) * gain + 128.0 + offset
        invert = tf.random.uniform([n, 1, 1, 1]) < 0.15
        x = tf.where(invert, 255.0 - x, x)
        x = x + tf.random.normal(tf.shape(x), stddev=tf.random.uniform([], 0.0, 6.0))
        heat, box = encode_targets(c, rows, cols)
        return tf.clip_by_value(x, 0.0, 255.0), {"heatmap": heat, "box": box}

    ds = tf.data.Dataset.from_tensor_slices((images, corners)).shuffle(len(images), seed=seed)
    return ds.batch(batch, drop_remainder=True).map(augment, num_parallel_calls=2).prefetch(2)


# ---- training --------------------------------------------------------------------------------------------


def train(out: Path, n_train: int = 12000, epochs: int = 12, batch: int = 32, lr: float = 3e-3, seed: int = 0,
          width_mult: float = 1.0, height: int | None = None, width: int | None = None, cache: Path | None = None,
          minutes: float | None = None, scene_files: list[Path] | None = None, init: Path | None = None):
    """Train (or resume) a locator in ``out``: ``last.keras`` every epoch, ``state.json``, ``log.csv``.

    ``scene_files`` (from ``scenes``) replace the default training set; ``init`` starts a new run from
    another run's weights (fine-tuning on more or different scenes).
    """
    import keras

    from trainer.locator_model import INPUT_HEIGHT, INPUT_WIDTH, build_locator, grid_shape

    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    images = corners = None
    if scene_files:
        images, corners = load_scene_files(scene_files)
        height, width = height or images.shape[1], width or images.shape[2]  # a new run takes the files' size
    height, width = state.get("height", height or INPUT_HEIGHT), state.get("width", width or INPUT_WIDTH)
    rows, cols = grid_shape(height, width)
    if scene_files:
        if images.shape[1:] != (height, width):
            raise ValueError(f"scene files hold {images.shape[1:]} inputs, the model wants {(height, width)}")
    else:
        cache = cache or out / f"scenes_train_{n_train}_{height}x{width}.npz"
        images, corners = make_scene_set("train", n_train, seed, height, width, ZOOM_RATE, cache)
    log.info("training set: %d scenes, %d without a number", len(images), int(np.isnan(corners[:, 0]).sum()))
    last = out / "last.keras"

    def compile_for(model, epochs_left: int):
        steps = epochs_left * (len(images) // batch)
        schedule = keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.02)
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0),
                      loss={"heatmap": heat_loss, "box": box_loss})

    if last.is_file():
        model = keras.models.load_model(last, custom_objects={"heat_loss": heat_loss, "box_loss": box_loss})
        log.info("resuming %s at epoch %d", last, state.get("epoch", 0))
        if epochs > state["epochs"]:  # longer than planned: a warm restart, one new cosine cycle (SGDR)
            compile_for(model, epochs - state["epoch"])
            state.setdefault("restarts", []).append({"at_epoch": state["epoch"], "epochs": epochs, "lr": lr})
            state["epochs"] = epochs
    else:
        model = build_locator(height, width, width_mult)
        if init is not None:
            model.set_weights(keras.models.load_model(init, compile=False).get_weights())
            log.info("starting from the weights of %s", init)
        compile_for(model, epochs)
        state = {"epoch": 0, "height": height, "width": width, "width_mult": width_mult, "n_train": len(images),
                 "epochs": epochs, "batch": batch, "lr": lr, "seed": seed,
                 "scene_files": [str(f) for f in scene_files or []], "init": str(init) if init else None}
    started, cpu_started = time.monotonic(), time.process_time()
    seconds_before, cpu_before = state.get("seconds", 0.0), state.get("cpu_seconds", 0.0)

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            model.save(last)
            state.update(epoch=epoch + 1, loss={k: round(float(v), 5) for k, v in (logs or {}).items()},
                         seconds=round(seconds_before + time.monotonic() - started, 1),
                         cpu_seconds=round(cpu_before + time.process_time() - cpu_started, 1))
            state_file.write_text(json.dumps(state, indent=2))
            if minutes is not None and time.monotonic() - started > minutes * 60:
                log.info("time budget of %.0f min spent", minutes)
                self.model.stop_training = True

    ds = training_dataset(images, corners, rows, cols, batch, seed + state["epoch"])
    model.fit(ds, epochs=epochs, initial_epoch=state["epoch"], verbose=2,
              callbacks=[Checkpoint(), keras.callbacks.CSVLogger(str(out / "log.csv"), append=True)])
    return model


# ---- measurement ------------------------------------------------------------------------------------------


def held_out_scenes(split: str, n: int, seed: int, strips: float = 0.0, cluttered: float = 0.0):
    """The first ``n`` scenes of a held-out split at full resolution: (frame, label, box).

    ``strips`` > 0: that share of the numbers are the split's real meter strips (meters never trained on).
    ``cluttered`` > 0: that share of the scenes are cluttered ones (``trainer.cluttered``).
    """
    from trainer.sources import iter_scenes

    return list(itertools.islice(iter_scenes(split, seed, strips=strips, cluttered=cluttered), n))


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
    from device.locate import Locator, box_iou, decode_heatmap

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
    from device.locate import expand

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


# ---- crop views ------------------------------------------------------------------------------------------

# Candidate views (width scale, height scale, x shift of the width) around the found box: a few percent
# wider, taller or off to one side, the size of the locator's usual box error (docs/LOCATOR.md).
CANDIDATE_VIEWS = tuple((sx, sy, dx) for sx in (0.95, 1.0, 1.05, 1.1, 1.2) for sy in (0.9, 1.0, 1.1, 1.25)
                        for dx in (-0.03, 0.0, 0.03))


def view_readings(locator, recognizer, scenes, candidates=CANDIDATE_VIEWS) -> list:
    """Per scene: None (no box found) or the (value, confidence) read through each candidate view."""
    from device.locate import view_boxes

    out = []
    for frame, _, _ in scenes:
        box = locator.find(frame)
        if box is None:
            out.append(None)
            continue
        readings, _ = recognizer.read([crop(frame, view) for view in view_boxes(box, frame.shape, candidates)])
        out.append([(r.value, r.confidence) for r in readings])
    return out


def voted_accuracy(scenes, readings, chosen: list[int]) -> float:
    """Sequence accuracy over the scenes with a number when the ``chosen`` views vote (``device.recognize.vote``)."""
    from device.contract import Reading
    from device.recognize import vote

    hits = total = 0
    for (_, label, box), read in zip(scenes, readings):
        if box is None:
            continue
        total += 1
        if read is not None:
            hits += (read[chosen[vote([Reading(*read[i]) for i in chosen])]][0] or "") == label
    return hits / max(1, total)


def choose_views(locator, recognizer, scenes, max_views: int = 3, candidates=CANDIDATE_VIEWS) -> dict:
    """Greedy forward selection of the views that read best together, starting from the box itself.

    Run on the validation split; a view joins only if it adds at least one right reading.
    """
    readings = view_readings(locator, recognizer, scenes, candidates)
    chosen = [candidates.index((1.0, 1.0, 0.0))]
    steps = [{"views": [list(candidates[i]) for i in chosen], "accuracy": round(voted_accuracy(scenes, readings, chosen), 4)}]
    n = sum(box is not None for _, _, box in scenes)
    while len(chosen) < max_views:
        scores = {i: voted_accuracy(scenes, readings, chosen + [i]) for i in range(len(candidates)) if i not in chosen}
        best = max(scores, key=scores.get)
        if (scores[best] - steps[-1]["accuracy"]) * n < 1 - 1e-6:
            break
        chosen.append(best)
        steps.append({"views": [list(candidates[i]) for i in chosen], "accuracy": round(scores[best], 4)})
    return {"crops": steps[-1]["views"], "steps": steps, "scenes": len(scenes), "with_number": n}


def record_in_manifest(locator_path: Path, key: str, value) -> None:
    """Set one field of the locator's manifest (the chosen ``crops``, measured ``metrics``); the model
    file, and so its sha256, is untouched."""
    from device.manifest import manifest_path, write_manifest

    data = json.loads(manifest_path(locator_path).read_text())
    kept = {k: v for k, v in data.items() if k not in ("schema", "file", "sha256")}  # write_manifest sets these
    write_manifest(locator_path, kept | {key: value})


# ---- export ------------------------------------------------------------------------------------------------


def training_scenes(run: Path, state: dict, height: int, width: int, n: int = 6400) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` of the run's own training scenes (its scene files or cache), else freshly rendered ones."""
    files = [Path(f) for f in state.get("scene_files") or []] or sorted(run.glob(f"scenes_train_*_{height}x{width}.npz"))
    files = [f for f in files if f.is_file()]
    if not files:
        return make_scene_set("train", n, 4343, height, width, ZOOM_RATE)
    images, corners = load_scene_files(files)
    pick = np.random.default_rng(0).permutation(len(images))[:n]
    return images[pick], corners[pick]


def recalibrate_batchnorm(model, scenes: tuple[np.ndarray, np.ndarray], steps: int = 200, batch: int = 32) -> None:
    """Re-estimate the BatchNorm moving statistics for the final weights before export.

    The moving averages trail the weights by ~100 steps; a checkpoint taken while the learning rate is
    still high (a run stopped by its time budget) had inference-mode losses 3-4x its training-mode ones
    (heat-map 0.77 vs 0.21). Forward passes in training mode, no gradient steps, bring them back (0.18).
    """
    import keras

    from trainer.locator_model import grid_shape

    # Seeds the augmentation draws; two exports of one run still differ by one quantization step in ~1 %
    # of the bytes (690 of 69,144 measured): tf.data's parallel map draws in thread order.
    keras.utils.set_random_seed(0)
    images, corners = scenes
    rows, cols = grid_shape(int(model.input.shape[1]), int(model.input.shape[2]))
    for x, _ in training_dataset(images, corners, rows, cols, batch, seed=1).repeat().take(steps):
        model(x, training=True)


def export(run: Path, output: Path, threshold: float = 0.5, margin: float = 0.1, refine: bool = True,
           version: str | None = None, metrics: dict | None = None, calibration: int = CALIBRATION) -> dict:
    """``run/last.keras`` -> full-int8 ``output`` (uint8 input) + manifest, via ``trainer.export.convert_int8``."""
    import keras

    from device.manifest import write_manifest
    from trainer.export import convert_int8
    from trainer.models import count_macs

    model = keras.models.load_model(run / "last.keras", compile=False)
    height, width = int(model.input.shape[1]), int(model.input.shape[2])
    state = json.loads((run / "state.json").read_text()) if (run / "state.json").is_file() else {}
    recalibrate_batchnorm(model, training_scenes(run, state, height, width))
    calib, _ = make_scene_set("train", calibration, 4242, height, width, ZOOM_RATE)
    # A camera's frames reach 0 and 255 (shadows, highlights); one ramp makes sure the calibration does
    # too, so the uint8 input keeps scale 1 / zero point 0 and camera bytes go in unchanged.
    ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    convert_int8(model, np.concatenate([ramp[None], calib])[..., None], output)
    fields = {
        "name": "locator", "kind": LOCATOR_KIND,
        "version": version or dt.datetime.now(dt.timezone.utc).strftime("%Y.%m.%d-%H%M"),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": model.name,
        "input": {"height": height, "width": width, "channels": 1, "dtype": "uint8", "preprocess": LOCATOR_PREPROCESS},
        "outputs": {"heatmap": "number probability per cell", "box": f"l,t,r,b edge distances / {BOX_UNIT} px"},
        "stride": STRIDE, "threshold": threshold, "margin": margin, "refine": refine,
        "params": int(model.count_params()), "macs": count_macs(model), "size_bytes": output.stat().st_size,
        "training": {k: state.get(k) for k in ("epoch", "n_train", "batch", "lr", "restarts", "seconds", "cpu_seconds",
                                               "loss", "init", "scene_files")},
        "metrics": metrics or {},
    }
    write_manifest(output, fields)
    return fields


# ---- contact sheet ----------------------------------------------------------------------------------------


def contact_sheet(locator, recognizer, scenes, output: Path, cols: int = 6, tile_width: int = 240) -> Path:
    """Annotated scenes tiled into one image: what ``digitcam read`` reports (box and reading in green/red),
    the other candidates it read (thin yellow), the true box (thin blue)."""
    import cv2

    from device.overlay import annotate

    tiles = []
    reader = FrameReader(recognizer, locator)
    for frame, label, box in scenes:
        bgr = np.ascontiguousarray(frame[:, :, ::-1]) if frame.ndim == 3 else frame
        found = reader.read_candidates(bgr)
        value, conf = found.reading.value, (found.reading.confidence if found.candidates else 0.0)
        tile = annotate(bgr, found.reading.box, value, conf)
        for other in found.candidates:
            if other is not found.reading:
                x, y, w, h = other.box
                cv2.rectangle(tile, (x, y), (x + w - 1, y + h - 1), (0, 220, 255), 1)
        if box is not None:
            x, y, w, h = (int(v) for v in box)
            cv2.rectangle(tile, (x, y), (x + w - 1, y + h - 1), (230, 120, 30), 1)
        ok = (value or "") == label
        cv2.putText(tile, f"truth {label or '-'}", (4, tile.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.2,
                    (60, 220, 60) if ok else (40, 40, 230), 2, cv2.LINE_AA)
        scale = tile_width / tile.shape[1]
        tiles.append(cv2.resize(tile, (tile_width, int(round(tile.shape[0] * scale))), interpolation=cv2.INTER_AREA))
    th = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, th - t.shape[0], 0, 0, cv2.BORDER_CONSTANT, value=0) for t in tiles]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(output), np.vstack(rows))
    return output


# ---- command line -----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.locator_train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("--out", type=Path, default=Path("runs/locator"))
    p.add_argument("--n-train", type=int, default=12000)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--minutes", type=float, default=None, help="stop after the epoch that passes this budget")
    p.add_argument("--scenes", type=Path, nargs="+", default=None, help="training scene files (from `scenes`)")
    p.add_argument("--init", type=Path, default=None, help="start from this model's weights (.keras; any input size)")
    p.add_argument("--height", type=int, default=None, help="model input height (default 128; a new run only)")
    p.add_argument("--width", type=int, default=None, help="model input width (default 160; a new run only)")
    p = sub.add_parser("scenes", help="render a training scene set to an .npz file")
    p.add_argument("output", type=Path)
    p.add_argument("-n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-size", action="store_true", help="log-uniform number heights: more small numbers")
    p.add_argument("--height", type=int, default=None, help="model input height (default 128)")
    p.add_argument("--width", type=int, default=None, help="model input width (default 160)")
    p.add_argument("--strips", type=float, default=0.0, help="share of numbers that are real meter strips")
    p.add_argument("--empty-rate", type=float, default=None, help="share of scenes without a number (default 0.1)")
    p.add_argument("--plain-rate", type=float, default=0.0,
                   help="share of the scenes without a number that are a flat colour or a smooth ramp")
    p.add_argument("--cluttered", type=float, default=0.0,
                   help="share of scenes with many other numbers (instrument clusters, meter faces, date stamps)")
    p = sub.add_parser("export")
    p.add_argument("run", type=Path)
    p.add_argument("-o", "--output", type=Path, default=Path("models/locator.tflite"))
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--margin", type=float, default=0.1)
    p.add_argument("--no-refine", action="store_true", help="one pass only (no second look around the box)")
    p.add_argument("--metrics", type=Path, default=None, help="an eval report (JSON) to record in the manifest")
    p = sub.add_parser("views", help="choose the crop views that vote, on the validation split")
    p.add_argument("--locator", type=Path, default=Path("models/locator.tflite"))
    p.add_argument("--model", type=Path, default=None, help="recognizer (default: the bundled one)")
    p.add_argument("-n", type=int, default=600)
    p.add_argument("--max-views", type=int, default=3)
    p.add_argument("--strips", type=float, default=0.0, help="share of real meter strips among the numbers")
    p.add_argument("--write", action="store_true", help="record the chosen views in the locator's manifest")
    for name in ("eval", "sheet"):
        p = sub.add_parser(name)
        p.add_argument("--locator", type=Path, default=Path("models/locator.tflite"))
        p.add_argument("--model", type=Path, default=None, help="recognizer (default: the bundled one)")
        p.add_argument("--split", default="test", choices=["val", "test"])
        p.add_argument("-n", type=int, default=300 if name == "eval" else 36)
        p.add_argument("-o", "--output", type=Path, required=name == "sheet")
        p.add_argument("--strips", type=float, default=0.0, help="share of real meter strips among the numbers")
        p.add_argument("--cluttered", type=float, default=0.0, help="share of cluttered scenes (trainer.cluttered)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "train":
        train(args.out, args.n_train, args.epochs, args.batch, args.lr, width_mult=args.width_mult,
              minutes=args.minutes, scene_files=args.scenes, init=args.init, height=args.height, width=args.width)
        return 0
    if args.command == "scenes":
        from trainer.locator_model import INPUT_HEIGHT, INPUT_WIDTH

        images, _ = make_scene_set("train", args.n, args.seed, args.height or INPUT_HEIGHT, args.width or INPUT_WIDTH,
                                   ZOOM_RATE, args.output,
                                   log_size=args.log_size, strips=args.strips, empty_rate=args.empty_rate,
                                   plain_rate=args.plain_rate, cluttered=args.cluttered)
        print(f"wrote {args.output} ({len(images)} scenes)")
        return 0
    if args.command == "export":
        metrics = json.loads(args.metrics.read_text()) if args.metrics else None
        fields = export(args.run, args.output, args.threshold, args.margin, not args.no_refine, metrics=metrics)
        print(f"wrote {args.output} ({fields['size_bytes']} bytes, {fields['macs']} MACs)")
        return 0
    from device.bundled import default_model
    from device.locate import Locator
    from device.recognize import Recognizer

    recognizer = Recognizer(args.model or default_model())
    locator = Locator(args.locator)
    if args.command == "views":  # finds boxes only; the candidate views are read, not the manifest's
        report = choose_views(locator, recognizer, held_out_scenes("val", args.n, VAL_SEED, args.strips), args.max_views)
        print(json.dumps(report, indent=2))
        if args.write:
            record_in_manifest(args.locator, "crops", report["crops"])
        return 0
    scenes = held_out_scenes(args.split, args.n, TEST_SEED if args.split == "test" else VAL_SEED, args.strips,
                             args.cluttered)
    if args.command == "sheet":
        print(contact_sheet(locator, recognizer, scenes, args.output))
        return 0
    report = measure(args.locator, scenes, recognizer)
    report["tight_crops"] = tight_crops(locator, recognizer, args.n)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
