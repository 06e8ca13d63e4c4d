"""The shard cache renders what the pipeline would feed, resumes, refuses other settings, and samples all."""

from __future__ import annotations

import numpy as np
import pytest

from device.contract import InputSpec
from trainer import shards


@pytest.fixture()
def small(monkeypatch):
    monkeypatch.setattr(shards, "SHARD_SIZE", 64)


def test_shards_render_resume_and_refresh(tmp_path, small):
    mix, options, spec = {"rendered": 1.0}, {"rendered": {"difficulty": "easy"}}, InputSpec()
    shards.render_shards(tmp_path, mix, options, 5, spec, 128, workers=1, progress=lambda _: None)
    x0, y0 = shards.shard_paths(tmp_path, 0)
    first = np.load(x0)
    assert first.shape == (64, spec.height, spec.width, 1) and first.dtype == np.uint8
    labels = np.load(y0)
    assert labels.shape == (64, 8) and ((labels >= -1) & (labels <= 9)).all()
    stamp = x0.stat().st_mtime_ns
    shards.render_shards(tmp_path, mix, options, 5, spec, 192, workers=1, progress=lambda _: None)
    assert x0.stat().st_mtime_ns == stamp  # resumed: the existing shard was not rendered again
    reader = shards.ShardReader(tmp_path, seed=0)
    assert reader.refresh() == 192
    x, y = reader.batch(100)
    assert x.shape == (100, spec.height, spec.width, 1) and y.shape == (100, 8)
    assert len({bytes(row) for row in y}) > 20  # drawn across shards, not one sample repeated
    with pytest.raises(ValueError, match="other settings"):
        shards.render_shards(tmp_path, {"rendered": 0.5, "mnist": 0.5}, {}, 5, spec, 64, workers=1)


def test_an_empty_cache_names_the_render_step(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cache shards.*digitcam train"):
        shards.ShardReader(tmp_path, seed=0)
