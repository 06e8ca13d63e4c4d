"""Loose framing keeps the number untouched, puts clutter around it, and each family can be held out."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trainer import framing, surroundings
from trainer.sources import iter_samples


def _crop(h=40, w=120):
    img = np.full((h, w), 200, np.uint8)
    img[8:32, 10:110:20] = 30  # ink columns standing in for digits
    return img


def test_the_crop_sits_inside_loose_margins_of_every_side():
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = framing.frame_loosely(_crop(), rng, families=())
        assert out.shape[0] >= 40 + 2 * 0.3 * 32 - 1 and out.shape[1] >= 120 + 2 * 0.3 * 32 - 1
        assert out.shape[0] <= 40 + 2 * 1.5 * 32 + 1


@pytest.mark.parametrize("family", surroundings.FAMILIES)
def test_each_family_adds_clutter_outside_the_number(family):
    rng = np.random.default_rng(1)
    changed = 0
    for _ in range(30):
        seed = int(rng.integers(1 << 30))
        plain = framing.frame_loosely(_crop(), np.random.default_rng(seed), families=())
        cluttered = framing.frame_loosely(_crop(), np.random.default_rng(seed), families=(family,))
        if plain.shape == cluttered.shape:
            changed += int(np.abs(plain.astype(int) - cluttered).max() > 40)
    assert changed >= 8, f"{family} added visible clutter in only {changed} of 30 crops"


def test_unknown_family_is_refused_by_name():
    with pytest.raises(ValueError, match="neon"):
        framing.frame_loosely(_crop(), np.random.default_rng(0), families=("bezel", "neon"))


def test_framed_and_tight_streams_hold_the_same_numbers():
    framed = list(itertools.islice(iter_samples("framed", "val", 3, base="rendered"), 12))
    tight = list(itertools.islice(iter_samples("framed", "val", 3, base="rendered", tight=True), 12))
    assert [lab for _, lab in framed] == [lab for _, lab in tight]
    assert all(f.shape[0] > t.shape[0] and f.shape[1] > t.shape[1] for (f, _), (t, _) in zip(framed, tight))


def test_script_words_hold_no_digit():
    for _, words in surroundings.SCRIPT_TEXTS:
        assert not any(ch.isdigit() for w in words for ch in w)
    assert len(surroundings.text_bank()) >= 10


def test_margin_range_is_checked_and_honoured():
    with pytest.raises(ValueError, match="margin"):
        next(iter_samples("framed", "val", 3, base="rendered", margin=[0.8, 0.2]))
    snug = [img for img, _ in itertools.islice(iter_samples("framed", "val", 3, base="rendered", margin=[0.0, 0.1]), 8)]
    loose = [img for img, _ in itertools.islice(iter_samples("framed", "val", 3, base="rendered"), 8)]
    assert all(s.shape[0] < lo.shape[0] for s, lo in zip(snug, loose))


def test_the_boxed_frame_says_where_the_number_is():
    rng = np.random.default_rng(4)
    for _ in range(10):
        out, (x, y, w, h) = framing.frame_loosely_boxed(_crop(), rng, families=())
        assert (w, h) == (120, 40)  # the crop itself, not the housing round it
        assert x >= 0.3 * 32 - 1 and y >= 0.3 * 32 - 1 and x + w <= out.shape[1] and y + h <= out.shape[0]
        inside = out[y : y + h, x : x + w].astype(float)
        assert np.corrcoef(inside.ravel(), _crop().astype(float).ravel())[0, 1] > 0.8  # the ink columns are there
