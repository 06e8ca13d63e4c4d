"""What ``model.fit`` trains on: the endless stream of augmented batches and each head's targets.

Kept apart from the loop (``trainer/train.py``) because ``digitcam adapt`` mixes the same stream with a
meter's own crops. The stream comes from the pre-rendered shard cache (``trainer/shards.py``) when the
config names one, else from the sources rendering on the fly (``trainer/pipeline.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf

from device.contract import BLANK, MAX_DIGITS
from device.errors import ConfigError
from trainer.train_config import TrainConfig

log = logging.getLogger(__name__)


def head_targets(labels: tf.Tensor, architecture: str) -> dict:
    """Labels ``[B, 8]`` padded with -1 -> the training targets of one head, keyed by output name."""
    labels = tf.cast(labels, tf.int32)
    if architecture == "ctc":
        return {"ctc": labels}
    present = labels >= 0
    return {
        "length": tf.reduce_sum(tf.cast(present, tf.int32), axis=1),
        "digits": tf.where(present, labels, tf.fill(tf.shape(labels), BLANK)),
    }


def make_augmenter(config: TrainConfig):
    """Batch-level augmentation on the fly, on top of the sources' own camera effects."""
    aug = config.augment
    shift = None
    if aug.shift > 0:
        shift = keras.layers.RandomTranslation(
            aug.shift / config.model.height, aug.shift / config.model.input_width, fill_mode="nearest",
            seed=config.seed,
        )

    def augment(images):
        x = tf.cast(images, tf.float32)
        batch = tf.shape(x)[0]
        if aug.invert > 0:
            flip = tf.random.uniform([batch, 1, 1, 1]) < aug.invert
            x = tf.where(flip, 255.0 - x, x)
        if shift is not None:
            x = shift(x, training=True)
        if aug.noise > 0:
            x = x + tf.random.normal(tf.shape(x), stddev=aug.noise)
        return tf.clip_by_value(x, 0.0, 255.0)

    return augment


def cached_dataset(config: TrainConfig, seed: int) -> tf.data.Dataset:
    """Batches drawn from the pre-rendered shard cache, which picks up fresh shards every epoch."""
    from trainer.shards import ShardReader

    reader = ShardReader(Path(config.data.cache), seed)
    steps = config.schedule.steps_per_epoch

    def generate():
        step = 0
        while True:
            if step and step % steps == 0:
                reader.refresh()
            step += 1
            yield reader.batch(config.schedule.batch_size)

    signature = (
        tf.TensorSpec((None, config.spec.height, config.spec.width, 1), tf.uint8),
        tf.TensorSpec((None, MAX_DIGITS), tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(4)


def fill_cache(config: TrainConfig, epoch: int) -> None:
    """Render the cache up to ``cache_samples`` plus ``cache_refresh`` fresh shards per epoch so far."""
    from trainer.shards import SHARD_SIZE, render_shards

    if not config.data.cache:
        return
    samples = config.data.cache_samples + epoch * config.data.cache_refresh * SHARD_SIZE
    try:
        render_shards(Path(config.data.cache), dict(config.data.mix), dict(config.data.options), config.seed,
                      config.spec, max(samples, 1), workers=config.data.cache_workers, progress=log.info)
    except ValueError as exc:
        raise ConfigError(f"data.cache: {exc}") from None


def training_dataset(config: TrainConfig, seed: int) -> tf.data.Dataset:
    """The endless stream of (augmented float images, head targets) for ``model.fit``."""
    from trainer.pipeline import make_dataset

    try:
        if config.data.cache:
            ds = cached_dataset(config, seed)
        else:
            ds = make_dataset(dict(config.data.mix), "train", seed, config.schedule.batch_size, config.spec,
                              options=dict(config.data.options))
    except ValueError as exc:
        raise ConfigError(f"data: {exc}") from None
    augment = make_augmenter(config)
    arch = config.model.architecture
    return ds.map(lambda x, y: (augment(x), head_targets(y, arch)), num_parallel_calls=tf.data.AUTOTUNE)
