"""``digitcam locator train``: train (or resume) a locator on rendered scenes, checkpointing every epoch."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from trainer.locator.examples import ZOOM_RATE, load_scene_files, make_scene_set
from trainer.locator.targets import box_loss, heat_loss, training_dataset
from trainer.runs import read_state, write_state

log = logging.getLogger(__name__)


def train(out: Path, n_train: int = 12000, epochs: int = 12, batch: int = 32, lr: float = 3e-3, seed: int = 0,
          width_mult: float = 1.0, height: int | None = None, width: int | None = None, cache: Path | None = None,
          minutes: float | None = None, scene_files: list[Path] | None = None, init: Path | None = None):
    """Train (or resume) a locator in ``out``: ``last.keras`` every epoch, ``state.json``, ``log.csv``.

    ``scene_files`` (from ``scenes``) replace the default training set; ``init`` starts a new run from
    another run's weights (fine-tuning on more or different scenes): a ``.keras`` run, or a shipped int8
    ``.tflite`` locator whose weights ``trainer.locator.from_int8`` recovers.
    """
    import keras

    from trainer.locator.model import INPUT_HEIGHT, INPUT_WIDTH, build_locator, grid_shape, width_mult_of

    out.mkdir(parents=True, exist_ok=True)
    state = read_state(out)
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
        if init is not None and Path(init).suffix == ".tflite":  # a shipped int8 locator: recover its float weights
            from trainer.locator.from_int8 import recover_locator

            model = recover_locator(Path(init), images[: min(len(images), 512)])
            log.info("starting from the int8 weights of %s (recovered to float)", init)
        else:
            source = keras.models.load_model(init, compile=False) if init is not None else None
            # a start's own width, whatever --width-mult says: its weights must fit
            model = build_locator(height, width, width_mult if source is None else width_mult_of(source))
            if source is not None:
                model.set_weights(source.get_weights())
                log.info("starting from the weights of %s", init)
        width_mult = width_mult_of(model)
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
            write_state(out, state)
            if minutes is not None and time.monotonic() - started > minutes * 60:
                log.info("time budget of %.0f min spent", minutes)
                self.model.stop_training = True

    ds = training_dataset(images, corners, rows, cols, batch, seed + state["epoch"])
    model.fit(ds, epochs=epochs, initial_epoch=state["epoch"], verbose=2,
              callbacks=[Checkpoint(), keras.callbacks.CSVLogger(str(out / "log.csv"), append=True)])
    return model
