"""``digitcam train CONFIG``: train a recognizer for hours on a CPU, unattended, and survive interruption.

A run lives in one directory (``runs/<config name>`` by default): ``config.json`` (the config it was
started or last resumed with), ``last.keras`` (model + optimizer, written every epoch), ``best.keras``
(best validation score so far), ``state.json`` (epoch, best score, epochs without improvement),
``log.csv`` and ``tb/`` (TensorBoard). Starting the same command again resumes from ``last.keras``;
``--fresh`` starts over. Validation is sequence accuracy on each configured source's ``val`` split,
decoded by the device's own decoder, and early stopping watches their weighted mean.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from device.contract import BLANK
from device.errors import ConfigError
from trainer.runs import read_state, write_state
from trainer.train_data import fill_cache, training_dataset
from trainer.train_config import VAL_SEED, TrainConfig, config_from_dict, load_config

log = logging.getLogger(__name__)

@keras.saving.register_keras_serializable(package="digitcam")
def ctc_loss(y_true, y_pred):
    """CTC loss of per-column softmaxes ``[B, T, 11]`` against digits ``[B, 8]`` padded with -1."""
    labels = tf.cast(y_true, tf.int32)
    label_length = tf.reduce_sum(tf.cast(labels >= 0, tf.int32), axis=1)
    steps = tf.shape(y_pred)[1]
    logit_length = tf.fill([tf.shape(y_pred)[0]], steps)
    log_probs = tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0))
    loss = tf.nn.ctc_loss(
        labels=tf.maximum(labels, 0),
        logits=log_probs,
        label_length=label_length,
        logit_length=logit_length,
        logits_time_major=False,
        blank_index=BLANK,
    )
    return loss


def validation_sets(config: TrainConfig) -> dict[str, tuple[np.ndarray, list[str]]]:
    """name -> (prepared images, labels) of each validation source, the same for every run."""
    from trainer.sources import fixed_set

    sets = {}
    for name in config.data.val_sets:
        options = dict(config.data.options.get(name, {}))
        images, labels = fixed_set(name, "val", config.data.val_size, VAL_SEED, config.spec, **options)
        if not labels:
            raise ConfigError(f"data.val_sets: source {name!r} has no validation samples")
        sets[name] = (images, labels)
        log.info("validation set %s: %d samples", name, len(labels))
    return sets


def learning_rate(epoch: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_fraction`` at the last epoch."""
    s = config.schedule
    if epoch < s.warmup_epochs:
        return s.learning_rate * (epoch + 1) / (s.warmup_epochs + 1)
    span = max(1, s.epochs - s.warmup_epochs)
    progress = min(1.0, (epoch - s.warmup_epochs) / span)
    return s.learning_rate * (s.min_lr_fraction + (1 - s.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def warm_start(model: keras.Model, source: Path) -> None:
    """Start from a trained model's weights (a longer schedule without re-learning what it knows)."""
    if not source.is_file():
        raise ConfigError(f"model.init: no model at {source}")
    weights = keras.models.load_model(source, compile=False).get_weights()
    if [w.shape for w in weights] != [w.shape for w in model.get_weights()]:
        raise ConfigError(f"model.init: {source} has other layers than model.architecture/width build")
    model.set_weights(weights)
    log.info("weights from %s", source)


def compile_model(model: keras.Model, config: TrainConfig) -> keras.Model:
    if config.model.architecture == "ctc":
        loss = {"ctc": ctc_loss}
    else:
        loss = {"length": "sparse_categorical_crossentropy", "digits": "sparse_categorical_crossentropy"}
    optimizer = keras.optimizers.AdamW(learning_rate=config.schedule.learning_rate,
                                       weight_decay=config.schedule.weight_decay, clipnorm=5.0)
    model.compile(optimizer=optimizer, loss=loss)
    return model


@dataclass
class Run:
    """A training run directory and what export and evaluation need from it."""

    path: Path
    config: TrainConfig

    @property
    def state(self) -> dict:
        return read_state(self.path)

    def best_model(self) -> keras.Model:
        best = self.path / "best.keras"
        if not best.is_file():
            raise ConfigError(f"run {self.path} has no best.keras yet: train at least one epoch")
        return keras.models.load_model(best, compile=False)

    def validation_sets(self):
        return validation_sets(self.config)

    def calibration_images(self, n: int, seed: int) -> np.ndarray:
        """Training-split crops from the run's own mix: what the int8 ranges must cover."""
        from trainer.pipeline import make_dataset

        ds = make_dataset(dict(self.config.data.mix), "train", seed, n, self.config.spec,
                          options=dict(self.config.data.options))
        images, _ = next(iter(ds))
        return images.numpy()

    def summary(self) -> dict:
        """The training data summary recorded in the manifest."""
        s = self.state
        return {
            "mix": dict(self.config.data.mix),
            "options": dict(self.config.data.options),
            "val_sets": list(self.config.data.val_sets),
            "epochs": s.get("epoch", 0),
            "samples_seen": s.get("samples_seen", 0),
            "best_epoch": s.get("best_epoch"),
            "best_score": s.get("best_score"),
            "augment": dict(vars(self.config.augment)),
            "seed": self.config.seed,
        }


def load_run(path: Path) -> Run:
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"{path} is not a training run directory (no config.json)")
    return Run(Path(path), config_from_dict(json.loads(config_file.read_text())))


class ValidateAndCheckpoint(keras.callbacks.Callback):
    """Each epoch: validate on the real sets, add the numbers to the logs, checkpoint, stop early or on time."""

    def __init__(self, run: Run, val_sets: dict, state: dict):
        super().__init__()
        self.run, self.val_sets, self.state = run, val_sets, state
        self.started = time.monotonic()
        self.epoch_started = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        if epoch and self.run.config.data.cache_refresh:
            fill_cache(self.run.config, epoch)  # fresh shards; the reader picks them up this epoch
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        from trainer.metrics import float_readings, sequence_accuracy

        logs = logs if logs is not None else {}
        config = self.run.config
        seconds = time.monotonic() - self.epoch_started
        logs["images_per_s"] = config.schedule.steps_per_epoch * config.schedule.batch_size / max(seconds, 1e-6)
        score, total_weight = 0.0, 0.0
        for name, (images, labels) in self.val_sets.items():
            acc = sequence_accuracy(float_readings(self.model, images), labels)
            logs[f"val_{name}"] = acc
            weight = float(config.data.val_weights.get(name, 1.0))
            score, total_weight = score + weight * acc, total_weight + weight
        score /= max(total_weight, 1e-9)
        logs["val_score"] = score
        st = self.state
        st["epoch"] = epoch + 1
        st["samples_seen"] = st.get("samples_seen", 0) + config.schedule.steps_per_epoch * config.schedule.batch_size
        self.model.save(self.run.path / "last.keras")
        if score > st.get("best_score", -1.0):
            st.update(best_score=score, best_epoch=epoch + 1, stale=0)
            self.model.save(self.run.path / "best.keras")
        else:
            st["stale"] = st.get("stale", 0) + 1
        write_state(self.run.path, st, indent=1)
        vals = "  ".join(f"{n} {logs[f'val_{n}']:.2f}%" for n in self.val_sets)
        print(f"epoch {epoch + 1}/{config.schedule.epochs}  loss {logs.get('loss', float('nan')):.4f}  {vals}  "
              f"score {score:.2f} (best {st['best_score']:.2f} @ {st['best_epoch']})  "
              f"{logs['images_per_s']:.0f} img/s", flush=True)
        if st["stale"] >= config.schedule.patience:
            print(f"early stop: no better validation score for {st['stale']} epochs", flush=True)
            self.model.stop_training = True
        limit = config.schedule.time_limit_minutes * 60
        if limit and time.monotonic() - self.started >= limit:
            print(f"time limit of {config.schedule.time_limit_minutes:g} min reached", flush=True)
            self.model.stop_training = True


def train(config: TrainConfig, run_dir: Path, fresh: bool = False) -> Run:
    """Train (or resume) a run; returns it when the schedule ends, stops early or hits the time limit."""
    from trainer.models import build_model, count_macs

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = Run(run_dir, config)
    state = {} if fresh else run.state
    last = run_dir / "last.keras"
    keras.utils.set_random_seed(config.seed + state.get("epoch", 0))
    if state and last.is_file():
        old = load_run(run_dir).config
        if old.model != config.model:
            raise ConfigError(f"run {run_dir} was trained with model {old.model}; use --fresh or another --out")
        model = keras.models.load_model(last, compile=True)
        log.info("resuming %s at epoch %d (best %.2f)", run_dir, state["epoch"], state.get("best_score", 0.0))
    else:
        state = {}
        for stale in ("log.csv", "best.keras", "last.keras", "state.json"):
            (run_dir / stale).unlink(missing_ok=True)
        model = build_model(config.model.architecture, config.spec, width=config.model.width,
                            dropout=config.model.dropout, stem=config.model.stem,
                            stem_channels=config.model.stem_channels)
        if config.model.init:
            warm_start(model, Path(config.model.init))
        model = compile_model(model, config)
    (run_dir / "config.json").write_text(json.dumps(config.as_dict(), indent=1))
    log.info("%s: %s, %d params, %.1f MMACs", config.name, config.model.architecture, model.count_params(),
             count_macs(model) / 1e6)
    initial_epoch = state.get("epoch", 0)
    if initial_epoch >= config.schedule.epochs:
        print(f"{run_dir}: already trained {initial_epoch} epochs; raise schedule.epochs to continue")
        return run
    val_sets = validation_sets(config)
    fill_cache(config, initial_epoch)
    callbacks = [
        ValidateAndCheckpoint(run, val_sets, state),
        keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate(epoch, config)),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tb"), write_graph=False, profile_batch=0),
    ]
    # The first callback fills the validation numbers into the logs that CSVLogger and TensorBoard write.
    model.fit(
        training_dataset(config, seed=config.seed * 1000 + initial_epoch),
        steps_per_epoch=config.schedule.steps_per_epoch,
        epochs=config.schedule.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 0,
        shuffle=False,  # the sources shuffle; the stream is endless
    )
    return run


def main(args) -> int:
    config = load_config(args.config)
    run_dir = args.out or Path("runs") / config.name
    run = train(config, run_dir, fresh=args.fresh)
    st = run.state
    print(f"{run_dir}: {st.get('epoch', 0)} epochs, best score {st.get('best_score', float('nan')):.2f} "
          f"at epoch {st.get('best_epoch')}; export with: digitcam export {run_dir} -o model.tflite")
    return 0
