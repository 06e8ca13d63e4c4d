"""Half-way meter wheels: kept apart from the readable rolling ones and labelled either way in training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer import meters


def test_half_way_wheels_are_told_apart_from_readable_rolling_ones():
    row = {"digit": "5", "fraction": "0.6", "class": "10", "source": "s"}
    assert meters.is_midroll(row) and meters.is_midroll({**row, "fraction": "0.7"})
    assert not meters.is_midroll({**row, "fraction": "0.4"})  # read as 5 by the rule
    assert not meters.is_midroll({**row, "class": "6", "fraction": "0.9"})
    assert meters.kind_of(meters.MeterCrop(Path("x"), "5", "s", True, True)) == "midroll"
    assert meters.kind_of(meters.MeterCrop(Path("x"), "5", "s", True)) == "rolling"
    assert meters.kind_of(meters.MeterCrop(Path("x"), "5", "s", False)) == "clean"


def test_a_half_way_wheel_is_labelled_either_digit_half_the_time_and_a_resting_one_never_changes():
    rng = np.random.default_rng(0)
    half = meters.MeterCrop(Path("x"), "9", "s", True, True)
    labels = [half.label_for(rng) for _ in range(400)]
    assert set(labels) == {"9", "0"} and 150 < labels.count("0") < 250
    resting = meters.MeterCrop(Path("x"), "9", "s", False)
    assert {resting.label_for(rng) for _ in range(50)} == {"9"}
