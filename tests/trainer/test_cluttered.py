"""Cluttered evaluation scenes (``trainer.cluttered`` via ``iter_scenes(..., cluttered=...)``): the wanted
number is labelled and boxed, the clutter around it holds other numbers, negatives leave the number out,
and the options are off by default."""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from trainer.cluttered import KINDS, cluster_scene, meter_scene, watermark
from trainer.house_scene import house_scene
from trainer.sources import iter_scenes


def fixed_number(rng):
    """A stand-in for the renderer: a white plate with a dark 6-digit strip, always '123456'."""
    crop = np.full((40, 150, 3), 240, np.uint8)
    cv2.putText(crop, "123456", (4, 32), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (10, 10, 10), 2)
    return crop, "123456"


def test_each_kind_keeps_the_wanted_number_intact_inside_the_frame():
    rng = np.random.default_rng(1)
    for draw in (cluster_scene, meter_scene):
        for _ in range(10):
            img = np.full((480, 640, 3), 90, np.uint8)
            label, (x, y, w, h) = draw(img, rng, fixed_number)
            assert label == "123456"
            assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480 and h >= 0.03 * 480 * 0.9
            expected = cv2.resize(fixed_number(rng)[0], (w, h), interpolation=cv2.INTER_AREA)
            assert np.array_equal(img[y : y + h, x : x + w], expected)  # nothing drawn over it
            outside = img.copy()
            outside[y : y + h, x : x + w] = 90
            assert cv2.Canny(outside, 50, 150).mean() > 2  # dials, ticks, text: clutter around it


def test_the_date_stamp_stays_off_the_number():
    rng = np.random.default_rng(2)
    drawn = 0
    for _ in range(20):
        img = np.zeros((480, 640, 3), np.uint8)
        avoid = (300, 400, 300, 80)  # where a bottom-right stamp would go
        watermark(img, rng, avoid)
        assert img[avoid[1] : avoid[1] + avoid[3], avoid[0] : avoid[0] + avoid[2]].max() == 0
        drawn += img.max() > 0
    assert drawn >= 15  # in another corner; left out only when none is free


def test_cluttered_scenes_are_labelled_and_the_option_is_off_by_default():
    scenes = list(itertools.islice(iter_scenes("val", 3, cluttered=1.0), 12))
    assert len(KINDS) == 3
    for frame, label, box in scenes:
        assert frame.shape == (480, 640, 3) and label.isdigit() and box is not None
    default = [(f.tobytes(), l, b) for f, l, b in itertools.islice(iter_scenes("val", 3), 6)]
    off = [(f.tobytes(), l, b) for f, l, b in itertools.islice(iter_scenes("val", 3, cluttered=0.0), 6)]
    assert default == off
    assert [l for _, l, _ in scenes[:6]] != [l for _, l, _ in default]


def test_the_house_plaque_is_intact_and_the_front_holds_other_numbers():
    rng = np.random.default_rng(3)
    for _ in range(10):
        img = np.full((640, 480, 3), 90, np.uint8)  # portrait, as a phone holds it
        label, (x, y, w, h) = house_scene(img, rng, fixed_number)
        assert label == "123456"
        assert 0 <= x and 0 <= y and x + w <= 480 and y + h <= 640 and h >= 0.04 * 640 * 0.9
        crop = fixed_number(rng)[0]
        expected = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if h < crop.shape[0] else cv2.INTER_LINEAR)
        assert np.array_equal(img[y : y + h, x : x + w], expected)


def test_negatives_draw_the_clutter_without_the_wanted_number():
    rng = np.random.default_rng(4)
    for draw in (cluster_scene, meter_scene, house_scene):
        img = np.full((480, 640, 3), 90, np.uint8)
        assert draw(img, rng, None) == ("", None)
        assert cv2.Canny(img, 50, 150).mean() > 1  # the numerals and text are still there
    scenes = list(itertools.islice(iter_scenes("train", 5, cluttered=1.0, cluttered_empty=1.0,
                                               cluttered_kinds=("cluster", "meter", "watermark", "house")), 12))
    assert all(label == "" and box is None for _, label, box in scenes)


def test_house_fronts_come_in_portrait_and_landscape():
    scenes = list(itertools.islice(iter_scenes("val", 6, cluttered=1.0, cluttered_kinds=("house",)), 16))
    shapes = {frame.shape for frame, _, _ in scenes}
    assert shapes == {(480, 640, 3), (640, 480, 3)}
    for frame, label, (x, y, w, h) in scenes:
        assert label.isdigit() and x + w <= frame.shape[1] and y + h <= frame.shape[0]


def test_framed_crops_come_as_whole_frames_with_the_number_boxed_and_are_off_by_default():
    scenes = list(itertools.islice(iter_scenes("train", 7, framed=1.0), 8))
    for frame, label, (x, y, w, h) in scenes:
        assert frame.ndim == 3 and frame.shape[2] == 3 and label.isdigit()
        assert 0 < x and 0 < y and x + w < frame.shape[1] and y + h < frame.shape[0]  # margins on every side
        assert frame.shape[0] < 480  # a crop, not a camera frame
    default = [(f.tobytes(), b) for f, _, b in itertools.islice(iter_scenes("val", 3), 6)]
    off = [(f.tobytes(), b) for f, _, b in itertools.islice(iter_scenes("val", 3, framed=0.0), 6)]
    assert default == off


def test_framed_negatives_hold_no_number_and_no_box_and_leave_the_framed_stream_alone_when_off():
    scenes = list(itertools.islice(iter_scenes("train", 7, framed=1.0, framed_empty=1.0), 6))
    for frame, label, box in scenes:
        assert label == "" and box is None and frame.ndim == 3 and frame.shape[0] < 480
    mixed = [label for _, label, _ in itertools.islice(iter_scenes("train", 7, framed=1.0, framed_empty=0.5), 30)]
    assert 5 < sum(label == "" for label in mixed) < 25
    default = [(f.tobytes(), b) for f, _, b in itertools.islice(iter_scenes("train", 7, framed=1.0), 4)]
    off = [(f.tobytes(), b) for f, _, b in itertools.islice(iter_scenes("train", 7, framed=1.0, framed_empty=0.0), 4)]
    assert default == off
