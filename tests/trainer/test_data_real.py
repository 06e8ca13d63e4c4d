"""The real-data sources: MNIST sequences, meter digits and strips (split by meter), SVHN format 1."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from device.contract import check_label
from tests.fixtures.data import real_data, require_full, sample_data  # noqa: F401 (fixtures)
from trainer import meters, mnist_seq, svhn
from trainer.skips import skip_counts
from trainer.sources import iter_samples

# Each real-data test runs on the committed samples (tests/fixtures) and on the full set where it exists.
FULL = "full"


def take(n, *args, **kw):
    return list(itertools.islice(iter_samples(*args, **kw), n))


def test_mnist_sequences_have_one_to_five_digits_and_are_seeded(real_data):
    require_full(real_data, "mnist")
    samples = take(60, "mnist", "train", 0)
    assert {len(check_label(lbl)) for _, lbl in samples} == {1, 2, 3, 4, 5}
    assert all(img.dtype == np.uint8 and img.ndim == 2 and img.shape[1] >= img.shape[0] for img, _ in samples)
    again = take(60, "mnist", "train", 0)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(samples, again))


def test_mnist_splits_use_disjoint_images(real_data):
    require_full(real_data, "mnist")
    train, _ = mnist_seq.load_split("train")
    val, _ = mnist_seq.load_split("val")
    test, _ = mnist_seq.load_split("test")
    assert (len(train), len(val) + len(test)) == ((60000, 10000) if real_data == FULL else (300, 100))
    val_set = {v.tobytes() for v in val[:500]}
    assert not val_set & {t.tobytes() for t in test}


# ---- meters -----------------------------------------------------------------------------------------


def test_the_reading_rule_labels_rolling_wheels_by_the_last_passed_digit():
    row = {"digit": "5", "fraction": "0.4", "class": "10", "source": "s"}
    assert meters.label_of(row) == ("5", True)
    assert meters.label_of({**row, "fraction": "0.6"}) is None  # ambiguous: left out
    assert meters.label_of({**row, "fraction": "0.7"}) is None
    assert meters.label_of({**row, "fraction": "0.9", "class": "6"}) == ("6", False)
    assert meters.label_of({"digit": "", "fraction": "", "class": "10", "source": "s"}) is None  # NaN


def test_no_meter_is_in_two_splits_and_each_split_has_a_fair_share(real_data):
    require_full(real_data, "meters")
    splits = {s: meters.crops_of_split(s) for s in ("train", "val", "test")}
    groups = {s: {meters.group_of(c.source) for c in crops} for s, crops in splits.items()}
    sources = {s: {c.source for c in crops} for s, crops in splits.items()}
    for a, b in itertools.combinations(splits, 2):
        assert not groups[a] & groups[b], (a, b)
        assert not sources[a] & sources[b], (a, b)
    total = sum(len(c) for c in splits.values())
    assert total == len(meters.load_crops())
    for s in ("val", "test"):
        assert 0.08 * total < len(splits[s]) < 0.25 * total
        assert len(groups[s]) >= 3
    assert len(groups["train"]) >= (10 if real_data == FULL else 3)


def test_meter_val_is_finite_deterministic_and_rolling_comes_apart(real_data):
    require_full(real_data, "meters")
    clean = take(10**6, "meters", "val", 0)
    assert len(clean) == sum(1 for c in meters.crops_of_split("val") if not c.rolling)
    assert clean[0][1] == take(1, "meters", "val", 99)[0][1]  # the order does not depend on the seed
    ordered = meters.eval_order([c for c in meters.crops_of_split("val") if not c.rolling])
    assert [lbl for _, lbl in clean] == [c.label for c in ordered]
    # the first 200 (what a fixed_set takes) already hold every one of the split's meter groups
    assert {meters.group_of(c.source) for c in ordered[:200]} == {meters.group_of(c.source) for c in ordered}
    rolling = take(10**6, "meters", "val", 0, kind="rolling")
    assert 0 < len(rolling) < len(clean) * 2
    assert all(len(lbl) == 1 and lbl.isdigit() for _, lbl in clean + rolling)


def test_meter_train_is_endless_and_augmented(real_data):
    require_full(real_data, "meters")
    samples = take(30, "meters", "train", 0)
    assert len(samples) == 30 and all(img.ndim == 3 for img, _ in samples)
    assert len({lbl for _, lbl in samples}) > 3


def test_meter_strips_are_three_to_eight_digits_from_one_meter(real_data):
    require_full(real_data, "meters")
    strips = take(40, "meter-strips", "train", 0)
    assert {len(lbl) for _, lbl in strips} <= set(range(3, 9))
    assert len({len(lbl) for _, lbl in strips}) >= 4
    for img, _ in strips:
        assert img.shape[1] > img.shape[0] and img.shape[1] <= 6.5 * img.shape[0]
    val = take(5, "meter-strips", "val", 0, limit=3)
    assert len(val) == 3 and [lbl for _, lbl in val] == [lbl for _, lbl in take(3, "meter-strips", "val", 0)]


def test_a_corrupt_meter_image_is_skipped_with_a_counted_warning(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    before = skip_counts().get("meter-image", 0)
    assert meters.read_crop(meters.MeterCrop(bad, "3", "x", False)) is None
    assert skip_counts()["meter-image"] == before + 1


# ---- SVHN -------------------------------------------------------------------------------------------


def test_svhn_reader_handles_values_references_and_skips_malformed(svhn_dir):
    before = skip_counts().get("svhn-record", 0)
    records = svhn.read_digit_struct(svhn_dir / "test" / "digitStruct.mat")
    assert [r.label for r in records] == ["10", "7", "429", "5"]
    assert records[0].box == (20.0, 10.0, 50.0, 38.0)
    assert skip_counts()["svhn-record"] == before + 1  # 5.png has no label field


def test_svhn_source_crops_every_readable_record(svhn_dir):
    before = skip_counts().get("svhn-image", 0)
    samples = take(10, "svhn", "test", 0, svhn_dir=svhn_dir)
    assert [lbl for _, lbl in samples] == ["10", "7", "429"]  # 4.png is corrupt
    assert skip_counts()["svhn-image"] == before + 1
    img = samples[0][0]
    assert img.ndim == 3 and img.shape[0] == pytest.approx(28 * 1.3, abs=2)  # union box expanded by 30 %
    train = take(8, "svhn", "train", 0, svhn_dir=svhn_dir)
    assert len(train) == 8  # endless


def test_svhn_crop_is_the_expanded_union_box():
    img = np.zeros((100, 100, 3), np.uint8)
    crop = svhn.goodfellow_crop(img, (40, 40, 60, 60), None)
    assert crop.shape[:2] == (26, 26)
    sub = svhn.goodfellow_crop(img, (40, 40, 60, 60), np.random.default_rng(0))
    assert sub.shape[0] <= 26 and sub.shape[1] <= 26 and sub.shape[0] >= 20


def test_svhn_without_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="svhn_dir"):
        next(iter_samples("svhn", "train", 0))
    with pytest.raises(FileNotFoundError, match="digitStruct.mat"):
        next(iter_samples("svhn", "train", 0, svhn_dir=tmp_path))


def test_scenes_with_strips_paste_real_meter_strips_of_the_split(real_data):
    """``strips=1`` scenes carry meter strips (3-8 wheels) as their number, boxed inside the frame."""
    require_full(real_data, "meters")
    from trainer.sources import iter_scenes

    scenes = list(itertools.islice(iter_scenes("val", 3, size=(120, 160), strips=1.0), 30))
    with_number = [(label, box) for _, label, box in scenes if box is not None]
    assert len(with_number) >= 20
    for label, (x, y, w, h) in with_number:
        assert 3 <= len(label) <= 8 and label.isdigit()  # a strip: 3-8 wheels (rendered numbers have 1-8 digits)
        assert x >= 0 and y >= 0 and x + w <= 160 and y + h <= 120
