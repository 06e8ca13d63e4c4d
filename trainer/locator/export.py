"""``digitcam locator export``: a run's ``last.keras`` -> full-int8 locator + manifest (``trainer.export``'s
conversion), after re-estimating the BatchNorm statistics on the run's own training scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.heatmap import BOX_UNIT, STRIDE
from device.locate import LOCATOR_KIND, LOCATOR_PREPROCESS
from trainer.locator.examples import ZOOM_RATE, load_scene_files, make_scene_set
from trainer.locator.targets import training_dataset
from trainer.runs import read_state

CALIBRATION = 256


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

    from trainer.locator.model import grid_shape

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
    from trainer.export import convert_int8, dated, sized

    model = keras.models.load_model(run / "last.keras", compile=False)
    height, width = int(model.input.shape[1]), int(model.input.shape[2])
    state = read_state(run)
    recalibrate_batchnorm(model, training_scenes(run, state, height, width))
    calib, _ = make_scene_set("train", calibration, 4242, height, width, ZOOM_RATE)
    # A camera's frames reach 0 and 255 (shadows, highlights); one ramp makes sure the calibration does
    # too, so the uint8 input keeps scale 1 / zero point 0 and camera bytes go in unchanged.
    ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    convert_int8(model, np.concatenate([ramp[None], calib])[..., None], output)
    fields = {
        "name": "locator", "kind": LOCATOR_KIND,
        **dated(version),
        "architecture": model.name,
        "input": {"height": height, "width": width, "channels": 1, "dtype": "uint8", "preprocess": LOCATOR_PREPROCESS},
        "outputs": {"heatmap": "number probability per cell", "box": f"l,t,r,b edge distances / {BOX_UNIT} px"},
        "stride": STRIDE, "threshold": threshold, "margin": margin, "refine": refine,
        **sized(model, output),
        "training": {k: state.get(k) for k in ("epoch", "n_train", "batch", "lr", "restarts", "seconds", "cpu_seconds",
                                               "loss", "init", "scene_files")},
        "metrics": metrics or {},
    }
    write_manifest(output, fields)
    return fields
