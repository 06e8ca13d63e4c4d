"""digitcam eval: metrics that mean what they say, on folders, CSVs and built-in sets, with pictures."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from device.errors import SourceError
from trainer.evaluate import coverage_curve, edit_distance, label_from_filename, score


def write_rendered_folder(folder, n: int, seed: int = 4):
    """Clean rendered numbers written as <label>_<i>.png, the way a user would label photos."""
    from trainer.sources import iter_samples

    folder.mkdir()
    labels = []
    for i, (image, label) in enumerate(itertools.islice(iter_samples("rendered", "test", seed, difficulty="easy"), n)):
        cv2.imwrite(str(folder / f"{label}_{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
        labels.append(label)
    return labels


def test_scores_of_known_predictions():
    labels = ["123", "45", "6", "789", ""]
    values = ["123", "46", "", "789", ""]
    conf = [0.9, 0.2, 0.1, 0.8, 0.95]
    m = score(values, conf, labels)
    assert m["sequence_accuracy"] == pytest.approx(60.0)
    assert m["length_accuracy"] == pytest.approx(80.0)
    assert m["digit_accuracy"] == pytest.approx(100 * (1 - 2 / 9))
    assert m["confusion"][5][6] == 1 and m["confusion"][1][1] == 1
    assert m["accuracy_at_90_coverage"] >= m["sequence_accuracy"]
    assert m["confidence_useful"]
    assert m["below_default_gate"] == pytest.approx(0.4)
    rolling = score(values, conf, labels, weakest_digits=[0.9, 0.2, 0.1, 0.3, 0.95])  # "789": a rolling wheel
    assert rolling["digit_below_default_gate"] == pytest.approx(0.6)


def test_coverage_curve_rejects_least_confident_first():
    correct = np.array([True] * 9 + [False])
    curve = coverage_curve(correct, np.array([0.9] * 9 + [0.1]))
    assert curve[-1]["accuracy"] == pytest.approx(90.0)
    assert [p for p in curve if p["coverage"] == 0.9][0]["accuracy"] == pytest.approx(100.0)
    useless = score(["1"] * 9 + ["2"], [0.1] * 9 + [0.9], ["1"] * 10)  # the one error is the most confident
    assert not useless["confidence_useful"]


def test_labels_from_file_names():
    from pathlib import Path

    assert label_from_filename(Path("0042_cam1.jpg")) == "0042"
    assert label_from_filename(Path("7.png")) == "7"
    assert label_from_filename(Path("_wall.png")) == ""
    with pytest.raises(SourceError, match="IMG_1234.jpg"):
        label_from_filename(Path("IMG_1234.jpg"))
    assert edit_distance("1234", "1243") == 2 and edit_distance("", "12") == 2


def test_eval_cli_on_a_folder_and_a_csv(tiny_model, tmp_path):
    labels = write_rendered_folder(tmp_path / "imgs", 40)
    csv_file = tmp_path / "set.csv"
    files = sorted((tmp_path / "imgs").iterdir())
    csv_file.write_text("path,label\n" + "".join(f"imgs/{p.name},{p.name.split('_')[0]}\n" for p in files[:10]))
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "device.cli", "eval", f"{tmp_path / 'imgs'},{csv_file}", "--model", str(tiny_model),
         "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    folder = report["sets"][str(tmp_path / "imgs")]
    assert folder["n"] == len(labels) == 40
    assert folder["sequence_accuracy"] >= 90.0
    assert report["sets"][str(csv_file)]["n"] == 10
    for key in ("digit_accuracy", "length_accuracy", "accuracy_at_90_coverage", "accuracy_at_95_coverage",
                "coverage_curve", "confusion", "worst_errors"):
        assert key in folder
    assert folder["accuracy_at_90_coverage"] >= folder["sequence_accuracy"]
    for png in ("coverage.png", "imgs.worst.png", "imgs.confusion.png"):
        assert cv2.imread(str(out / png)) is not None, png
    assert "seq%" in result.stdout


def test_rejecting_the_least_confident_tenth_raises_accuracy(tiny_model, tmp_path):
    """On harder data than it was trained for, the tiny model errs; its confidence must point at the errors."""
    from trainer.evaluate import evaluate

    report = evaluate(tiny_model, ["rendered:val:200"], tmp_path / "r")
    m = report["sets"]["rendered:val:200"]
    assert m["sequence_accuracy"] < 100.0
    assert m["accuracy_at_90_coverage"] > m["sequence_accuracy"]


def test_bad_sets_are_one_line_errors(tiny_model, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    cv2.imwrite(str(bad / "holiday.png"), np.zeros((10, 10), np.uint8))
    for dataset, message in ((str(bad), "cannot take a label from file name 'holiday.png'"),
                             ("nosuch:val", "no such labelled set"),
                             (str(tmp_path / "missing.csv"), "labels CSV not found")):
        result = subprocess.run([sys.executable, "-m", "device.cli", "eval", dataset, "--model", str(tiny_model),
                                 "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("digitcam: error:") and message in last


def test_confidence_numbers_separate_honest_from_useless_confidence():
    from trainer.calibration import auroc, ece

    correct = np.array([True] * 80 + [False] * 20)
    honest = np.concatenate([np.linspace(0.7, 1.0, 80), np.linspace(0.0, 0.3, 20)])
    useless = np.full(100, 0.99)
    assert auroc(correct, honest) == 1.0 and auroc(correct, useless) == 0.5
    assert {p["coverage"]: p["accuracy"] for p in coverage_curve(correct, honest)}[0.8] == 100.0
    assert auroc(np.array([True, False, True]), np.array([0.5, 0.5, 0.9])) == 0.75  # a tie counts half
    assert ece(correct, useless) == pytest.approx(0.19, abs=1e-9)  # says 99 %, is right 80 %
    assert ece(np.array([True, False]), np.array([0.5, 0.5])) == 0.0


def test_temperature_scales_confidence_but_never_the_value():
    from device.contract import calibrated, decode_ctc

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(11, 0.3), size=32)
    hot, cool = decode_ctc(probs, 0.5), decode_ctc(probs, 3.0)
    assert hot.value == cool.value == decode_ctc(probs).value
    assert cool.confidence < decode_ctc(probs).confidence < hot.confidence
    assert np.allclose(calibrated(probs, 2.0).sum(axis=1), 1.0)


def test_builtin_set_options_reach_the_source():
    from trainer.evaluate import builtin_options

    assert builtin_options(["kind=midroll", "tight=true", "limit=5"], "x") == {"kind": "midroll", "tight": True, "limit": 5}
    with pytest.raises(SourceError, match="key=value"):
        builtin_options(["oops"], "meters:test:oops")
