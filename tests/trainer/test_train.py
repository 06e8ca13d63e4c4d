"""Training: the config rejects typos, targets match the contract, runs resume where they stopped."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from device.contract import BLANK, encode_ctc, encode_length_digits  # noqa: E402
from device.errors import ConfigError  # noqa: E402
from trainer.train import ctc_loss, learning_rate, train  # noqa: E402
from trainer.train_data import head_targets, training_dataset  # noqa: E402
from trainer.train_config import config_from_dict, load_config  # noqa: E402

SMALL = {
    "name": "small",
    "seed": 5,
    "data": {"mix": {"rendered": 1.0}, "options": {"rendered": {"difficulty": "easy"}},
             "val_sets": ["rendered"], "val_size": 16},
    "model": {"architecture": "ctc", "width": 0.25},
    "schedule": {"batch_size": 8, "steps_per_epoch": 3, "epochs": 2},
    "augment": {"invert": 0.5, "shift": 1, "noise": 2.0},
}


def test_unknown_keys_and_bad_types_are_named(tmp_path):
    with pytest.raises(ConfigError, match="schedule: unknown key 'epochz'"):
        config_from_dict({"name": "x", "schedule": {"epochz": 3}})
    with pytest.raises(ConfigError, match="unknown key 'modle'"):
        config_from_dict({"name": "x", "modle": {}})
    with pytest.raises(ConfigError, match="schedule.batch_size"):
        config_from_dict({"name": "x", "schedule": {"batch_size": "64"}})
    with pytest.raises(ConfigError, match="model.architecture"):
        config_from_dict({"name": "x", "model": {"architecture": "rnn"}})
    with pytest.raises(ConfigError, match="model.stem: 'conv' is not one of pool, strided"):
        config_from_dict({"name": "x", "model": {"stem": "conv"}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nmix = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_every_committed_config_loads():
    from tests.conftest import REPO

    configs = sorted((REPO / "configs").rglob("*.toml"))
    assert configs
    for path in configs:
        assert load_config(path).name


def test_head_targets_agree_with_the_contract_encoders():
    labels = ["4071", "", "12345678", "9"]
    padded = tf.constant(np.stack([encode_ctc(lab) for lab in labels]))
    ld = head_targets(padded, "length_digits")
    for i, lab in enumerate(labels):
        length, positions = encode_length_digits(lab)
        assert int(ld["length"][i]) == length
        np.testing.assert_array_equal(ld["digits"][i].numpy(), positions)
    np.testing.assert_array_equal(head_targets(padded, "ctc")["ctc"].numpy(), padded.numpy())
    assert BLANK == 10


def test_ctc_loss_prefers_the_right_reading():
    steps = 8
    right = np.full((1, steps, 11), 1e-4, np.float32)
    for t, cls in enumerate([3, 10, 3, 10, 7, 10, 10, 10]):  # "337" with blanks between
        right[0, t, cls] = 1.0
    right /= right.sum(-1, keepdims=True)
    wrong = np.roll(right, 1, axis=2)
    target = tf.constant([encode_ctc("337")])
    assert float(ctc_loss(target, right)[0]) < 0.1 < float(ctc_loss(target, wrong)[0])


def test_learning_rate_warms_up_then_decays():
    config = config_from_dict({"name": "x", "schedule": {"epochs": 10, "learning_rate": 1.0, "warmup_epochs": 1}})
    rates = [learning_rate(e, config) for e in range(10)]
    assert rates[0] < rates[1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[1:], rates[2:]))
    assert rates[-1] >= config.schedule.min_lr_fraction


def test_the_training_stream_is_deterministic_per_seed():
    config = config_from_dict(SMALL)
    first = [next(iter(training_dataset(config, seed=11)))[0].numpy() for _ in range(2)]
    other = next(iter(training_dataset(config, seed=12)))[0].numpy()
    assert first[0].shape == (8, 32, 128, 1) and first[0].dtype == np.float32
    # The sources and the mix are seeded; the augmentation draws from TF's global seed.
    raw = [next(iter(training_dataset(config_from_dict({**SMALL, "augment": {}}), seed=11)))[0].numpy()
           for _ in range(2)]
    np.testing.assert_array_equal(raw[0], raw[1])
    assert not np.array_equal(first[0], other)


def test_a_run_checkpoints_and_resumes_where_it_stopped(tmp_path):
    config = config_from_dict(SMALL)
    run = train(config, tmp_path / "run")
    state = run.state
    assert state["epoch"] == 2 and (tmp_path / "run" / "best.keras").is_file()
    longer = config_from_dict({**SMALL, "schedule": {**SMALL["schedule"], "epochs": 3}})
    run = train(longer, tmp_path / "run")
    assert run.state["epoch"] == 3
    assert run.state["samples_seen"] == 3 * 3 * 8
    with open(tmp_path / "run" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # resumed at epoch 3, not restarted
    assert "val_rendered" in rows[0] and "val_score" in rows[0]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["schedule"]["epochs"] == 3
    assert any((tmp_path / "run" / "tb").rglob("*tfevents*"))
    other_model = config_from_dict({**SMALL, "model": {"architecture": "length_digits", "width": 0.25}})
    with pytest.raises(ConfigError, match="--fresh"):
        train(other_model, tmp_path / "run")


def test_a_run_can_start_from_a_trained_models_weights(tmp_path):
    from trainer.models import build_model
    from trainer.train import warm_start

    config = config_from_dict(SMALL)
    trained = build_model("ctc", config.spec, width=0.25)
    trained.save(tmp_path / "trained.keras")
    fresh = build_model("ctc", config.spec, width=0.25)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), trained.get_weights()))
    warm_start(fresh, tmp_path / "trained.keras")
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), trained.get_weights()))
    with pytest.raises(ConfigError, match="other layers"):
        warm_start(build_model("ctc", config.spec, width=0.5), tmp_path / "trained.keras")
    with pytest.raises(ConfigError, match="no model at"):
        warm_start(fresh, tmp_path / "missing.keras")
