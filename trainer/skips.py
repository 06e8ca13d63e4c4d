"""Counted warnings for malformed inputs that the data sources skip instead of crashing a training run.

A broken font, a corrupt JPEG or an SVHN record without a box is logged once per kind, then again each
time its count reaches a power of ten, so a bad data set is visible in the log without flooding it.
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger(__name__)

_counts: Counter = Counter()


def skip(kind: str, detail: str) -> None:
    """Record one skipped input of ``kind`` (e.g. 'font', 'meter-image', 'svhn-record')."""
    _counts[kind] += 1
    n = _counts[kind]
    if n == 1:
        log.warning("skipped a malformed %s: %s (further ones are counted)", kind, detail)
    elif n >= 10 and str(n).strip("0") == "1":  # 10, 100, 1000, ...
        log.warning("skipped %d malformed %s inputs so far (latest: %s)", n, kind, detail)


def skip_counts() -> dict[str, int]:
    """How many inputs of each kind were skipped in this process."""
    return dict(_counts)
