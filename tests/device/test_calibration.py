"""The recognizer applies its manifest's calibration and refuses a nonsensical one in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from device.errors import ModelError
from device.manifest import manifest_path, write_manifest
from device.recognize import Recognizer

BUNDLED = Path(__file__).resolve().parents[2] / "models" / "digitcam.tflite"


def _copy_with(folder: Path, calibration) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "m.tflite"
    shutil.copy(BUNDLED, model)
    fields = json.loads(manifest_path(BUNDLED).read_text())
    fields.pop("calibration", None)
    if calibration is not None:
        fields["calibration"] = calibration
    write_manifest(model, {k: v for k, v in fields.items() if k not in ("schema", "file", "sha256")})
    return model


def test_temperature_changes_confidence_not_the_value(tmp_path):
    crops = [np.full((32, 100), 200, np.uint8)]
    crops[0][6:26, 10:90:16] = 20
    plain = Recognizer(_copy_with(tmp_path / "plain", None))
    hot = Recognizer(_copy_with(tmp_path / "hot", {"temperature": 0.5}))
    (r1,), _ = plain.read(crops)
    (r2,), _ = hot.read(crops)
    assert plain.temperature == 1.0 and hot.temperature == 0.5
    assert r1.value == r2.value and r2.confidence != r1.confidence


@pytest.mark.parametrize("bad", [0, -1.0, "warm", True, 100.0])
def test_a_bad_temperature_is_refused(tmp_path, bad):
    with pytest.raises(ModelError, match="calibration.temperature"):
        Recognizer(_copy_with(tmp_path, {"temperature": bad}))


def test_an_empty_crop_reads_as_no_number_instead_of_crashing():
    from device.contract import prepare_crop

    blank = prepare_crop(np.zeros((0, 40, 3), np.uint8))
    assert blank.shape == (32, 128, 1) and not blank.any()
    (reading,), _ = Recognizer(BUNDLED).read([np.zeros((5, 0, 3), np.uint8)])  # a frame cut by an empty box
    assert reading.value is None
