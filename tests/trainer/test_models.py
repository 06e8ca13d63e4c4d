"""The two architectures: contract-shaped named outputs, no recurrent ops, within the MAC budget."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from device.contract import MAX_DIGITS, NUM_CLASSES, InputSpec, head_of  # noqa: E402
from trainer.models import build_model, count_macs  # noqa: E402

MAC_BUDGET = 30_000_000


@pytest.mark.parametrize("architecture", ["length_digits", "ctc"])
def test_outputs_are_named_softmaxes_in_the_contract_shapes(architecture):
    model = build_model(architecture, width=0.5)
    assert head_of(model.output.keys()) == architecture
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 128, 1)).astype(np.float32)
    out = {k: np.asarray(v) for k, v in model(images, training=False).items()}
    if architecture == "ctc":
        assert out["ctc"].shape[0] == 3 and out["ctc"].shape[2] == NUM_CLASSES + 1
        assert out["ctc"].shape[1] >= 2 * MAX_DIGITS - 1  # room for 8 repeated digits with blanks between
    else:
        assert out["length"].shape == (3, MAX_DIGITS + 1)
        assert out["digits"].shape == (3, MAX_DIGITS, NUM_CLASSES + 1)
    for probs in out.values():
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("architecture", ["length_digits", "ctc"])
def test_full_size_models_fit_the_budget_and_have_no_recurrent_layers(architecture):
    model = build_model(architecture)
    assert count_macs(model) <= MAC_BUDGET
    assert model.count_params() < 1_000_000  # int8 weights stay under the 1 MB model limit
    kinds = {type(layer).__name__ for layer in model.layers}
    assert not kinds & {"LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN"}


def test_rescaling_is_inside_the_model():
    """Raw 0..255 pixels go in; scaling them by 1/255 outside would change the output."""
    model = build_model("ctc", width=0.25)
    x = np.full((1, 32, 128, 1), 200.0, np.float32)
    assert model.layers[1].name == "rescale"
    assert not np.allclose(np.asarray(model(x)["ctc"]), np.asarray(model(x / 255.0)["ctc"]))


def test_count_macs_of_a_known_model():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, (3, 3), padding="same")(inputs)  # 8*8*4 outputs * 3*3*2 = 4608
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)  # 256*5 = 1280
    assert count_macs(keras.Model(inputs, x)) == 4608 + 1280


def test_input_size_follows_the_spec():
    model = build_model("ctc", InputSpec(height=32, width=96), width=0.25)
    assert tuple(model.input.shape[1:]) == (32, 96, 1)
    assert model.output["ctc"].shape[1] == 24


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="lstm"):
        build_model("lstm")


def test_a_strided_stem_keeps_the_columns_and_drops_the_full_resolution_layer():
    """The first conv at stride 2 replaces conv + pool: same output columns, same weights, no layer at 40x160."""
    spec = InputSpec(height=40, width=160)
    pooled, strided = build_model("ctc", spec, width=0.75), build_model("ctc", spec, width=0.75, stem="strided")
    assert strided.output["ctc"].shape[1:] == pooled.output["ctc"].shape[1:] == (40, NUM_CLASSES + 1)
    assert strided.count_params() == pooled.count_params()
    assert "block1_pool" not in {layer.name for layer in strided.layers}
    assert strided.get_layer("block1_conv").output.shape[1:3] == (20, 80)
    assert count_macs(strided) < count_macs(pooled)
    wide = build_model("ctc", spec, width=0.75, stem="strided", stem_channels=24)
    assert wide.get_layer("block1_conv").output.shape[-1] == 24 and wide.get_layer("block2_conv").input.shape[-1] == 24
