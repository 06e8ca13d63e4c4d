"""The rendered source: valid labels, every length, determinism by seed, the easy option, broken fonts."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from device.contract import MAX_DIGITS, check_label
from trainer import canvas, fonts, paint, render
from trainer.skips import skip_counts
from trainer.sources import iter_samples


def take(n, *args, **kw):
    return list(itertools.islice(iter_samples(*args, **kw), n))


def test_rendered_samples_are_images_with_valid_labels_of_every_length():
    samples = take(400, "rendered", "train", 0)
    lengths = set()
    for image, label in samples:
        assert image.dtype == np.uint8 and image.ndim in (2, 3)
        h, w = image.shape[:2]
        assert 8 <= h <= 200 and w >= h * 0.8, (h, w)  # crops are about 1:1 .. 6:1 (then squeezed a little)
        assert w <= 7 * h, (h, w)
        lengths.add(len(check_label(label)))
    assert lengths == set(range(0, MAX_DIGITS + 1))


def test_same_seed_same_stream_other_seed_or_split_differs():
    a = take(20, "rendered", "train", 5)
    b = take(20, "rendered", "train", 5)
    assert [lbl for _, lbl in a] == [lbl for _, lbl in b]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, b))
    assert [lbl for _, lbl in take(20, "rendered", "train", 6)] != [lbl for _, lbl in a]
    assert [lbl for _, lbl in take(20, "rendered", "val", 5)] != [lbl for _, lbl in a]


def test_colour_option_paints_the_same_kind_of_crop_in_rgb():
    image, label = take(1, "rendered", "train", 3, colour=True)[0]
    assert image.ndim == 3 and image.shape[2] == 3
    grey, _ = take(1, "rendered", "train", 3)[0]
    assert grey.ndim == 2


def test_easy_rendering_is_clean_and_high_contrast():
    samples = take(60, "rendered", "train", 1, difficulty="easy")
    spreads = [np.percentile(img, 98) - np.percentile(img, 2) for img, lbl in samples if lbl]
    assert min(spreads) > 40
    assert len({len(lbl) for _, lbl in samples}) >= 6


def test_unknown_difficulty_or_style_is_refused():
    with pytest.raises(ValueError, match="difficulty"):
        next(iter_samples("rendered", "train", 0, difficulty="hard"))
    with pytest.raises(ValueError, match="style"):
        next(iter_samples("rendered", "train", 0, styles=("drum", "neon")))


def test_styles_option_keeps_to_the_chosen_looks(monkeypatch):
    painted = []
    for style, painter in list(paint.PAINTERS.items()):  # record which real painter drew each crop
        monkeypatch.setitem(paint.PAINTERS, style, lambda *a, _s=style, _p=painter: painted.append(_s) or _p(*a))
    drums = render.Renderer(styles=("drum",), empty_rate=0.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        drums.sample(rng)
    assert painted == ["drum"] * 5
    painted.clear()
    mixed = render.Renderer(empty_rate=0.0)
    for _ in range(40):
        mixed.sample(rng)
    assert set(painted) == set(render.STYLES)


@pytest.mark.parametrize("style", render.STYLES)
def test_every_style_draws_the_number_it_is_labelled_with(style):
    renderer = render.Renderer()
    rng = np.random.default_rng(0)
    image, label = renderer._draw(rng, "4071", style)
    assert label == "4071" and image.dtype == np.uint8
    assert np.ptp(image) > 30  # something was drawn


def test_rolling_wheel_shows_the_digit_the_label_names():
    glyphs = fonts.glyph_sets(fonts.EASY_FONTS)[0]
    rng = np.random.default_rng(0)
    still = canvas.layout(glyphs, "3", rng, cell_scale=1.2)
    early = canvas.layout(glyphs, "3", rng, cell_scale=1.2, roll=0.1)  # 3 just leaving: reads 3
    late = canvas.layout(glyphs, "3", rng, cell_scale=1.2, roll=0.95)  # 3 leaving, 4 nearly there: reads 4
    x0, y0, x1, y1 = still.cells[0]

    def distance(a, b):
        """Mean ink difference inside the wheel window, at the best vertical shift (the wheel moves)."""
        wa, wb = a.alpha[y0:y1, x0:x1], b.alpha[y0:y1, x0:x1]
        return min(np.abs(wa - np.roll(wb, dy, axis=0)).mean() for dy in range(-(y1 - y0), y1 - y0))

    three = canvas.layout(glyphs, "3", rng, cell_scale=1.2)
    four = canvas.layout(glyphs, "4", rng, cell_scale=1.2)
    assert distance(early, three) < distance(early, four)
    assert distance(late, four) < distance(late, three)


def test_a_broken_font_is_skipped_with_a_counted_warning(tmp_path: Path, caplog):
    bad = tmp_path / "Broken.ttf"
    bad.write_bytes(b"this is no font")
    before = skip_counts().get("font", 0)
    assert fonts.load_glyphs(bad) is None
    assert fonts.load_glyphs(tmp_path / "Missing.ttf") is None
    assert skip_counts()["font"] == before + 2


def test_the_crop_never_cuts_into_the_number_even_with_neighbours_and_overlap():
    glyphs = fonts.glyph_sets()
    rng = np.random.default_rng(0)
    for i in range(300):
        g = glyphs[i % len(glyphs)]
        lay = canvas.layout(g, render.random_label(rng), rng, spacing=rng.uniform(-0.12, 0.5),
                            neighbours=(True, True))
        x0, y0, x1, y1 = canvas.frame(lay, rng)
        bx0, by0, bx1, by1 = lay.box
        assert x0 <= bx0 and x1 >= bx1 and y0 <= by0 and y1 >= by1, (g.name, lay.box, (x0, y0, x1, y1))


def test_captions_hold_nothing_a_model_could_read_as_a_digit():
    lookalikes = set("0123456789lIOoSZBgqz")
    assert all(not (set(text) & lookalikes) for text in paint.UNIT_TEXTS)


def test_validation_fonts_are_held_out_of_training():
    """Val/test draw only font families that training never draws (issue 4: fonts held out)."""
    train = render.Renderer(split="train")
    val = render.Renderer(split="val")
    train_families = {g.family for pool in (train.text_fonts + train.segment_fonts) for g in pool}
    val_families = {g.family for pool in (val.text_fonts + val.segment_fonts) for g in pool}
    assert val_families and train_families
    assert not train_families & val_families


def test_a_turning_counter_is_read_by_the_rolling_rule_and_carries_turn_together():
    assert canvas.previous_value("2000") == "1999" and canvas.previous_value("000") == "999"
    assert canvas.carry_chain("1999") == 4 and canvas.carry_chain("1299") == 3 and canvas.carry_chain("4071") == 1
    rng = np.random.default_rng(0)
    assert not any(canvas.reads_arrived(0.5, rng) for _ in range(50))
    assert all(canvas.reads_arrived(0.8, rng) for _ in range(50))
    mid = [canvas.reads_arrived(0.65, rng) for _ in range(400)]
    assert 150 < sum(mid) < 250  # half-way wheels are labelled either way, half each
    renderer = render.Renderer(styles=("drum",), empty_rate=0.0)
    labels = [renderer.sample(rng)[1] for _ in range(400)]
    assert sum(lb.endswith("00") or lb.endswith("99") for lb in labels) > 20  # carries are common


def test_a_rolling_carry_shows_every_turning_wheel_between_two_digits():
    glyphs = fonts.glyph_sets(fonts.EASY_FONTS)[0]
    rng = np.random.default_rng  # the same seed each time: the same wheel pitch
    still = canvas.layout(glyphs, "19", rng(0), cell_scale=1.2)
    turning = canvas.layout(glyphs, "19", rng(0), cell_scale=1.2, roll=0.5, rolling=2)
    alone = canvas.layout(glyphs, "19", rng(0), cell_scale=1.2, roll=0.5, rolling=1)
    first = lambda lay: lay.alpha[:, lay.cells[0][0] : lay.cells[0][2]]  # noqa: E731
    assert np.abs(first(turning) - first(still)).mean() > 0.02  # the carried wheel moved
    assert np.abs(first(alone) - first(still)).mean() < 1e-6  # without a carry it stays put
