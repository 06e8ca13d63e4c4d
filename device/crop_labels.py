"""Which collected crops get a label: only those the values accepted before and after them agree on.

``Collector`` (one per collecting sensor, on the frame thread, cheap) holds the crops seen while value A
was accepted. They are labelled A only when the next accepted value B follows A as a normal step (no hold,
no doubt flag) and A itself was accepted that way. The crops of the last ``window + stable_reads`` frames
before B, and of the last ``tail_share`` of the time A was accepted, are left out: the wheel was turning
and the meter logic accepts B only some seconds after the wheel shows it, longer when the wheel turns
slowly (the share scales with the meter's own speed). Any crop that already read B's digits where A and
B differ is left out too. In ``number`` mode a crop is labelled once its value stayed accepted ``2 * window`` frames longer.
Everything else is dropped, except crops below ``min_confidence``, which are kept unlabelled for review.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.contract import Reading
from device.crop_files import AUTO, REVIEW

SAMPLE_EVERY_S = 1.0  # a confident crop at most this often per sensor (frames a second apart look alike)
MAX_PENDING = 600  # crops held in memory per sensor until their label is known (~2.4 MB)
OK_FLAGS = {"wrapped", "refresh"}  # flags of a normal step; any other flag is a doubt
# Of the time a value stayed accepted, the last share whose crops get no label. Measured with
# bench/adapt_replay.py on the held-out meters (docs/ADAPT.md): the wheel is 80 % over (it shows the next
# digit) before the meter accepts the next value in up to ~half of the value's time.
TAIL_SHARE = 0.5


@dataclass
class _Pending:
    frame: int
    at: float
    image: np.ndarray
    reading: Reading


def _ok(decision) -> bool:
    """Whether an acceptance was a normal step: no hold, no doubt (wrap and refresh are normal)."""
    return decision is not None and not (set(decision.flags) - OK_FLAGS)


class Collector:
    """One sensor's labelling rule (see the module doc). ``observe`` every frame; it returns the crops whose
    label is now known, as ``(image, label or None, kind, at, reading)``, for the writer."""

    def __init__(self, mode: str = "meter", window: int = 5, stable_reads: int = 3, min_confidence: float = 0.5,
                 sample_every_s: float = SAMPLE_EVERY_S, max_pending: int = MAX_PENDING,
                 tail_share: float = TAIL_SHARE):
        self.mode, self.window, self.stable_reads, self.tail_share = mode, window, stable_reads, tail_share
        self.min_confidence, self.sample_every_s, self.max_pending = min_confidence, sample_every_s, max_pending
        self.value: str | None = None  # the accepted value the pending crops were seen under
        self.ok = False  # whether that value was accepted as a normal step
        self.since = float("-inf")  # when it was accepted
        self.pending: list[_Pending] = []
        self._sampled_at = float("-inf")

    def observe(self, frame_no: int, at: float, reading: Reading, value: str | None, decision,
                image_of) -> list[tuple]:
        """One frame: ``value`` is the smoother's accepted value after this reading, ``decision`` what
        its update returned; ``image_of()`` makes the prepared crop (called only when it is kept)."""
        out: list[tuple] = []
        if value != self.value:
            out += self._resolve(value, frame_no, at) if (self.ok and _ok(decision) and self.value is not None) \
                else self._review(self.pending)
            self.pending = []
            self.value, self.ok, self.since = value, _ok(decision), at
        elif self.mode == "number" and self.ok and self.value is not None:
            ripe = [p for p in self.pending if p.frame <= frame_no - 2 * self.window]
            if ripe:
                self.pending = self.pending[len(ripe):]
                out += [(p.image, self.value, AUTO, p.at, p.reading) for p in ripe]
        unsure = reading.value is None or reading.confidence < self.min_confidence
        if unsure or at - self._sampled_at >= self.sample_every_s:
            if not unsure:
                self._sampled_at = at
            self.pending.append(_Pending(frame_no, at, image_of(), reading))
            if len(self.pending) > self.max_pending:  # thin the older half: keep coverage, bound memory
                half = len(self.pending) // 2
                self.pending = self.pending[:half:2] + self.pending[half:]
        return out

    def _resolve(self, new: str, frame_no: int, at: float) -> list[tuple]:
        """The crops seen under the old value, now confirmed by a normal step to ``new`` at time ``at``."""
        old = self.value
        tail = frame_no - (self.window + self.stable_reads)
        tail_at = at - self.tail_share * (at - self.since)
        changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b] if len(old) == len(new) else None
        out, left = [], []
        for p in self.pending:
            if p.frame > tail or p.at > tail_at or self._reads_new(p.reading, new, changed):
                left.append(p)
            else:
                out.append((p.image, old, AUTO, p.at, p.reading))
        return out + self._review(left)

    def _reads_new(self, reading: Reading, new: str, changed) -> bool:
        """Whether this crop already showed the next value where the two differ (the wheel had turned)."""
        if reading.value is None or not changed or len(reading.digits) != len(new):
            return reading.value == new
        return any(reading.digits[i].digit == new[i] for i in changed)

    def _review(self, pending) -> list[tuple]:
        return [(p.image, None, REVIEW, p.at, p.reading) for p in pending
                if p.reading.value is None or p.reading.confidence < self.min_confidence]
