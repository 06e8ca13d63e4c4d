"""A meter's wheels read one by one: each wheel's window of confident digits, and the candidate value.

Each wheel keeps its own window of confident reads; a wheel is stable when ``stable_reads`` of its last
``window`` reads agree, and a wheel that changes must have been read with ``step_confidence`` on average
(half-way to its next digit, a wheel is often read as that digit, unsurely). A wheel without a stable digit
(mid-roll: low per-digit confidence) takes its value from the wheels below it and the last accepted value:
the accepted digit, plus one when the wheels below have rolled over since. It is never guessed. Whether a
candidate may be published is decided by ``device/meter.py``.
"""

from __future__ import annotations

from collections import deque

from device.contract import DigitReading, Reading


class Wheel:
    """One wheel's recent confident digits (None where a read was missing or unsure)."""

    def __init__(self, window: int):
        self.reads: deque = deque(maxlen=window)

    def stable(self, stable_reads: int) -> tuple[str, float] | None:
        """(digit, mean confidence) read at least ``stable_reads`` times in the window; the latest wins a tie."""
        counts: dict = {}
        for item in self.reads:
            if item is not None:
                n, total = counts.get(item[0], (0, 0.0))
                counts[item[0]] = (n + 1, total + item[1])
        best = None
        for item in reversed(self.reads):
            if item is None:
                continue
            n, total = counts[item[0]]
            if n >= stable_reads and (best is None or n > best[1]):
                best = (item[0], n, total / n)
        return None if best is None else (best[0], best[2])


class Wheels:
    """All wheels of one meter, fed one reading per frame; forgotten after a gap in the frames."""

    def __init__(self, window: int, stable_reads: int, min_confidence: float):
        self.window, self.stable_reads, self.min_confidence = window, stable_reads, min_confidence
        self.wheels: list[Wheel] = []
        self._last_at: float | None = None  # time of the last reading, and the usual gap between readings
        self._gap = 0.0

    def clear(self) -> None:
        self.wheels = []

    def forget_after_a_gap(self, now: float) -> None:
        """Reads from before a camera outage or a pause say nothing about the wheels now: drop them."""
        if self._last_at is not None:
            gap = now - self._last_at
            if self._gap == 0.0:
                self._gap = gap  # the first gap: how often frames come
            elif gap > max(5.0 * self._gap, 2.0):
                self.wheels = []
            else:
                self._gap = 0.9 * self._gap + 0.1 * gap
        self._last_at = now

    def width(self, reading: Reading, digits: int, value: str | None) -> int | None:
        """How many wheels: ``digits`` if configured, else the accepted value's length, else this reading's."""
        if digits:
            return digits
        if value is not None:
            return len(value)
        return len(reading.digits) if reading.value else (len(self.wheels) or None)

    def fuse(self, reading: Reading, width: int, fixed: bool, accepted: str | None) -> tuple[str, list, int] | None:
        """(value, [(digit, confidence or None)], wheels read) of this frame's candidate from the wheels'
        windows, or None while one cannot be formed. ``fixed``: the width is known (configured or accepted);
        ``accepted``: the value an unsure wheel may be inferred from, or None."""
        if self.wheels and len(self.wheels) != width and not fixed:
            if any(any(w.reads) for w in self.wheels):
                width = len(self.wheels)  # a misread of another length; the wheels seen so far stay
        if len(self.wheels) != width:
            self.wheels = [Wheel(self.window) for _ in range(width)]
        usable = reading.value is not None and len(reading.digits) == width and len(reading.value) == width
        for i, wheel in enumerate(self.wheels):
            d = reading.digits[i] if usable else None
            wheel.reads.append((d.digit, float(d.confidence)) if d is not None and d.confidence >= self.min_confidence
                               else None)
        out: list = [None] * width
        seen = 0
        for i in range(width - 1, -1, -1):  # lowest wheel first: an unsure wheel needs the ones below it
            stable = self.wheels[i].stable(self.stable_reads)
            if stable is None:
                if accepted is None:
                    return None
                below = "".join(d for d, _ in out[i + 1:])
                carry = below < accepted[i + 1:]  # the wheels below rolled over since the accepted value
                stable = (str((int(accepted[i]) + carry) % 10), None)
            else:
                seen += 1
            out[i] = stable
        return "".join(d for d, _ in out), out, seen


def surely_changed(fused: list, old: str, step_confidence: float) -> bool:
    """Whether every wheel read as changed from ``old`` was read with ``step_confidence`` on average (a
    wheel inferred by carry counts as sure: the wheels below it were)."""
    return all(conf is None or conf >= step_confidence for (d, conf), was in zip(fused, old) if d != was)


def fused_reading(value: str, fused: list, reading: Reading) -> Reading:
    """The published Reading: fused digits; a wheel inferred from the others keeps this frame's confidence."""
    raw = reading.digits if len(reading.digits) == len(fused) else [None] * len(fused)
    digits = [DigitReading(d, conf if conf is not None else (float(r.confidence) if r is not None else 0.0))
              for (d, conf), r in zip(fused, raw)]
    confidence = min(d.confidence for d in digits) if digits else 0.0
    return Reading(value=value, confidence=confidence, digits=digits, box=reading.box)
