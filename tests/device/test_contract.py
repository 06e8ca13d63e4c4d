"""The model contract: preprocessing of any crop and decoding of both heads."""

import numpy as np
import pytest

from device import contract
from device.contract import InputSpec, decode_ctc, decode_length_digits, decode_outputs, prepare_crop


def _number_like(h=40, w=100, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 200, np.uint8)
    img[10:30, 20:80] = rng.integers(0, 60, (20, 60, 3))
    return img


@pytest.mark.parametrize("shape,dtype", [
    ((40, 100), np.uint8), ((40, 100, 1), np.uint8), ((40, 100, 3), np.uint8), ((40, 100, 4), np.uint8),
    ((40, 100, 3), np.uint16), ((40, 100), np.float32), ((1, 1), np.uint8), ((1, 10000), np.uint8),
    ((5000, 3), np.uint8),
])
def test_prepare_crop_gives_contract_tensor_for_any_image(shape, dtype):
    rng = np.random.default_rng(1)
    hi = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    img = (rng.random(shape) * hi).astype(dtype)
    out = prepare_crop(img)
    assert out.shape == (contract.INPUT_HEIGHT, contract.INPUT_WIDTH, 1)
    assert out.dtype == np.uint8


def test_rgb_and_bgr_give_the_same_input():
    img = _number_like()
    img[..., 0] = 30  # a strong colour cast on one channel only
    assert np.array_equal(prepare_crop(img), prepare_crop(img[..., ::-1]))


def test_letterbox_keeps_aspect_and_centres():
    img = np.zeros((32, 32), np.uint8)
    img[8:24, 8:24] = 255
    out = prepare_crop(img)[:, :, 0]
    cols = np.where(out.max(axis=0) > 128)[0]
    # a square crop fills 32 of 128 columns, centred
    assert abs((cols.min() + cols.max()) / 2 - 63.5) < 2
    assert 14 <= len(cols) <= 18


def test_contrast_stretch_normalises_dim_crops():
    img = _number_like()
    dim = (img.astype(np.float32) * 0.25 + 20).astype(np.uint8)
    a, b = prepare_crop(img).astype(int), prepare_crop(dim).astype(int)
    assert np.abs(a - b).mean() < 12
    assert b.max() - b.min() > 200


def test_flat_crop_is_not_amplified_into_noise():
    rng = np.random.default_rng(0)
    flat = (128 + rng.integers(-2, 3, (40, 100))).astype(np.uint8)
    out = prepare_crop(flat)
    assert int(out.max()) - int(out.min()) <= 5


def test_custom_input_size():
    out = prepare_crop(_number_like(), InputSpec(height=24, width=96))
    assert out.shape == (24, 96, 1)


@pytest.mark.parametrize("bad", ["123456789", "12a", "-1", " 1", "١٢"])
def test_bad_labels_are_refused(bad):
    with pytest.raises(ValueError):
        contract.encode_length_digits(bad)


def test_label_encoders():
    n, pos = contract.encode_length_digits("2043")
    assert n == 4 and pos.tolist() == [2, 0, 4, 3] + [contract.BLANK] * 4
    assert contract.encode_ctc("").tolist() == [-1] * 8
    assert contract.encode_ctc("77").tolist()[:3] == [7, 7, -1]


def _onehot(idx, n, p=0.9):
    v = np.full(n, (1 - p) / (n - 1))
    v[idx] = p
    return v


def test_decode_length_digits():
    length = _onehot(3, 9, 0.8)
    digits = np.stack([_onehot(d, 11, 0.9) for d in [4, 0, 7, 10, 10, 10, 10, 10]])
    r = decode_length_digits(length, digits)
    assert r.value == "407"
    assert [d.digit for d in r.digits] == ["4", "0", "7"]
    assert r.confidence == pytest.approx(0.8 * 0.9 ** 3)


def test_decode_length_zero_is_no_number():
    r = decode_length_digits(_onehot(0, 9, 0.95), np.stack([_onehot(10, 11)] * 8))
    assert r.value is None and r.digits == [] and r.confidence == pytest.approx(0.95)


def test_decode_ctc_collapses_repeats_and_keeps_blank_separated_doubles():
    b = contract.BLANK
    path = [b, 1, 1, b, 1, b, 2, 2, 2, b, b, 0, b]
    probs = np.stack([_onehot(c, 11, 0.9) for c in path])
    probs[2] = _onehot(1, 11, 0.99)
    r = decode_ctc(probs)
    assert r.value == "1120"
    assert r.digits[0].confidence == pytest.approx(0.99 - 0.01 / 10)  # its best column less the runner-up
    assert r.confidence == pytest.approx(0.9 * 0.99 * 0.9 ** 3)


def test_a_digit_split_between_two_classes_says_rolling_but_the_reading_keeps_its_confidence():
    b = contract.BLANK
    probs = np.stack([_onehot(c, 11, 0.95) for c in [b, 4, b, 6, b]])
    probs[3] = 0.005
    probs[3, 6], probs[3, 7] = 0.52, 0.44  # a wheel half-way from 6 to 7
    r = decode_ctc(probs)
    assert r.value == "46"
    assert r.digits[0].confidence == pytest.approx(0.95 - 0.005)
    assert r.digits[1].confidence == pytest.approx(0.52 - 0.44)
    assert r.confidence == pytest.approx(0.95 * 0.95 * 0.52)  # weakest blank, then each digit's best column


def test_decode_ctc_all_blank_is_no_number():
    r = decode_ctc(np.stack([_onehot(contract.BLANK, 11, 0.97)] * 32))
    assert r.value is None and r.confidence == pytest.approx(0.97)


def test_decode_outputs_dispatches_by_name_and_refuses_unknown_heads():
    probs = np.stack([_onehot(5, 11)] * 4)[None]
    assert decode_outputs({"ctc": probs})[0].value == "5"
    with pytest.raises(ValueError, match="neither head"):
        decode_outputs({"logits": probs})


def test_fast_percentiles_equal_numpy():
    rng = np.random.default_rng(3)
    for _ in range(300):
        h, w = rng.integers(1, 60, 2)
        img = (rng.integers(0, 256, (h, w)) // rng.integers(1, 50)).astype(np.uint8)
        for got, want in zip(contract._percentiles_u8(img, (2, 50, 98)), np.percentile(img, (2, 50, 98))):
            assert got == want and type(got) is type(want)


def test_integer_grey_equals_truncated_channel_mean():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    np.testing.assert_array_equal(contract.to_gray(img), img.mean(axis=2).astype(np.uint8))
