"""Locator training: targets that the device's decoder inverts, zoom windows, and the real export path.

The export test trains a tiny locator for one short epoch on a few real scenes, exports it with the
shared int8 conversion and loads it in the device's ``Locator``: the whole trainer -> device path.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from device.heatmap import decode_heatmap  # noqa: E402
from device.locate import Locator  # noqa: E402
from trainer.locator.examples import scene_example, zoom_window  # noqa: E402
from trainer.locator.export import export  # noqa: E402
from trainer.locator.model import build_locator, grid_shape  # noqa: E402
from trainer.locator.targets import encode_targets  # noqa: E402
from trainer.locator.train import train  # noqa: E402


@pytest.mark.parametrize(
    "corners",
    [(10.3, 20.7, 90.2, 41.9), (0.0, 0.0, 160.0, 128.0), (50.0, 60.0, 53.0, 62.5), (120.5, 99.0, 159.0, 127.0)],
)
def test_targets_decode_back_to_the_box(corners):
    heat, box = encode_targets(np.asarray([corners], np.float32), 32, 40)
    heat, box = heat.numpy()[0, ..., 0], box.numpy()[0]
    assert heat.sum() >= 1 and set(np.unique(heat)) <= {0.0, 1.0}
    assert (box[..., 4] == heat).all()
    decoded, _ = decode_heatmap(heat, box[..., :4], threshold=0.5)
    x0, y0, x1, y1 = corners
    if x1 - x0 > 4 and y1 - y0 > 4:  # thinner than a cell, the one centre cell may lie outside the box
        assert decoded == pytest.approx(corners, abs=1e-3)
    else:
        assert decoded[0] <= x1 and decoded[2] >= x0 and decoded[1] <= y1 and decoded[3] >= y0


def test_a_scene_without_a_number_has_no_hot_cell():
    heat, box = encode_targets(np.full((1, 4), np.nan, np.float32), 32, 40)
    assert float(np.max(heat)) == 0.0 and float(np.max(box)) == 0.0


def test_zoom_windows_hold_the_number_and_stay_in_the_frame():
    rng = np.random.default_rng(3)
    for _ in range(300):
        bw, bh = int(rng.integers(10, 600)), int(rng.integers(8, 200))
        box = (int(rng.integers(0, 640 - bw)), int(rng.integers(0, 480 - bh)), bw, bh)
        x, y, w, h = zoom_window((480, 640), box, rng)
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480
        assert x <= box[0] + 1 and y <= box[1] + 1 and x + w >= box[0] + bw - 1 and y + h >= box[1] + bh - 1


def test_scene_example_maps_the_box_into_the_input():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[200:260, 100:300] = 255
    small, corners = scene_example(frame, (100, 200, 200, 60), None, 128, 160)
    assert corners == pytest.approx((25, 54, 75, 69))
    assert small[55:68, 26:74].min() == 255 and small[70:].max() < 255


def test_log_size_scenes_hold_more_small_numbers():
    """Training scenes drawn with ``log_size`` have ~3x the small numbers (the locator's weak spot)."""
    import itertools

    from trainer.sources import iter_scenes

    def small_share(**options):
        boxes = [box for _, _, box in itertools.islice(iter_scenes("train", 4, size=(120, 160), **options), 150)]
        heights = np.asarray([box[3] for box in boxes if box is not None]) / 120
        return float(np.mean(heights < 0.08))

    uniform, log_size = small_share(), small_share(log_size=True)
    assert log_size > 2 * uniform and log_size > 0.2


def test_plain_negatives_are_flat_or_smooth_ramps_without_a_number():
    """``plain_rate`` empties: one colour or a linear ramp (the frames an early 256x192 locator fired on)."""
    import itertools

    from trainer.scenes import plain_background
    from trainer.sources import iter_scenes

    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:48, 0:64]
    design = np.stack([np.ones(xs.size), xs.ravel(), ys.ravel()], axis=1)
    kinds = set()
    for _ in range(20):
        frame = plain_background(rng, 48, 64)
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        for channel in range(3):
            plane = frame[:, :, channel].astype(float).ravel()
            fit, *_ = np.linalg.lstsq(design, plane, rcond=None)
            assert np.abs(plane - design @ fit).max() < 3.0  # a plane up to rounding and clipping: no marks
        kinds.add("flat" if np.ptp(frame.reshape(-1, 3), axis=0).max() == 0 else "ramp")
    assert kinds == {"flat", "ramp"}
    scenes = list(itertools.islice(iter_scenes("train", 5, size=(60, 80), empty_rate=1.0, plain_rate=1.0), 10))
    assert all(label == "" and box is None for _, label, box in scenes)


def test_held_out_scenes_draw_held_out_font_families(monkeypatch):
    """The val/test scenes render their numbers in the font families that training never sees."""
    import trainer.scenes
    from trainer.render import Renderer

    splits = []

    class Spy(Renderer):
        def __init__(self, *args, split="train", **kwargs):
            splits.append(split)
            super().__init__(*args, split=split, **kwargs)

    monkeypatch.setattr(trainer.scenes, "Renderer", Spy)
    from trainer.sources import iter_scenes

    for split in ("train", "val", "test"):
        next(iter_scenes(split, 0, size=(60, 80)))
    assert splits == ["train", "val", "test"]


def test_model_has_named_outputs_on_the_stride_4_grid():
    model = build_locator(96, 128, width_mult=0.25)
    assert set(model.output) == {"heatmap", "box"}
    assert tuple(model.output["heatmap"].shape[1:]) == (*grid_shape(96, 128), 1)
    assert tuple(model.output["box"].shape[1:]) == (*grid_shape(96, 128), 4)
    with pytest.raises(ValueError, match="multiples of 16"):
        build_locator(100, 128)


def test_trained_locator_exports_to_int8_and_runs_on_the_device(tmp_path):
    run = tmp_path / "run"
    train(run, n_train=32, epochs=1, batch=16, width_mult=0.25, height=64, width=80)
    assert (run / "last.keras").is_file() and (run / "log.csv").is_file()
    out = tmp_path / "locator.tflite"
    fields = export(run, out, threshold=0.4, margin=0.1, version="test", calibration=16)
    assert fields["input"]["height"] == 64 and fields["size_bytes"] == out.stat().st_size
    locator = Locator(out)
    assert (locator.height, locator.width, locator.threshold, locator.margin) == (64, 80, 0.4, 0.1)
    heat, ltrb, fit = locator.maps(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    assert heat.shape == (16, 20) and ltrb.shape == (16, 20, 4)
    assert 0.0 <= heat.min() <= heat.max() <= 1.0 and ltrb.min() >= 0.0
