"""Locator v4's candidates: separate boxes from one heat map, all read in one call, the number chosen by
``device.choose``; a rough ROI; large JPEGs decoded at reduced size. Model tests use the committed int8
locator and recognizer through LiteRT."""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.boxes import box_iou
from device.choose import DEFAULT_GATE, DEFAULT_RULE, Rule, choose
from device.cli import roi_arg
from device.contract import Reading
from device.images import decode_image, decode_reduced, jpeg_size
from device.heatmap import STRIDE, decode_candidates, decode_heatmap
from device.bundled import REPO_LOCATOR
from device.locate import Locator
from device.oneshot import read_image
from device.reader import FrameReader
from device.recognize import Recognizer

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "digitcam.tflite"
needs_model = pytest.mark.skipif(not REPO_LOCATOR.is_file(), reason="models/locator.tflite is not committed yet")


def maps_for(boxes, rows=48, cols=64):
    """Heat and ltrb maps as a perfect model would give them for several boxes: [(corners, heat), ...]."""
    cx, cy = (np.arange(cols) + 0.5) * STRIDE, (np.arange(rows) + 0.5) * STRIDE
    xs, ys = np.meshgrid(cx, cy)
    heat = np.full((rows, cols), 0.02, np.float32)
    ltrb = np.zeros((rows, cols, 4), np.float32)
    for (x0, y0, x1, y1), value in boxes:
        inside = (xs > x0) & (xs < x1) & (ys > y0) & (ys < y1)
        heat[inside] = value
        ltrb[inside] = (np.stack([xs - x0, ys - y0, x1 - xs, y1 - ys], axis=-1) / 8.0)[inside]
    return heat, ltrb


# ---- decoding -----------------------------------------------------------------------------------------


def test_separate_numbers_give_separate_candidates_strongest_first():
    heat, ltrb = maps_for([((100, 80, 160, 100), 0.9), ((10, 10, 50, 30), 0.85)])
    found = decode_candidates(heat, ltrb, threshold=0.5)
    assert [score for _, score in found] == pytest.approx([0.9, 0.85])
    assert found[0][0] == pytest.approx((100, 80, 160, 100), abs=1e-3)
    assert found[1][0] == pytest.approx((10, 10, 50, 30), abs=1e-3)
    assert found[0] == decode_heatmap(heat, ltrb, 0.5)  # the first candidate is the single-box decoder's


def test_a_blob_holding_two_numbers_is_split_not_averaged_into_one_big_box():
    """Two numbers whose hot cells touch: the single-box decoder averages them into a box over both (the
    dashboard failure of issue 15); the candidates are each number's own box."""
    small, wide = (40, 100, 100, 116), (100, 60, 220, 140)  # an odometer beside a dial's numerals
    heat, ltrb = maps_for([(wide, 0.85), (small, 0.9)])
    merged, _ = decode_heatmap(heat, ltrb, 0.5)
    assert box_iou(_xywh(merged), _xywh(small)) < 0.5
    boxes = [corners for corners, _ in decode_candidates(heat, ltrb, threshold=0.5)]
    assert len(boxes) == 2
    assert boxes[0] == pytest.approx(small, abs=2) and boxes[1] == pytest.approx(wide, abs=2)


def _xywh(corners):
    x0, y0, x1, y1 = corners
    return x0, y0, x1 - x0, y1 - y0


def test_no_candidate_below_the_threshold_and_weak_peaks_only_above_the_floor():
    heat, ltrb = maps_for([((100, 80, 160, 100), 0.7), ((10, 10, 50, 30), 0.4)])
    assert decode_candidates(heat, ltrb, threshold=0.8) == []
    assert len(decode_candidates(heat, ltrb, threshold=0.6)) == 1  # the floor is the threshold by default
    assert len(decode_candidates(heat, ltrb, threshold=0.6, floor=0.3)) == 2
    many = [((10 + 40 * i, 150, 40 + 40 * i, 170), 0.9 - 0.01 * i) for i in range(6)]
    assert len(decode_candidates(*maps_for(many), threshold=0.5, k=4)) == 4


# ---- the choice ---------------------------------------------------------------------------------------


def test_the_rule_prefers_a_sure_counter_to_a_scale_numeral_and_never_a_blank():
    numeral, counter, blank = Reading("20", 0.95), Reading("067523", 0.9), Reading(None, 1.0)
    assert choose([0.95, 0.85], [numeral, counter]) == 1
    assert choose([0.95, 0.85], [blank, numeral]) == 1
    assert choose([0.9, 0.95], [blank, blank]) == 1  # none reads a number: the strongest peak's reading
    assert choose([0.95, 0.85], [numeral, counter], Rule(1.0, 1, 0.0)) == 0  # without the length factor
    assert DEFAULT_RULE.score(0.9, Reading("1234", 0.8)) == pytest.approx(0.9 * 0.8)


# ---- the committed models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locator():
    return Locator(REPO_LOCATOR)


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(MODEL)


@pytest.fixture(scope="module")
def cluttered():
    pytest.importorskip("trainer.scenes")
    from trainer.sources import iter_scenes

    return list(itertools.islice(iter_scenes("test", 4242, cluttered=1.0), 40))


@needs_model
def test_the_first_candidate_is_finds_box_on_the_bundled_sample(locator):
    for path in sorted((REPO / "samples" / "meter").glob("*.jpg"))[:20]:
        frame = cv2.imread(str(path))
        assert locator.candidates(frame)[0].box == locator.find(frame), path


@needs_model
def test_candidates_cover_the_wanted_number_in_cluttered_scenes_at_least_as_often_as_one_box(locator, cluttered):
    one = sum(box_iou(locator.find(f) or (0, 0, 0, 0), b) >= 0.5 for f, _, b in cluttered)
    some = sum(any(box_iou(c.box, b) >= 0.5 for c in locator.candidates(f)) for f, _, b in cluttered)
    # locator v3 (never trained on such scenes) covered it with some candidate 3+ more times than with one
    # box; v4, trained on them, finds it with one box in most scenes: the candidates must not lose any
    assert some >= one and some >= 0.85 * len(cluttered), (some, one)


@needs_model
def test_all_candidates_go_through_the_recognizer_in_one_call_and_the_choice_is_among_them(locator, recognizer, cluttered):
    calls = []
    real = recognizer.read

    class Counting:
        def __getattr__(self, name):
            return getattr(recognizer, name)

        def read(self, crops):
            calls.append(len(crops))
            return real(crops)

        def read_views(self, groups, weights=None):
            return Recognizer.read_views(self, groups, weights)

    reader = FrameReader(Counting(), locator)
    frame = next(f for f, _, _ in cluttered if len(locator.candidates(f)) >= 3)
    found = reader.read_candidates(frame)
    assert calls == [len(locator.views) + len(found.candidates) - 1]  # the strongest through all views
    assert [r.box for r in found.candidates] == [c.box for c in locator.candidates(frame)]
    assert found.reading in found.candidates
    assert found.candidates.index(found.reading) == choose(found.peaks, found.candidates)
    assert reader.find_and_read(frame)[0] == found.reading


def test_vote_weights_decide_between_readings_that_disagree():
    from device.recognize import vote

    readings = [Reading("123", 0.6), Reading("128", 0.5), Reading("128", 0.4)]
    assert readings[vote(readings)].value == "128"  # 0.9 against 0.6
    assert readings[vote(readings, [2.0, 1.0, 1.0])].value == "123"  # 1.2 against 0.9


@needs_model
def test_a_number_filling_the_image_is_read_whole_and_through_its_located_box(locator, recognizer):
    frame = cv2.imread(str(REPO / "samples" / "meter" / "frame_0000.jpg"))[58:122, 60:260]  # the sample's ROI
    (first, *_) = locator.candidates(frame)
    height, width = frame.shape[:2]
    assert first.box == (0, 0, width, height) and first.inner is not None and first.inner != first.box
    x, y, w, h = first.inner
    assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
    calls = []

    class Counting:
        def __getattr__(self, name):
            return getattr(recognizer, name)

        def read_views(self, groups, weights=None):
            calls.append(([len(g) for g in groups], weights))
            return Recognizer.read_views(self, groups, weights)

    from device.reader import WHOLE_IMAGE_VOTES

    found = FrameReader(Counting(), locator).read_candidates(frame)
    sizes, weights = calls[0]
    assert sizes[0] == 1 + len(locator.views) and list(weights[0]) == [WHOLE_IMAGE_VOTES] + [1.0] * len(locator.views)
    assert found.reading.box == (0, 0, width, height) and found.reading.value == "004711"
    rough = locator.candidates(cv2.imread(str(REPO / "samples" / "meter" / "frame_0000.jpg")), (60, 58, 200, 64))
    assert rough[0].box == (60, 58, 200, 64) and rough[0].inner[0] >= 60  # in frame pixels inside an ROI too


@needs_model
def test_a_rough_roi_reads_the_number_as_a_tight_box_does(locator, recognizer):
    pytest.importorskip("trainer.scenes")
    from trainer.sources import iter_scenes

    reader, right_tight, right_rough, n = FrameReader(recognizer, locator), 0, 0, 0
    for frame, label, box in itertools.islice(iter_scenes("test", 77), 60):
        if box is None:
            continue
        x, y, w, h = box  # a region 2x the number's width and 4x its height, as a person would draw it
        roi = (max(0, x - w // 2), max(0, y - 3 * h // 2), 2 * w, 4 * h)
        rough = reader.find_and_read(frame, roi)[0]
        assert rough.box is None or (rough.box[0] >= roi[0] and rough.box[1] >= roi[1])
        right_rough += rough.value == label
        right_tight += reader.read_box(frame, box)[0].value == label
        n += 1
    assert right_rough >= right_tight - 0.1 * n, (right_rough, right_tight, n)
    with pytest.raises(ValueError, match="outside"):
        reader.find_and_read(np.zeros((100, 100, 3), np.uint8), (200, 200, 10, 10))


@needs_model
def test_a_located_choice_scoring_below_min_score_reads_no_number_but_keeps_its_box(locator, recognizer):
    pytest.importorskip("trainer.scenes")
    from trainer.sources import iter_scenes

    reader = FrameReader(recognizer, locator)
    frame, found = next((f, found) for f, label, b in iter_scenes("test", 78) if b is not None
                        for found in [reader.read_candidates(f)] if found.reading.value == label)
    chosen = found.candidates.index(found.reading)
    assert found.score == pytest.approx(DEFAULT_GATE.score(found.peaks[chosen], found.reading)) and found.score > 0
    gated = FrameReader(recognizer, locator, min_score=found.score + 1e-6).read_candidates(frame).reading
    assert gated.value is None and gated.digits == [] and gated.box == found.reading.box
    assert gated.confidence == found.reading.confidence
    assert FrameReader(recognizer, locator, min_score=found.score).read_candidates(frame).reading == found.reading
    # without a locator the region is the crop as it is: nothing to gate on
    box = found.reading.box
    assert FrameReader(recognizer, None, min_score=2.0).read_candidates(frame, box).reading == \
        FrameReader(recognizer, None).read_candidates(frame, box).reading


# ---- digitcam read ---------------------------------------------------------------------------------------


@needs_model
def test_read_lists_candidates_only_when_there_are_several_and_reports_an_roi_outside_the_image(
        locator, recognizer, cluttered, tmp_path):
    frame = next(f for f, _, _ in cluttered if len(locator.candidates(f)) >= 2)
    path = tmp_path / "busy.png"
    cv2.imwrite(str(path), frame)
    result = read_image(recognizer, str(path), locator=locator)
    assert {"image", "value", "confidence", "box", "digits", "ms", "candidates"} == set(result)
    assert all(set(c) == {"box", "value", "confidence", "score"} for c in result["candidates"])
    assert [result["value"], result["box"]] in [[c["value"], c["box"]] for c in result["candidates"]]
    sample = str(REPO / "samples" / "meter" / "frame_0000.jpg")
    assert "candidates" not in read_image(recognizer, sample, locator=locator)
    bad = read_image(recognizer, sample, locator=locator, roi=(5000, 10, 50, 50))
    assert "outside" in bad["error"]


@needs_model
def test_a_large_jpeg_is_read_at_reduced_size_with_boxes_in_its_own_pixels(locator, recognizer, tmp_path):
    sample = cv2.imread(str(REPO / "samples" / "meter" / "frame_0000.jpg"))
    big = cv2.resize(sample, (sample.shape[1] * 8, sample.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    small = read_image(recognizer, str(REPO / "samples" / "meter" / "frame_0000.jpg"), locator=locator)
    large = read_image(recognizer, str(path), locator=locator)
    assert large["value"] == small["value"]
    assert box_iou(large["box"], [v * 8 for v in small["box"]]) >= 0.8


def test_jpeg_reduction_picks_the_largest_factor_keeping_the_shorter_side():
    img = np.random.default_rng(0).integers(0, 256, (1600, 2400, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (9, 9), 3)
    ok, data = cv2.imencode(".jpg", img)
    data = data.tobytes()
    assert jpeg_size(data) == (2400, 1600, 3)
    frame, factor = decode_reduced(data, min_side=400)
    assert factor == 4 and frame.shape == (400, 600, 3)
    reference = cv2.resize(decode_image(data), (600, 400), interpolation=cv2.INTER_AREA)
    assert np.abs(frame.astype(int) - reference.astype(int)).mean() < 4
    assert decode_reduced(data, min_side=900)[1] == 1  # halving would go under 900
    assert decode_reduced(data, min_side=0)[1] == 1
    ok, png = cv2.imencode(".png", img[:64, :64])
    assert jpeg_size(png.tobytes()) is None and decode_reduced(png.tobytes(), min_side=8)[1] == 1
    ok, grey = cv2.imencode(".jpg", img[:, :, 0])
    frame, factor = decode_reduced(grey.tobytes(), min_side=400)
    assert factor == 4 and frame.shape == (400, 600)


@needs_model
def test_the_daemons_search_boxes_the_number_digitcam_read_chooses(locator, recognizer, cluttered):
    reader = FrameReader(recognizer, locator)
    several = [f for f, _, _ in cluttered if len(locator.candidates(f)) >= 2][:3]
    assert several
    for frame in several:
        assert reader.search(frame) == reader.read_candidates(frame).reading.box
    assert reader.search(np.full((480, 640, 3), 128, np.uint8)) is None


def test_roi_argument_takes_four_whole_pixels_and_refuses_the_rest():
    assert roi_arg("10,20,200,60") == (10, 20, 200, 60)
    for bad in ("10,20,200", "a,b,c,d", "-1,0,10,10", "0,0,1,10"):
        with pytest.raises(argparse.ArgumentTypeError):
            roi_arg(bad)
    sample = REPO / "samples" / "meter" / "frame_0000.jpg"
    run = subprocess.run([sys.executable, "-m", "device.cli", "read", "--json", "--roi", "20,30,280,120", str(sample)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    x, y, w, h = result["box"]
    assert result["value"] and x >= 20 and y >= 30 and x + w <= 300 and y + h <= 150
    run = subprocess.run([sys.executable, "-m", "device.cli", "read", "--roi", "1,2,3", str(sample)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 2 and "x,y,w,h" in run.stderr
