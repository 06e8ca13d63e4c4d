"""The manifest guards the model: missing, corrupt or mismatching manifests are one-line ModelErrors."""

import json

import pytest

from device.contract import InputSpec
from device.errors import ModelError
from device.manifest import load_manifest, manifest_path, write_manifest


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"TFL3 not really a model but bytes to hash")
    write_manifest(path, {"name": "t", "version": "1", "head": "ctc", "input": InputSpec().as_dict()})
    return path


def test_round_trip(model_file):
    m = load_manifest(model_file)
    assert m.name == "t" and m.head == "ctc" and len(m.sha256) == 64


def test_checksum_mismatch_is_refused(model_file):
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    with pytest.raises(ModelError, match="checksum mismatch") as exc:
        load_manifest(model_file)
    assert "\n" not in str(exc.value)


def test_missing_model_and_manifest(model_file, tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        load_manifest(tmp_path / "nope.tflite")
    manifest_path(model_file).unlink()
    with pytest.raises(ModelError, match="manifest not found"):
        load_manifest(model_file)


@pytest.mark.parametrize("mangle", [
    lambda d: "{not json",
    lambda d: json.dumps({k: v for k, v in d.items() if k != "sha256"}),
    lambda d: json.dumps({**d, "head": "rnn"}),
    lambda d: json.dumps({**d, "input": {**d["input"], "preprocess": "other-v9"}}),
])
def test_corrupt_manifests_are_refused(model_file, mangle):
    path = manifest_path(model_file)
    path.write_text(mangle(json.loads(path.read_text())))
    with pytest.raises(ModelError) as exc:
        load_manifest(model_file)
    assert "\n" not in str(exc.value)
