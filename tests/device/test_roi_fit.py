"""Fitting a loosely drawn ROI to the number (device/roi_fit.py), on the bundled sample with the committed
recognizer and locator (no TensorFlow): what the web page's "Fit ROI" suggests for a sensor without locate."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest

from device.reader import FrameReader
from device.recognize import Recognizer
from device.roi_fit import LOOSE_BELOW, fit_roi

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "meter"
SAMPLE_ROI = (60, 58, 200, 64)  # samples/digitcam.toml: the counter window with a small margin


@pytest.fixture(scope="module")
def reader(locator):
    return FrameReader(Recognizer(REPO / "models" / "digitcam.tflite"), locator)


def truth(name: str) -> str:
    with open(SAMPLE / "labels.csv", newline="") as handle:
        return next(row[1] for row in csv.reader(handle) if row and row[0] == name)


def overlap(a, b) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h) / min(a[2] * a[3], b[2] * b[3])


@pytest.mark.parametrize("drawn", [None, (20, 20, 280, 140), (0, 30, 320, 120)])
def test_a_loose_roi_is_fitted_to_the_counter_window_and_reads_the_number(reader, drawn):
    frame = cv2.imread(str(SAMPLE / "frame_0000.jpg"))
    fit = fit_roi(reader, frame, drawn)
    assert fit is not None and fit.loose and fit.share < LOOSE_BELOW
    assert overlap(fit.roi, SAMPLE_ROI) > 0.8, fit.roi  # the window, not the meter's face around it
    if drawn is not None:  # inside what was drawn
        assert drawn[0] <= fit.roi[0] and fit.roi[0] + fit.roi[2] <= drawn[0] + drawn[2]
    assert fit.reading.value == truth("frame_0000.jpg") and fit.reading.box == fit.roi


def test_a_tight_roi_is_not_called_loose_and_no_locator_means_no_fit(reader):
    frame = cv2.imread(str(SAMPLE / "frame_0000.jpg"))
    fit = fit_roi(reader, frame, SAMPLE_ROI)
    assert fit is not None and not fit.loose and fit.roi == SAMPLE_ROI
    assert fit_roi(FrameReader(reader.recognizer), frame, None) is None


def test_a_region_without_a_number_gets_no_fit(reader):
    frame = cv2.imread(str(SAMPLE / "frame_0000.jpg"))
    assert fit_roi(reader, frame, (0, 130, 60, 50)) is None  # the meter's corner below the window
