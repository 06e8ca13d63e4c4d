"""``digitcam adapt --crops DIR [--model M] -o OUT.tflite``: fine-tune the recognizer on one meter's own crops.

The crops are those a daemon collected with ``collect = true`` (``device/cropstore.py``): the model's own
uint8 input crops labelled by the values the meter logic accepted, or by a person. The base model's
Keras weights (``M`` with ``.keras``, or ``--weights``) are trained on for a few hundred steps, each
batch half collected crops and half the base's own training mix (from its manifest; a shard cache with
``--cache``), so the model learns this meter without forgetting the others. The latest ``--holdout``
share of the crops, by time, is never trained on: before / after accuracy there says whether it helped.

Batch normalisation stays frozen: batches half of one meter would move the statistics every other meter
relies on. The result goes through ``trainer.export.export_model`` (full int8, parity checked, calibrated;
up to three calibration draws, since parity moves by a few tenths with the draw) and its
manifest records the base model, the crops used and both accuracies. It is refused (``AdaptRefused``,
exit 2, files removed) when it reads the held-out crops worse than the base, or any of the base's
validation sets more than ``MAX_VAL_LOSS`` points worse.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from device.errors import DigitcamError, ModelError

log = logging.getLogger(__name__)

MIN_CROPS = 20  # labelled crops needed at all
MIN_HELD_OUT = 5
MAX_VAL_LOSS = 1.0  # points of sequence accuracy the adapted model may lose on the base's validation sets
OWN_SHARE = 0.5  # of each batch
BATCH = 32
LEARNING_RATE = 2e-4
STEPS_PER_EPOCH = 25  # the schedule's unit: the cosine decay of trainer.train.learning_rate per 25 steps
HELD_OUT = "held-out crops"
ALPHAS = (1.0, 0.75, 0.5, 0.35, 0.2)  # shares of the fine-tuned weights tried, most first
EXPORT_ATTEMPTS = 5  # calibration draws tried before a parity failure stands


class AdaptError(DigitcamError):
    """Crops or a base model that cannot be adapted; the message says which and why."""


class AdaptRefused(DigitcamError):
    """The adapted model reads worse than the base; nothing was written."""


# ---- inputs ------------------------------------------------------------------------------------------


def collected(crops_dir: Path):
    """The labelled crops under ``crops_dir``, oldest first (a person's label is the one in the name)."""
    from device.cropstore import CropError, read_crop, scan

    try:
        crops = [c for c in scan(crops_dir) if c.label is not None]
    except CropError as exc:
        raise AdaptError(str(exc)) from None
    images, labels, kept = [], [], []
    for c in crops:
        try:
            image = read_crop(c)
        except CropError as exc:
            log.warning("skipped: %s", exc)
            continue
        if image.shape != (32, 128):
            log.warning("skipped %s: %dx%d, not the model's 32x128 input", c.path, image.shape[1], image.shape[0])
            continue
        images.append(image[..., None])
        labels.append(c.label)
        kept.append(c)
    return kept, np.array(images, np.uint8).reshape(-1, 32, 128, 1), labels


def split_by_time(n: int, holdout: float) -> int:
    """How many of ``n`` crops (oldest first) to train on; the rest, the latest, are held out."""
    held = max(MIN_HELD_OUT, int(round(n * holdout)))
    if n < MIN_CROPS or n - held < MIN_HELD_OUT:
        raise AdaptError(f"only {n} labelled crop(s); adapt needs at least {MIN_CROPS} (collect longer, or "
                         f"label review crops with digitcam crops label)")
    return n - held


def base_model(model: Path | None, weights: Path | None):
    """(Keras model, manifest, .tflite path) of the base; its weights must exist and match its manifest."""
    import keras

    from device.bundled import default_model
    from device.manifest import load_manifest

    tflite = Path(model) if model else Path(default_model())
    keras_path = Path(weights) if weights else tflite.with_suffix(".keras")
    if not keras_path.is_file():
        raise AdaptError(f"no Keras weights for {tflite}: want {keras_path} (or --weights FILE.keras)")
    try:
        manifest = load_manifest(tflite).data
    except DigitcamError as exc:
        raise AdaptError(f"base model {tflite}: {exc}") from None
    try:
        net = keras.models.load_model(keras_path, compile=False)
    except Exception as exc:  # a truncated or foreign file: say which
        raise AdaptError(f"cannot load {keras_path}: {str(exc).splitlines()[0][:200]}") from None
    if net.count_params() != manifest.get("params"):
        raise AdaptError(f"{keras_path} has {net.count_params()} parameters, {tflite} was made from "
                         f"{manifest.get('params')}: not its weights")
    return net, manifest, tflite


def train_config(manifest: dict, net, cache: Path | None, steps: int, seed: int):
    """The fine-tuning config: the base's training mix, validation sets and augmentation; a short schedule."""
    from trainer.train_config import config_from_dict

    training = manifest.get("training") or {}
    if not training.get("mix"):
        raise AdaptError("the base model's manifest records no training mix (training.mix)")
    return config_from_dict({
        "name": f"{manifest.get('name', 'digitcam')}-adapted",
        "seed": int(seed),
        "data": {"mix": dict(training["mix"]), "options": dict(training.get("options") or {}),
                 "val_sets": list(training.get("val_sets") or []), "val_size": 512,
                 "cache": str(cache) if cache else ""},
        "model": {"architecture": manifest.get("head", "ctc"), "height": int(net.input.shape[1]),
                  "input_width": int(net.input.shape[2])},
        "schedule": {"batch_size": BATCH - int(BATCH * OWN_SHARE), "steps_per_epoch": STEPS_PER_EPOCH,
                     "epochs": max(1, -(-steps // STEPS_PER_EPOCH)), "learning_rate": LEARNING_RATE,
                     "warmup_epochs": 0, "min_lr_fraction": 0.1, "patience": 10 ** 6},
        "augment": dict(training.get("augment") or {}),
    })


# ---- training ------------------------------------------------------------------------------------------


def mixed_dataset(config, images: np.ndarray, labels: list[str], seed: int):
    """Batches half from the base's training stream (``trainer.train.training_dataset``), half own crops,
    both augmented alike."""
    import tensorflow as tf

    from device.contract import encode_ctc
    from trainer.train import head_targets, make_augmenter, training_dataset

    own_n = int(BATCH * OWN_SHARE)
    targets = np.stack([encode_ctc(label) for label in labels]).astype(np.int32)
    augment = make_augmenter(config)
    arch = config.model.architecture
    own = (tf.data.Dataset.from_tensor_slices((images, targets)).repeat().shuffle(4096, seed=seed)
           .batch(own_n, drop_remainder=True)
           .map(lambda x, y: (augment(x), head_targets(y, arch)), num_parallel_calls=tf.data.AUTOTUNE))
    try:
        original = training_dataset(config, seed)
    except FileNotFoundError as exc:
        raise AdaptError(str(exc)) from None

    def join(a, b):
        return tf.concat([a[0], b[0]], 0), {k: tf.concat([a[1][k], b[1][k]], 0) for k in a[1]}

    return tf.data.Dataset.zip((original, own)).map(join).prefetch(2)


class ProgressBar:
    """A one-line progress bar on stderr (a log line every 10 % when stderr is not a terminal)."""

    def __init__(self, total: int, stream=None):
        import keras

        stream = stream or sys.stderr
        outer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.step((logs or {}).get("loss"))

        self.total, self.stream, self.done, self.started = total, stream, 0, time.monotonic()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.callback = Callback()
        self._said = -1

    def step(self, loss=None) -> None:
        if self.done == 0:
            self.started = time.monotonic()  # from the first step: graph building is not training time
        self.done += 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        filled = int(30 * self.done / self.total)
        line = (f"adapt [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} steps"
                f"{f'  loss {float(loss):.3f}' if loss is not None else ''}  {elapsed:.0f} s, ~{eta:.0f} s left")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if self.done >= self.total else ""))
            self.stream.flush()
        elif (tenth := 10 * self.done // self.total) != self._said:
            self._said = tenth
            print(line, file=self.stream, flush=True)


def default_steps(n_train: int) -> int:
    """Enough passes over this meter's crops to learn them, bounded so it stays minutes on 2 cores."""
    return int(min(600, max(150, 4 * n_train // int(BATCH * OWN_SHARE))))


# ---- measuring and the decision ------------------------------------------------------------------------


def int8_accuracy(tflite: Path, sets: dict) -> dict:
    """Sequence accuracy (%) of an int8 model through the device's Recognizer, per set."""
    from device.recognize import Recognizer
    from trainer.export import int8_readings
    from trainer.metrics import sequence_accuracy

    recognizer = Recognizer(tflite)
    return {name: round(sequence_accuracy(int8_readings(recognizer, x), y), 2) for name, (x, y) in sets.items()}


def judge(before: dict, after: dict, max_val_loss: float = MAX_VAL_LOSS) -> list[str]:
    """Why the adapted model must not be written: worse on the held-out crops, or a validation set more than
    ``max_val_loss`` points worse. Empty: it may be written."""
    problems = []
    for name, b in before.items():
        a = after[name]
        allowed = 0.0 if name == HELD_OUT else max_val_loss
        if a < b - allowed - 1e-9:
            problems.append(f"{name} {a:.2f} % < base {b:.2f} %" + (f" - {allowed:g}" if allowed else ""))
    return problems


def float_accuracy(net, sets: dict) -> dict:
    from trainer.metrics import float_readings, sequence_accuracy

    return {name: sequence_accuracy(float_readings(net, x), y) for name, (x, y) in sets.items()}


def interpolate(net, base_weights: list, base_float: dict, sets: dict, max_val_loss: float):
    """Move the fine-tuned weights back towards the base (``w = a * tuned + (1 - a) * base``, Wortsman et al.
    2022) until the float model keeps the base's validation accuracy with a margin; the largest such ``a``.

    Fine-tuning on one meter forgets a little of the others; interpolating keeps most of the gain on this
    meter and most of the base elsewhere, at no training cost. Returns (a, [(a, float accuracies)]).
    """
    tuned = [w.copy() for w in net.get_weights()]
    margin = max_val_loss / 2  # int8 adds its own few tenths
    tried = []
    for a in ALPHAS:
        net.set_weights([a * t + (1 - a) * b if t.dtype.kind == "f" else t for t, b in zip(tuned, base_weights)])
        acc = float_accuracy(net, sets)
        tried.append((a, {k: round(v, 2) for k, v in acc.items()}))
        ok = all(acc[k] >= base_float[k] - (0.0 if k == HELD_OUT else margin) for k in acc)
        log.info("interpolation %.2f: %s%s", a, tried[-1][1], " (kept)" if ok else "")
        if ok:
            return a, tried
    return ALPHAS[-1], tried  # the closest to the base; judge() decides on the int8 model


def adapt(crops_dir: Path, output: Path, model: Path | None = None, weights: Path | None = None,
          steps: int | None = None, holdout: float = 0.25, cache: Path | None = None, seed: int = 0,
          val_sets: dict | None = None, max_val_loss: float = MAX_VAL_LOSS, parity_points: float | None = None,
          progress=None) -> dict:
    """Fine-tune, export, judge; returns the written manifest. ``val_sets`` replaces the base's own
    validation sets (tests); ``AdaptRefused`` when the result is worse than the base."""
    import keras

    from device.manifest import manifest_path, write_manifest
    from trainer.train import compile_model, learning_rate, validation_sets

    if not 0.05 <= holdout <= 0.5:
        raise AdaptError(f"--holdout is a share of 0.05 to 0.5, not {holdout}")
    output = Path(output)
    if output.suffix != ".tflite":
        raise AdaptError(f"-o names the .tflite to write, not {output}")
    started = time.monotonic()
    net, manifest, base_tflite = base_model(model, weights)
    crops, images, labels = collected(crops_dir)
    n_train = split_by_time(len(labels), holdout)
    steps = int(steps) if steps else default_steps(n_train)
    if steps < 1:
        raise AdaptError(f"--steps must be >= 1, not {steps}")
    config = train_config(manifest, net, cache, steps, seed)
    held = (images[n_train:], labels[n_train:])
    log.info("%d labelled crops from %s: training on %d, holding out the latest %d", len(labels), crops_dir,
             n_train, len(labels) - n_train)
    sets = dict(val_sets) if val_sets is not None else validation_sets(config)
    sets[HELD_OUT] = held
    before = int8_accuracy(base_tflite, sets)
    log.info("base %s %s: %s", manifest.get("name"), manifest.get("version"), before)

    for layer in net.layers:  # batches half of one meter would shift the normalisation every meter relies on
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    compile_model(net, config)
    base_weights = [w.copy() for w in net.get_weights()]
    base_float = float_accuracy(net, sets)
    bar = progress or ProgressBar(config.schedule.epochs * STEPS_PER_EPOCH)
    keras.utils.set_random_seed(seed)
    net.fit(mixed_dataset(config, images[:n_train], labels[:n_train], seed),
            steps_per_epoch=STEPS_PER_EPOCH, epochs=config.schedule.epochs, verbose=0,
            callbacks=[bar.callback, keras.callbacks.LearningRateScheduler(lambda e: learning_rate(e, config))])
    alpha, tried = interpolate(net, base_weights, base_float, sets, max_val_loss)
    train_minutes = (time.monotonic() - started) / 60.0

    tuned = [w.copy() for w in net.get_weights()]
    problems: list = []
    for a in [x for x in ALPHAS if x <= alpha]:  # int8 moves a weak set by a point: step back towards the base
        if a != alpha:
            log.warning("int8 model at share %.2f reads worse than the base (%s); trying %.2f", alpha,
                        "; ".join(problems), a)
            net.set_weights([a * t + (1 - a) * b for t, b in zip(tuned, base_weights)])
            alpha = a
        fields = _export(net, output, config, images[:n_train], sets, manifest, seed, parity_points)
        after = {name: fields["metrics"][name]["int8"] for name in sets}
        problems = judge(before, after, max_val_loss)
        if not problems:
            break
        output.unlink(missing_ok=True)
        output.with_suffix(".json").unlink(missing_ok=True)
        if any(p.startswith(HELD_OUT) for p in problems):
            break  # closer to the base reads this meter no better
    if problems:
        raise AdaptRefused("adapted model not written, it reads worse than the base: " + "; ".join(problems))
    fields["adapted"] = {
        "base": {k: manifest.get(k) for k in ("name", "version", "sha256", "file")},
        "crops": {"folder": str(crops_dir), "used": n_train, "held_out": len(labels) - n_train,
                  "human": sum(c.kind == "human" for c in crops[:n_train]),
                  "sensors": sorted({c.sensor for c in crops}),
                  "from": crops[0].at, "held_out_from": crops[n_train].at, "to": crops[-1].at},
        "steps": config.schedule.epochs * STEPS_PER_EPOCH, "batch": BATCH, "own_share": OWN_SHARE,
        "learning_rate": LEARNING_RATE, "interpolation": alpha, "interpolations_tried": tried,
        "held_out": {"n": len(held[1]), "before": before[HELD_OUT], "after": after[HELD_OUT]},
        "val_sets": {name: {"before": before[name], "after": after[name]} for name in sets if name != HELD_OUT},
        "minutes": round((time.monotonic() - started) / 60.0, 2), "train_minutes": round(train_minutes, 2),
    }
    write_manifest(output, fields)
    return json.loads(manifest_path(output).read_text())  # as written, with its sha256


def _export(net, output: Path, config, own: np.ndarray, sets: dict, manifest: dict, seed: int,
            parity_points: float | None) -> dict:
    """``export_model`` with up to EXPORT_ATTEMPTS calibration draws: int8 parity moves with the draw."""
    from trainer.export import CALIBRATION_SAMPLES, export_model

    for attempt in range(EXPORT_ATTEMPTS):
        calibration = _calibration(config, own, seed + attempt)
        try:
            return export_model(net, output, calibration=calibration[:CALIBRATION_SAMPLES], val_sets=sets,
                                name=manifest.get("name", "digitcam"), training=dict(manifest.get("training") or {}),
                                **({} if parity_points is None else {"parity_points": parity_points}))
        except ModelError as exc:
            if "parity" not in str(exc) or attempt == EXPORT_ATTEMPTS - 1:
                raise
            log.warning("%s; calibrating on another draw", exc)
    raise AssertionError("unreachable")


def _calibration(config, own: np.ndarray, seed: int) -> np.ndarray:
    """Int8 ranges from both what the model will see on this meter and the base's training mix."""
    from trainer.train import training_dataset

    own_n, mix_n = 128, 384  # mostly the mix, as the base was calibrated: the validation sets come from it
    mix = next(iter(training_dataset(dataclasses.replace(
        config, schedule=dataclasses.replace(config.schedule, batch_size=mix_n),
        augment=dataclasses.replace(config.augment, invert=0.0, shift=0, noise=0.0)), seed + 1)))[0]
    mix = np.clip(np.asarray(mix), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    picks = own[rng.choice(len(own), size=min(own_n, len(own)), replace=False)]
    both = np.concatenate([picks, mix])
    return both[rng.permutation(len(both))]


def main(args) -> int:
    fields = adapt(args.crops, args.output, model=args.model, weights=args.weights, steps=args.steps,
                   holdout=args.holdout, cache=args.cache, seed=args.seed, parity_points=args.parity_points)
    a = fields["adapted"]
    print(f"held-out crops (latest {a['held_out']['n']}): base {a['held_out']['before']:.2f} % -> "
          f"adapted {a['held_out']['after']:.2f} %")
    for name, m in a["val_sets"].items():
        print(f"{name}: base {m['before']:.2f} % -> adapted {m['after']:.2f} %")
    print(f"wrote {args.output} ({a['crops']['used']} crops, {a['steps']} steps, {a['minutes']:.1f} min)")
    return 0
