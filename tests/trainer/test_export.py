"""Export: a full-int8 model with uint8 input, named outputs, a manifest, a dynamic batch and parity."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from device.contract import InputSpec
from device.errors import ModelError
from device.recognize import Recognizer


def easy_rendered(n: int, split: str = "test", seed: int = 3):
    from trainer.sources import fixed_set

    return fixed_set("rendered", split, n, seed, InputSpec(), difficulty="easy")


def test_the_tiny_model_is_full_int8_with_raw_pixel_input(tiny_model):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tiny_model))
    runner = interpreter.get_signature_runner("serving_default")
    (details,) = runner.get_input_details().values()
    assert details["dtype"] == np.uint8 and details["quantization"] == (1.0, 0)
    assert list(details["shape_signature"]) == [-1, 32, 128, 1]
    assert set(runner.get_output_details()) == {"ctc"}
    float_ops = [t for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
    assert not float_ops, f"float tensors left in the int8 model: {[t['name'] for t in float_ops][:5]}"


def test_manifest_says_what_the_model_is(tiny_model):
    manifest = json.loads(tiny_model.with_suffix(".json").read_text())
    assert manifest["head"] == "ctc" and manifest["max_digits"] == 8
    assert manifest["input"] == InputSpec().as_dict()
    assert manifest["training"]["mix"] == {"rendered": 1.0}
    assert manifest["metrics"]["rendered"]["n"] > 0
    assert 0 < manifest["macs"] and manifest["size_bytes"] == tiny_model.stat().st_size
    assert Recognizer(tiny_model).manifest.sha256 == manifest["sha256"]


def test_the_tiny_model_reads_clean_rendered_numbers(tiny_model):
    images, labels = easy_rendered(48)
    readings = Recognizer(tiny_model).infer(images)
    hits = sum((r.value or "") == lab for r, lab in zip(readings, labels))
    assert hits / len(labels) >= 0.9, [(r.value, lab) for r, lab in zip(readings, labels)]


def test_a_batch_reads_like_single_crops(tiny_model):
    images, _ = easy_rendered(5)
    recognizer = Recognizer(tiny_model)
    batched = [r.value for r in recognizer.infer(images)]
    single = [recognizer.infer(images[i : i + 1])[0].value for i in range(5)]
    assert batched == single


def test_export_fails_when_int8_loses_more_than_allowed(tiny_model, tmp_path):
    """A negative allowance demands int8 beat float by a point, which cannot hold: export must fail clean."""
    from trainer.export import export_model
    from trainer.train import load_run

    run = load_run(tiny_model.parent / "run")
    images, labels = easy_rendered(32, split="val")
    out = tmp_path / "strict.tflite"
    with pytest.raises(ModelError, match="int8 parity failed.*rendered"):
        export_model(run.best_model(), out, calibration=images, val_sets={"rendered": (images, labels)},
                     parity_points=-1.0)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_a_parity_failure_is_tried_again_on_other_calibration_draws_then_stands(tiny_model, tmp_path):
    from trainer.export import export_with_draws
    from trainer.train import load_run

    run = load_run(tiny_model.parent / "run")
    images, labels = easy_rendered(32, split="val")
    drawn = []
    out = tmp_path / "strict.tflite"
    with pytest.raises(ModelError, match="int8 parity failed"):
        export_with_draws(run.best_model(), out, lambda attempt: drawn.append(attempt) or images, attempts=2,
                          val_sets={"rendered": (images, labels)}, parity_points=-1.0)
    assert drawn == [0, 1] and not out.exists()


def test_export_refuses_calibration_that_does_not_span_0_to_255(tiny_model, tmp_path):
    from trainer.export import convert_int8
    from trainer.train import load_run

    dim = np.full((4, 32, 128, 1), 100, np.uint8)
    dim[:, :, ::2] = 140
    with pytest.raises(ModelError, match="calibration images"):
        convert_int8(load_run(tiny_model.parent / "run").best_model(), dim, tmp_path / "dim.tflite")
    assert not (tmp_path / "dim.tflite").exists()


def test_export_cli_of_a_missing_run_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "device.cli", "export", str(tmp_path / "nope"), "-o",
                             str(tmp_path / "m.tflite")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("digitcam: error:")
    assert "not a training run directory" in result.stderr
