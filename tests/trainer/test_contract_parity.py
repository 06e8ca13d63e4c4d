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
