"""From noisy per-frame readings to a value worth publishing.

A value is *stable* when the current reading and at least k-1 others of the last n reads agree, each
above a confidence threshold. Only a change of the stable value is published.

``meter`` mode adds plausibility: a meter does not run backwards and not faster than a configured rate.
An implausible value is held back, but never forever: when it stays stable for ``accept_after_s`` it is
accepted with flags saying why it was doubtful (a replaced meter, a rollover, a wrong rate setting),
so the published value cannot get stuck on an old reading.

That whole-string meter check is kept for comparison (``bench/meter_replay.py``); a sensor with
``mode = "meter"`` gets the digit-wise ``device.meter.Meter`` from ``Smoother.from_config``.
"""

from __future__ import annotations

import logging
from collections import deque

from device.contract import Reading
from device.meter import ACCEPTED_AFTER_HOLD, DECREASED, RATE_EXCEEDED, Decision, Meter
from device.meter_store import MeterStore

log = logging.getLogger(__name__)

__all__ = ["ACCEPTED_AFTER_HOLD", "DECREASED", "RATE_EXCEEDED", "Decision", "Smoother"]


class Smoother:
    """Stable-value filter for one sensor; feed it every reading with its time in seconds."""

    def __init__(self, stable_reads: int = 3, window: int = 5, min_confidence: float = 0.5, mode: str = "number",
                 max_rate_per_hour: float = 0.0, accept_after_s: float = 600.0):
        if not 1 <= stable_reads <= window:
            raise ValueError(f"want 1 <= stable_reads <= window, not {stable_reads} of {window}")
        if mode not in ("number", "meter"):
            raise ValueError(f"unknown mode {mode!r}")
        self.stable_reads = stable_reads
        self.min_confidence = min_confidence
        self.mode = mode
        self.max_rate_per_hour = max_rate_per_hour
        self.accept_after_s = accept_after_s
        self._recent: deque = deque(maxlen=window)
        self.value: str | None = None  # the last accepted value
        self._accepted_at = 0.0
        self._held: str | None = None  # an implausible stable value waiting out accept_after_s
        self._held_since = 0.0
        self._held_flags: tuple = ()

    @classmethod
    def from_config(cls, sensor, store: MeterStore | None = None) -> "Smoother | Meter":
        """The smoother a configured sensor needs: a digit-wise Meter (with its stored value) for meters."""
        if sensor.mode == "meter":
            return Meter.from_config(sensor, store)
        return cls(stable_reads=sensor.stable_reads, window=sensor.window, min_confidence=sensor.min_confidence,
                   mode=sensor.mode, max_rate_per_hour=sensor.max_rate_per_hour,
                   accept_after_s=sensor.accept_after_s)

    def update(self, reading: Reading, now: float) -> Decision | None:
        """Record one reading; return a Decision when the published value should change."""
        value = reading.value if reading.confidence >= self.min_confidence else None
        self._recent.append(value)
        if value is None or value == self.value:
            if value is not None:
                self._held = None  # the accepted value is back: the doubtful one was a glitch
            return None
        if self._recent.count(value) < self.stable_reads:
            return None
        if self.mode == "meter" and self.value is not None:
            doubts = self._doubts(value, now)
            if doubts:
                return self._hold(reading, value, doubts, now)
        return self._accept(reading, value, now, ())

    def _doubts(self, value: str, now: float) -> tuple:
        """Why a meter value is implausible after the accepted one; empty when it is plausible."""
        new, old = int(value), int(self.value)
        if new < old:
            return (DECREASED,)
        if self.max_rate_per_hour > 0:
            hours = max(now - self._accepted_at, 1e-9) / 3600.0
            if (new - old) / hours > self.max_rate_per_hour:
                return (RATE_EXCEEDED,)
        return ()

    def _hold(self, reading: Reading, value: str, doubts: tuple, now: float) -> Decision | None:
        if self._held != value:
            self._held, self._held_since, self._held_flags = value, now, doubts
            log.info("meter value %s held back after %s: %s; accepted if it stays for %.0f s",
                     value, self.value, ", ".join(doubts), self.accept_after_s)
            return None
        if now - self._held_since < self.accept_after_s:
            return None
        log.warning("meter value %s accepted after %.0f s despite %s (was %s)", value, now - self._held_since,
                    ", ".join(self._held_flags), self.value)
        return self._accept(reading, value, now, self._held_flags + (ACCEPTED_AFTER_HOLD,))

    def _accept(self, reading: Reading, value: str, now: float, flags: tuple) -> Decision:
        self.value = value
        self._accepted_at = now
        self._held = None
        return Decision(reading, flags)
