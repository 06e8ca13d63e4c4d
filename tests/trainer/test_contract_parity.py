"""Train and serve must see identical pixels: the trainer's tf.data batches equal what the device prepares."""

import itertools

import numpy as np
import pytest

from device.contract import InputSpec, prepare_batch
from device.recognize import Recognizer
from tests.fixtures.data import data_for, sample_data  # noqa: F401 (fixture)

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("source", ["rendered", "mnist"])
def test_trainer_batches_equal_device_preprocessing(source, request):
    from trainer.pipeline import make_dataset
    from trainer.sources import iter_samples

    if source == "mnist":
        data_for("mnist", request)  # the full MNIST where it is, else the committed sample

    spec = InputSpec()
    raw = [img for img, _ in itertools.islice(iter_samples(source, "val", 7), 12)]
    images, labels = next(iter(make_dataset({source: 1.0}, "val", 7, 12, spec)))
    assert images.dtype == tf.uint8
    np.testing.assert_array_equal(images.numpy(), prepare_batch(raw, spec))
    assert labels.shape == (12, 8)


def test_recognizer_prepares_with_the_contract(tiny_model):
    """The device wrapper's own input spec is the contract's, read from the model itself."""
    rec = Recognizer(tiny_model)
    assert rec.spec == InputSpec()


GOLDEN = "tests/fixtures/contract_golden.npz"  # raw crops and their model inputs, stored 2026-12-02


def test_train_and_serve_match_the_stored_golden_inputs():
    """Both sides against stored arrays, not against each other: a change to preprocessing (the
    contract's `gray-letterbox-stretch-v1`) fails here even if the trainer and the device change alike.
    The crops cover grey, RGB, RGBA, 16-bit, float and low-contrast inputs of many shapes."""
    from pathlib import Path

    from trainer.pipeline import encode_sample

    golden = np.load(Path(__file__).resolve().parents[2] / GOLDEN)
    names = sorted(k[len("raw_"):] for k in golden.files if k.startswith("raw_"))
    assert len(names) == 6
    for name in names:
        raw, want = golden[f"raw_{name}"], golden[f"prepared_{name}"]
        np.testing.assert_array_equal(prepare_batch([raw], InputSpec())[0], want, err_msg=f"device: {name}")
        image, _ = encode_sample(raw, "12", InputSpec())
        np.testing.assert_array_equal(image, want, err_msg=f"trainer: {name}")
