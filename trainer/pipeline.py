"""The tf.data input pipeline: sources mixed by weight, every crop prepared by the device's ``prepare_crop``.

Each source is a Python generator (``trainer.sources.iter_samples``) wrapped with ``from_generator``;
one pure per-sample function turns (crop, label) into (model input, CTC-style target) and
``sample_from_datasets`` mixes the sources with the training config's weights, then batch and prefetch.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from device.contract import MAX_DIGITS, InputSpec, encode_ctc, prepare_crop
from trainer.sources import SOURCES, iter_samples

log = logging.getLogger(__name__)


def encode_sample(image: np.ndarray, label: str, spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """(raw crop, label) -> (uint8 [H, W, 1] model input, int32 [MAX_DIGITS] digits padded with -1)."""
    return prepare_crop(image, spec), encode_ctc(label)


def _source_dataset(name: str, split: str, seed: int, spec: InputSpec, options: dict) -> tf.data.Dataset:
    def generate():
        for image, label in iter_samples(name, split, seed, **options):
            yield encode_sample(image, label, spec)

    signature = (
        tf.TensorSpec((spec.height, spec.width, spec.channels), tf.uint8),
        tf.TensorSpec((MAX_DIGITS,), tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def make_dataset(
    mix: dict[str, float],
    split: str,
    seed: int,
    batch_size: int,
    spec: InputSpec = InputSpec(),
    options: dict[str, dict] | None = None,
) -> tf.data.Dataset:
    """Batches of ``(images uint8 [B, H, W, 1], labels int32 [B, 8] padded with -1)`` mixed by weight.

    ``mix`` maps source names to relative weights (zero weights are dropped); ``options`` maps a source
    name to its keyword options, e.g. ``{"rendered": {"difficulty": "easy"}, "svhn": {"svhn_dir": ...}}``.
    Finite sources end the mixed stream when they run out; training sources are endless.
    """
    options = options or {}
    unknown = sorted(set(mix) - set(SOURCES)) + sorted(set(options) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown data source(s) {', '.join(unknown)}: want some of {', '.join(SOURCES)}")
    mix = {name: float(w) for name, w in mix.items() if float(w) > 0}
    if not mix:
        raise ValueError("the data mix has no source with a positive weight")
    names = sorted(mix)
    datasets = [_source_dataset(n, split, seed, spec, options.get(n, {})) for n in names]
    if len(datasets) == 1:
        mixed = datasets[0]
    else:
        weights = np.array([mix[n] for n in names]) / sum(mix.values())
        mixed = tf.data.Dataset.sample_from_datasets(
            datasets, weights=weights.tolist(), seed=seed, stop_on_empty_dataset=True
        )
    return mixed.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)
