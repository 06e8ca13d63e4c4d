"""What ``digitcam adapt`` trains on and starts from (``trainer.adapt`` decides what comes of it).

The collected crops a daemon stored (``device/cropstore.py``), oldest first, of which the latest share
is held out; the base model's Keras weights checked against its manifest; the fine-tuning config built
from the base's own training mix; the batches, half collected crops and half that mix; and the images
the int8 export calibrates on.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from device.errors import DigitcamError

log = logging.getLogger(__name__)

MIN_CROPS = 20  # labelled crops needed at all
MIN_HELD_OUT = 5
OWN_SHARE = 0.5  # of each batch
BATCH = 32
LEARNING_RATE = 2e-4
STEPS_PER_EPOCH = 25  # the schedule's unit: the cosine decay of trainer.train.learning_rate per 25 steps


class AdaptError(DigitcamError):
    """Crops or a base model that cannot be adapted; the message says which and why."""


def collected(crops_dir: Path, height: int = 32, width: int = 128):
    """The labelled crops under ``crops_dir``, oldest first (a person's label is the one in the name), as the
    base model's ``height`` x ``width`` input. Crops stored for a model of another input size but the same
    aspect (a store collected under 32x128, adapted at 40x160) are resized; others are skipped."""
    import cv2

    from device.crop_files import CropError, read_crop, scan

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
        if image.shape[1] * height != image.shape[0] * width:
            log.warning("skipped %s: %dx%d, not the shape of the model's %dx%d input", c.path, image.shape[1],
                        image.shape[0], width, height)
            continue
        if image.shape != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        images.append(image[..., None])
        labels.append(c.label)
        kept.append(c)
    return kept, np.array(images, np.uint8).reshape(-1, height, width, 1), labels


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


def mixed_dataset(config, images: np.ndarray, labels: list[str], seed: int):
    """Batches half from the base's training stream (``trainer.train_data.training_dataset``), half own crops,
    both augmented alike."""
    import tensorflow as tf

    from device.contract import encode_ctc
    from trainer.train_data import head_targets, make_augmenter, training_dataset

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


def default_steps(n_train: int) -> int:
    """Enough passes over this meter's crops to learn them, bounded so it stays minutes on 2 cores."""
    return int(min(600, max(150, 4 * n_train // int(BATCH * OWN_SHARE))))


def calibration_images(config, own: np.ndarray, seed: int) -> np.ndarray:
    """Int8 ranges from both what the model will see on this meter and the base's training mix."""
    from trainer.train_data import training_dataset

    own_n, mix_n = 128, 384  # mostly the mix, as the base was calibrated: the validation sets come from it
    mix = next(iter(training_dataset(dataclasses.replace(
        config, schedule=dataclasses.replace(config.schedule, batch_size=mix_n),
        augment=dataclasses.replace(config.augment, invert=0.0, shift=0, noise=0.0)), seed + 1)))[0]
    mix = np.clip(np.asarray(mix), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    picks = own[rng.choice(len(own), size=min(own_n, len(own)), replace=False)]
    both = np.concatenate([picks, mix])
    return both[rng.permutation(len(both))]
