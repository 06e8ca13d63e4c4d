"""Fine-tuning a shipped int8 locator: its float weights are recovered (``trainer.locator.from_int8``).

A tiny locator is trained for a short epoch on real rendered scenes and exported with the shipped
conversion; the weights recovered from the int8 file must give the int8 model's maps, keep that in
training mode (the BatchNorms start at the data's statistics), and start a fine-tuning run.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from device.locate import Locator  # noqa: E402
from trainer.locator.examples import ZOOM_RATE, make_scene_set  # noqa: E402
from trainer.locator.export import export  # noqa: E402
from trainer.locator.from_int8 import RecoveryError, recover_locator  # noqa: E402
from trainer.locator.train import train  # noqa: E402


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A tiny trained locator exported to int8, and the scenes it was trained on."""
    tmp = tmp_path_factory.mktemp("shipped")
    train(tmp / "run", n_train=64, epochs=2, batch=16, width_mult=0.25, height=64, width=80)
    out = tmp / "locator.tflite"
    export(tmp / "run", out, threshold=0.4, margin=0.1, version="test", calibration=32)
    images, _ = make_scene_set("train", 48, 7, 64, 80, ZOOM_RATE)
    return out, images


def test_recovered_weights_give_the_int8_maps(shipped):
    path, images = shipped
    model = recover_locator(path, images[:32])
    locator = Locator(path)
    heat_err, box_err, box_scale = [], [], []
    for x in images[32:]:
        want = locator._run(x[None, ..., None])
        got = model(x[None, ..., None].astype(np.float32), training=False)
        heat_err.append(np.abs(np.asarray(got["heatmap"]) - want["heatmap"]).mean())
        box_err.append(np.abs(np.asarray(got["box"]) - want["box"]).mean())
        box_scale.append(np.abs(want["box"]).mean())
    assert np.mean(heat_err) < 0.02
    assert np.mean(box_err) < 0.1 * np.mean(box_scale) + 0.02
    batch = images[32:48, ..., None].astype(np.float32)
    drift = np.abs(np.asarray(model(batch, training=True)["heatmap"]) - np.asarray(model(batch, training=False)["heatmap"]))
    assert drift.mean() < 0.05  # batch statistics start where the moving ones are


def test_fine_tuning_runs_start_from_the_int8_file_and_keep_its_width(shipped, tmp_path):
    path, _ = shipped
    model = train(tmp_path / "tuned", n_train=32, epochs=1, batch=16, height=64, width=80, init=path, lr=1e-4)
    assert model.get_layer("s4_conv").filters == 8  # the shipped width, not the default
    assert (tmp_path / "tuned" / "last.keras").is_file()
    again = train(tmp_path / "again", n_train=16, epochs=1, batch=16, height=64, width=80, init=tmp_path / "tuned" / "last.keras")
    assert again.get_layer("s4_conv").filters == 8  # a .keras start keeps its width too
    with pytest.raises(ValueError, match=r"takes \(64, 80\) inputs"):
        train(tmp_path / "wrong", n_train=16, epochs=1, batch=16, height=96, width=128, init=path)


def test_a_file_that_is_not_a_locator_is_refused(tmp_path):
    from device.bundled import default_model
    from device.recognize import Recognizer

    spec = Recognizer(default_model()).spec
    with pytest.raises(RecoveryError, match="not a digitcam locator"):  # inputs of its size: the size check passes
        recover_locator(default_model(), np.zeros((2, spec.height, spec.width), np.uint8))
