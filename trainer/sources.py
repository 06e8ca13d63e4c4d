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
from typing import Callable, Iterator

import numpy as np

from device.contract import InputSpec, check_label, prepare_crop
from trainer.streams import SPLITS, make_rng

log = logging.getLogger(__name__)

# name -> "module:function" of a generator (split, rng, **options) -> Iterator[(image, label)]
SOURCES = {
    "rendered": "trainer.render:iter_rendered",
    "mnist": "trainer.mnist_seq:iter_mnist",
    "meters": "trainer.meters:iter_meter_digits",
    "meter-strips": "trainer.meters:iter_meter_strips",
    "svhn": "trainer.svhn:iter_svhn",
    "framed": "trainer.framed_source:iter_framed",
    "meter-midroll": "trainer.meters:iter_midroll_digits",
}

Sample = tuple[np.ndarray, str]








def source_names() -> tuple[str, ...]:
    return tuple(SOURCES)




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
