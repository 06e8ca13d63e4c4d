"""The registry of training data sources: one name -> one deterministic stream of (image, label).

Every source is a generator function ``(split, rng, **options)`` living in its own module; this module
only seeds it (from name, split and seed, so two sources or two splits never share random numbers)
and gives the trainer three ways in: ``iter_samples`` (raw crops), ``fixed_set`` (the first n crops
already prepared with the device's ``prepare_crop``, for validation and test sets) and ``iter_scenes``
(whole frames with the number's box, for the locator).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import zlib
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from device.contract import InputSpec, check_label, prepare_crop

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# name -> "module:function" of a generator (split, rng, **options) -> Iterator[(image, label)]
SOURCES = {
    "rendered": "trainer.render:iter_rendered",
    "mnist": "trainer.mnist_seq:iter_mnist",
    "meters": "trainer.meters:iter_meter_digits",
    "meter-strips": "trainer.meters:iter_meter_strips",
    "svhn": "trainer.svhn:iter_svhn",
    "framed": "trainer.framing:iter_framed",
}

Sample = tuple[np.ndarray, str]


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


def source_names() -> tuple[str, ...]:
    return tuple(SOURCES)


def make_rng(name: str, split: str, seed: int) -> np.random.Generator:
    """A generator seeded by (source, split, seed): stable across runs, machines and Python versions."""
    return np.random.default_rng([zlib.crc32(name.encode()), SPLITS.index(split), int(seed)])


def _check(name: str, split: str) -> Callable[..., Iterator[Sample]]:
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r}: want one of {', '.join(SOURCES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: want one of {', '.join(SPLITS)}")
    module, func = SOURCES[name].split(":")
    return getattr(importlib.import_module(module), func)


def iter_samples(name: str, split: str, seed: int, **options) -> Iterator[Sample]:
    """A deterministic stream of (image uint8 HxW or HxWx3 RGB, label '' or 1..8 digits) from one source."""
    generator = _check(name, split)
    return generator(split, make_rng(name, split, seed), **options)


def fixed_set(
    name: str, split: str, n: int, seed: int, spec: InputSpec = InputSpec(), **options
) -> tuple[np.ndarray, list[str]]:
    """The first n samples of a source prepared for the model: ``([n, H, W, 1] uint8, labels)``.

    Fewer than n come back when a finite source (meters val/test) runs out.
    """
    images, labels = [], []
    for image, label in itertools.islice(iter_samples(name, split, seed, **options), n):
        images.append(prepare_crop(image, spec))
        labels.append(check_label(label))
    if not images:
        return np.zeros((0, spec.height, spec.width, spec.channels), np.uint8), []
    return np.stack(images), labels


def iter_scenes(split: str, seed: int, size: tuple[int, int] = (480, 640), **options):
    """Whole frames (RGB uint8 [h, w, 3]) with a number composited in, its label and box (x, y, w, h) or None."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: want one of {', '.join(SPLITS)}")
    from trainer.scenes import iter_scene_frames

    return iter_scene_frames(split, make_rng("scenes", split, seed), size=size, **options)
