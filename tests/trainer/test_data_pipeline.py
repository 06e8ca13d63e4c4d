"""fixed_set, the tf.data mix, locator scenes and the contact-sheet command."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.contract import InputSpec, prepare_crop
from tests.fixtures.data import data_for, sample_data  # noqa: F401 (fixture)
from trainer.sources import fixed_set, iter_samples, iter_scenes

ROOT = Path(__file__).resolve().parents[2]


def test_fixed_set_is_the_prepared_head_of_the_stream():
    images, labels = fixed_set("rendered", "val", 6, 3)
    assert images.shape == (6, 32, 128, 1) and images.dtype == np.uint8
    raw = list(itertools.islice(iter_samples("rendered", "val", 3), 6))
    assert labels == [lbl for _, lbl in raw]
    assert np.array_equal(images, np.stack([prepare_crop(img) for img, _ in raw]))


def test_fixed_set_follows_the_spec_and_refuses_unknown_names():
    images, _ = fixed_set("rendered", "test", 2, 0, InputSpec(height=24, width=96))
    assert images.shape == (2, 24, 96, 1)
    with pytest.raises(ValueError, match="unknown data source"):
        fixed_set("nope", "val", 2, 0)
    with pytest.raises(ValueError, match="unknown split"):
        fixed_set("rendered", "dev", 2, 0)


def test_make_dataset_mixes_by_weight_with_padded_labels(request):
    from trainer.pipeline import make_dataset

    data_for("mnist", request)  # the full MNIST where it is, else the committed sample

    ds = make_dataset({"rendered": 1.0, "mnist": 1.0, "meters": 0.0}, "train", 0, 64,
                      options={"rendered": {"difficulty": "easy", "empty_rate": 0.0}})
    images, labels = next(iter(ds))
    images, labels = images.numpy(), labels.numpy()
    assert images.shape == (64, 32, 128, 1) and images.dtype == np.uint8
    assert labels.shape == (64, 8) and labels.dtype == np.int32
    lengths = (labels >= 0).sum(axis=1)
    for row, n in zip(labels, lengths):  # digits first, then -1 padding
        assert (row[:n] >= 0).all() and (row[:n] <= 9).all() and (row[n:] == -1).all()
    # Only rendered makes 6..8 digits (~36 % of its samples): with half the batch ~11 of 64 are that long.
    assert 3 <= (lengths > 5).sum() <= 25
    again = make_dataset({"rendered": 1.0, "mnist": 1.0}, "train", 0, 64,
                         options={"rendered": {"difficulty": "easy", "empty_rate": 0.0}})
    images2, labels2 = next(iter(again))
    assert np.array_equal(images, images2.numpy()) and np.array_equal(labels, labels2.numpy())
    with pytest.raises(ValueError, match="unknown data source"):
        make_dataset({"renderd": 1.0}, "train", 0, 4)
    with pytest.raises(ValueError, match="positive weight"):
        make_dataset({"rendered": 0.0}, "train", 0, 4)


def test_scenes_hold_the_number_inside_the_frame():
    for frame, label, box in itertools.islice(iter_scenes("train", 0, size=(120, 160)), 12):
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
        if box is None:
            assert label == ""
            continue
        x, y, w, h = box
        assert 0 <= x and 0 <= y and x + w <= 160 and y + h <= 120 and w >= 4 and h >= 4
        assert 1 <= len(label) <= 8 and label.isdigit()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "device.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_data_preview_writes_a_contact_sheet(tmp_path):
    out = tmp_path / "sheet.png"
    result = run_cli("data", "preview", "--source", "rendered", "-n", "6", "-o", str(out))
    assert result.returncode == 0, result.stderr
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[0] > 100 and sheet.shape[1] > 500


def test_data_preview_of_an_unknown_source_is_one_line(tmp_path):
    result = run_cli("data", "preview", "--source", "nope", "-o", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "unknown source" in result.stderr and len(result.stderr.strip().splitlines()) == 1
