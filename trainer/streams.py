"""What every data source shares: the splits, seeded random streams, passes over finite sets, and the
folders data is read from and extracted to.

Kept apart from the source registry (``trainer.sources``) so a source module can use these without
importing the registry that names it.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

SPLITS = ("train", "val", "test")


def shared_data_dir() -> Path:
    """The team's read-only data folder: $DIGITCAM_DATA, else ``../shared/data`` beside the project root."""
    env = os.environ.get("DIGITCAM_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def cache_dir() -> Path:
    """Where archives are extracted once (never inside the repository): $DIGITCAM_CACHE or ~/.cache/digitcam."""
    env = os.environ.get("DIGITCAM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "digitcam"


def passes(n: int, split: str, rng: np.random.Generator) -> Iterator[int]:
    """Indices into a finite real set: train reshuffles it forever; val and test go through it once."""
    while n > 0:
        yield from (rng.permutation(n) if split == "train" else range(n))
        if split != "train":
            return


def make_rng(name: str, split: str, seed: int) -> np.random.Generator:
    """A generator seeded by (source, split, seed): stable across runs, machines and Python versions."""
    return np.random.default_rng([zlib.crc32(name.encode()), SPLITS.index(split), int(seed)])
