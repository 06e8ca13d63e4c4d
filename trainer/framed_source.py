"""The ``framed`` source: another source's crops framed loosely by ``trainer.framing``.

Apart from the framing itself because it draws its crops through the source registry, which the scene
renderer (also a user of the framing) is part of.
"""

from __future__ import annotations

import numpy as np

from trainer.framing import MARGIN, frame_loosely
from trainer.sources import iter_samples, make_rng
from trainer.surroundings import FAMILIES, check_families


def iter_framed(split: str, rng: np.random.Generator, base: str = "rendered,meter-strips",
                families=FAMILIES, tight: bool = False, margin=MARGIN):
    """The ``framed`` source: crops of ``base`` sources (comma-separated, drawn in turn) framed loosely.

    ``tight=True`` gives the very same numbers without the framing (the same random stream), so the
    cost of loose framing is measured on identical numbers. ``families`` picks the clutter, e.g. one
    family alone for a leave-one-family-out test, or all but one for its training run. ``margin`` is the
    (low, high) range of each side's margin in digit heights (a located box is tighter than a user's ROI).
    """
    families = check_families(families if not isinstance(families, str) else families.split(","))
    lo, hi = (float(v) for v in margin)
    if not 0.0 <= lo <= hi <= 4.0:
        raise ValueError(f"framed margin {list(margin)}: want [low, high] digit heights with 0 <= low <= high <= 4")
    names = [b for b in base.split(",") if b]
    seed = int(rng.integers(2**31))
    streams = [iter_samples(name, split, seed) for name in names]
    frame_rng = make_rng("framed", split, seed)
    i = 0
    while True:
        try:
            img, label = next(streams[i % len(streams)])
        except StopIteration:
            return
        child = np.random.default_rng(frame_rng.integers(2**63))
        i += 1
        yield (img if tight else frame_loosely(img, child, families, digits=bool(label), margin=(lo, hi))), label
