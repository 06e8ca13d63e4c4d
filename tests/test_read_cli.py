"""``digitcam read --json``: the stable one-shot interface that scripts rely on, run as a real subprocess."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

REPO = Path(__file__).resolve().parent.parent
KEYS = {"image", "value", "confidence", "box", "digits", "ms"}


def digitcam(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "device.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def rendered_images(tmp_path_factory):
    """Three dozen rendered numbers of the kind the tiny model was trained on, written as PNG files."""
    from trainer.sources import iter_samples

    folder = tmp_path_factory.mktemp("rendered")
    paths, labels = [], []
    samples = (s for s in iter_samples("rendered", "test", 11, difficulty="easy") if s[1])
    for i, (image, label) in enumerate(itertools.islice(samples, 36)):
        path = folder / f"{i:02d}.png"
        cv2.imwrite(str(path), image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(path)
        labels.append(label)
    return paths, labels


def test_read_json_reads_rendered_numbers(tiny_model, rendered_images):
    paths, labels = rendered_images
    proc = digitcam("read", "--json", "--no-locate", "--model", tiny_model, *paths)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["image"] for r in results] == [str(p) for p in paths], "one object per image, in input order"
    for r in results:
        assert set(r) == KEYS
        assert 0.0 <= r["confidence"] <= 1.0 and r["ms"] >= 0
        assert r["box"] is not None and len(r["box"]) == 4
        assert "".join(d["digit"] for d in r["digits"]) == (r["value"] or "")
    correct = sum(r["value"] == label for r, label in zip(results, labels))
    assert correct / len(labels) >= 0.9, [(r["value"], label) for r, label in zip(results, labels)]


def test_min_confidence_turns_only_the_unsure_readings_into_null(tiny_model, rendered_images):
    paths = rendered_images[0][:12]
    plain = [json.loads(line) for line in digitcam("read", "--json", "--no-locate", "--model", tiny_model, *paths).stdout.splitlines()]
    levels = sorted({r["confidence"] for r in plain})
    assert len(levels) >= 2, levels
    mid = len(levels) // 2
    cut = (levels[mid - 1] + levels[mid]) / 2  # between two reported values: rounding cannot blur the side
    proc = digitcam("read", "--json", "--no-locate", "--min-confidence", cut, "--model", tiny_model, *paths)
    assert proc.returncode == 0, proc.stderr
    for before, after in zip(plain, (json.loads(line) for line in proc.stdout.splitlines())):
        assert after["confidence"] == before["confidence"] and after["box"] == before["box"]
        if before["confidence"] < cut:
            assert after["value"] is None and after["digits"] == []
        else:
            assert after["value"] == before["value"] and after["digits"] == before["digits"]
    bad = digitcam("read", "--min-confidence", "1.5", "--model", tiny_model, paths[0])
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr


def test_unreadable_image_is_reported_and_the_others_still_read(tiny_model, rendered_images, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    good = rendered_images[0][0]
    proc = digitcam("read", "--json", "--no-locate", "--model", tiny_model, bad, tmp_path / "missing.png", good)
    assert proc.returncode == 1
    first, second, third = (json.loads(line) for line in proc.stdout.splitlines())
    assert set(first) == {"image", "error"} and "broken.jpg" in first["error"] and "\n" not in first["error"]
    assert "missing.png" in second["error"]
    assert third["image"] == str(good) and "value" in third


def test_missing_model_is_a_one_line_error(rendered_images, tmp_path):
    proc = digitcam("read", "--model", tmp_path / "nope.tflite", rendered_images[0][0])
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "model not found" in proc.stderr


def test_model_with_wrong_input_shape_is_refused(tmp_path, rendered_images):
    """A float-input model does not fit the contract (uint8 [batch, h, w, 1]): one line, exit 2."""
    tf = pytest.importorskip("tensorflow")
    from device.contract import InputSpec
    from device.manifest import write_manifest

    inputs = tf.keras.Input((32, 128, 3))
    x = tf.keras.layers.GlobalAveragePooling2D()(inputs)
    out = tf.keras.layers.Dense(11, activation="softmax")(tf.keras.layers.RepeatVector(8)(x))
    model = tf.keras.Model(inputs, {"ctc": out})
    saved = tmp_path / "saved"
    model.export(str(saved), verbose=False)
    path = tmp_path / "rgb.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    write_manifest(path, {"name": "rgb", "version": "0", "head": "ctc", "input": InputSpec().as_dict()})
    proc = digitcam("read", "--model", path, rendered_images[0][0])
    assert proc.returncode == 2
    assert "contract wants uint8[batch, height, width, 1]" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
