"""The committed default model runs through the device's interpreter wrapper on the runtime CI asks for.

scripts/test.sh runs this file twice: in .venv with ai-edge-litert (numpy 2) and in .venv-tflite with
tflite-runtime 2.14 and numpy<2, the pairing a 32-bit Raspberry Pi OS needs. No TensorFlow here.
"""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.errors import ModelError
from device.recognize import Recognizer

RUNTIME = os.environ.get("DIGITCAM_RUNTIME", "litert")
MODEL = Path(__file__).resolve().parents[2] / "models" / "digitcam.tflite"


def _text_crop(text: str, seed: int) -> np.ndarray:
    """A clean dark-on-light number drawn with OpenCV, so this test needs nothing but cv2."""
    rng = np.random.default_rng(seed)
    img = np.full((48, 40 + 26 * len(text), 3), int(rng.integers(190, 250)), np.uint8)
    cv2.putText(img, text, (16, 38), cv2.FONT_HERSHEY_DUPLEX, 1.2, (20, 20, 20), 3, cv2.LINE_AA)
    return img


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(MODEL, runtime=RUNTIME)


def test_runs_on_the_requested_runtime(recognizer):
    assert recognizer.runtime == RUNTIME
    if RUNTIME == "tflite-runtime":
        assert int(np.__version__.split(".")[0]) < 2, "tflite-runtime 2.14 is only supported with numpy<2"


def test_model_is_full_int8_with_uint8_input(recognizer):
    details = recognizer.interpreter.get_input_details()[0]
    assert details["dtype"] == np.uint8
    tensor_types = {t["dtype"] for t in recognizer.interpreter.get_tensor_details()}
    assert np.int8 in tensor_types, "internal tensors must be int8"


def test_batch_equals_single_reads(recognizer):
    crops = [_text_crop(t, i) for i, t in enumerate(["2024", "518", "77031", "9"])]
    batch, ms = recognizer.read(crops)
    singles = [recognizer.read([c])[0][0] for c in crops]
    assert ms > 0
    assert [r.value for r in batch] == [r.value for r in singles]
    for b, s in zip(batch, singles):
        assert b.confidence == pytest.approx(s.confidence, abs=1e-6)
        assert 0.0 <= b.confidence <= 1.0


def test_reads_clean_numbers(recognizer):
    texts = ["2024", "518", "77031", "9", "360", "1847", "52", "40913"]
    readings, _ = recognizer.read([_text_crop(t, i) for i, t in enumerate(texts)])
    correct = sum(r.value == t for r, t in zip(readings, texts))
    assert correct >= 6, [r.value for r in readings]


def test_corrupt_model_is_a_one_line_model_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(MODEL.read_bytes()[: 4096])
    (tmp_path / "bad.json").write_text(MODEL.with_suffix(".json").read_text())
    with pytest.raises(ModelError) as exc:  # the checksum catches the truncation first
        Recognizer(bad, runtime=RUNTIME)
    assert "\n" not in str(exc.value)


@pytest.mark.skipif(RUNTIME == "tflite-runtime", reason="tflite-runtime 2.14 segfaults on a truncated flatbuffer; "
                    "there the manifest's sha256 check (test above) is the guard")
def test_truncated_model_with_a_matching_manifest_cannot_be_loaded(tmp_path):
    """Past the checksum, the runtime itself must refuse a broken file with one line, not a crash."""
    from device.contract import InputSpec
    from device.manifest import write_manifest

    bad = tmp_path / "short.tflite"
    bad.write_bytes(MODEL.read_bytes()[: 2048])
    write_manifest(bad, {"name": "short", "version": "0", "head": "ctc", "input": InputSpec().as_dict()})
    with pytest.raises(ModelError, match="cannot be loaded") as exc:
        Recognizer(bad, runtime=RUNTIME)
    assert "\n" not in str(exc.value)
