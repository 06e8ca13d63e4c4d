"""Shared fixtures. Each area adds its fixtures in its own ``tests/<area>/conftest.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "configs" / "tiny.toml"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A real tiny recognizer, trained once per session (~1 min on 2 cores) and exported to full int8.

    It is trained by ``trainer.train`` from ``configs/tiny.toml`` on clean rendered numbers and exported
    by ``trainer.export`` (uint8 input, named outputs, manifest), so tests exercise the real path. It reads
    ``iter_samples("rendered", split, seed, difficulty="easy")`` images well and little else.
    Returns the ``.tflite`` path; its ``.json`` manifest lies beside it.
    """
    pytest.importorskip("tensorflow")
    from trainer.export import export_run
    from trainer.train import train
    from trainer.train_config import load_config

    base = tmp_path_factory.mktemp("tiny_model")
    run = train(load_config(TINY_CONFIG), base / "run")
    model = base / "tiny.tflite"
    export_run(run.path, model, version="test", parity=False)
    return model
