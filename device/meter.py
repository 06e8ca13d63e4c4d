"""Meter readings a household can trust: digit-wise fusion with carry logic, wrap, set value, rate.

A counting meter is a row of wheels, and it moves in one way only: the lowest wheel turns, and a higher
wheel advances only together with a roll-over of all the wheels below it (…x9 -> …(x+1)0). A misread
wheel (1->7, 3->8, 6->8) breaks that rule, so it is caught here instead of being published:

* **Fusion per wheel** (``device/wheels.py``). Each wheel is stable when ``stable_reads`` of its last
  ``window`` confident reads agree, and a wheel that changes must have been read with ``step_confidence``;
  a wheel without a stable digit (mid-roll) is inferred from the wheels below it and the accepted value.
* **Steps.** A candidate that differs from the accepted value by at most ``max_step`` counts of the
  lowest wheel, with every higher wheel change carried by a roll-over, is accepted at once. A larger rise
  (a higher wheel advanced alone: ``carry``; the lowest wheel skipped: ``jump``) is a misread until it
  has stayed the candidate for ``confirm_s`` (a restart, a camera outage, a burst the camera could not
  follow), then accepted flagged. A decrease or a too fast rise waits ``accept_after_s`` as before.
* **Wrap.** With the wheel count known (``digits``, else the accepted value's length), …9999 -> …0000
  is a normal step, flagged ``wrapped``.
* **State.** The accepted value of every sensor is kept in a small JSON file in the state directory
  (``device/meter_store.py``), so the first reading after a restart is checked against it; ``set_value``
  sets it exactly.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from device.contract import DigitReading, Reading
from device.errors import DigitcamError
from device.meter_store import MeterStore
from device.wheels import Wheels, fused_reading, surely_changed

log = logging.getLogger(__name__)

DECREASED = "decreased"
RATE_EXCEEDED = "rate_exceeded"
ACCEPTED_AFTER_HOLD = "accepted_after_hold"
CARRY = "carry"  # a higher wheel advanced without a roll-over of the wheels below it
JUMP = "jump"  # the lowest wheels advanced by more than max_step at once
FIRST = "first"  # no accepted value to check against (a new install)
WRAPPED = "wrapped"
SET_VALUE = "set_value"
REFRESH = "refresh"  # the accepted value again, still confirmed by the camera (keeps expire_after happy)

# Holds that end after confirm_s (evidence of a real jump) versus accept_after_s (doubt about the meter).
_CONFIRMABLE = (CARRY, JUMP, FIRST)


class SetValueError(DigitcamError):
    """A set_value that cannot be applied; the message says why (answered on cmd/result)."""


@dataclass(frozen=True)
class Decision:
    """A value to publish, with the flags that explain any doubt about it."""

    reading: Reading
    flags: tuple = ()


def attach_store(sensors, path: Path) -> None:
    """Give every meter among ``sensors`` the one store at ``path`` (kept meters already share it)."""
    meters = [s.smoother for s in sensors if isinstance(s.smoother, Meter)]
    store = next((m.store for m in meters if m.store is not None and m.store.path == Path(path)), None)
    store = store or MeterStore(path)
    for meter in meters:
        if meter.store is not store:
            meter.attach(store)


class Meter:
    """The ``meter`` mode smoother of one sensor: feed it every reading with its time in seconds."""

    def __init__(self, stable_reads: int = 3, window: int = 5, min_confidence: float = 0.5,
                 step_confidence: float = 0.8, digits: int = 0, decimals: int = 0,
                 max_rate_per_hour: float = 0.0, accept_after_s: float = 600.0,
                 max_step: int = 1, confirm_s: float = 7.0, rate_window_s: float = 600.0,
                 stale_after_s: float = 300.0, refresh_s: float = 0.0, raw_interval_s: float = 0.0,
                 name: str = "meter", store: MeterStore | None = None):
        if not 1 <= stable_reads <= window:
            raise ValueError(f"want 1 <= stable_reads <= window, not {stable_reads} of {window}")
        self.stable_reads, self.window, self.min_confidence = stable_reads, window, min_confidence
        self.step_confidence = max(step_confidence, min_confidence)
        self.digits, self.decimals = digits, decimals
        self.max_rate_per_hour, self.accept_after_s = max_rate_per_hour, accept_after_s
        self.max_step, self.confirm_s = max_step, confirm_s
        self.rate_window_s, self.stale_after_s, self.refresh_s = rate_window_s, stale_after_s, refresh_s
        self.raw_interval_s = raw_interval_s
        self.name, self.store = name, None
        self.value: str | None = None  # the last accepted value (digit string)
        self._accepted_at: float | None = None  # None: accepted before this start (times are monotonic)
        self._published_at = 0.0
        self._confident_at: float | None = None  # the last frame whose candidate had most wheels read
        self._wheels = Wheels(window, stable_reads, min_confidence)
        self._held: str | None = None
        self._held_since = 0.0
        self._confirm_since = 0.0
        self._held_flags: tuple = ()
        self._history: deque = deque()  # (time, cumulative count) of accepted values, for the rate
        self._count = 0
        self._value_seen_at = float("-inf")  # the accepted value last confirmed by the camera
        self._raw_at: float | None = None
        self._problem_said: tuple | None = None
        if store is not None:
            self.attach(store)

    def attach(self, store: MeterStore) -> None:
        """Keep the accepted value in ``store`` from now on; start from the value stored there, if any."""
        self.store = store
        entry = store.get(self.name)
        if self.value is not None or entry is None:
            return
        if self.digits and len(entry["value"]) != self.digits:
            log.warning("%s: stored value %s has not %d digits; confirming a first value again", self.name,
                        entry["value"], self.digits)
            return
        self.value = entry["value"]
        log.info("%s: last accepted value %s (from %s)", self.name, self.value, store.path)

    @classmethod
    def from_config(cls, sensor, store: MeterStore | None = None) -> "Meter":
        return cls(stable_reads=sensor.stable_reads, window=sensor.window, min_confidence=sensor.min_confidence,
                   step_confidence=sensor.step_confidence, digits=sensor.digits, decimals=sensor.decimals,
                   max_rate_per_hour=sensor.max_rate_per_hour, accept_after_s=sensor.accept_after_s,
                   max_step=sensor.max_step, confirm_s=sensor.confirm_s,
                   rate_window_s=sensor.rate_window_s, stale_after_s=sensor.stale_after_s,
                   refresh_s=sensor.expire_after_s / 3.0, raw_interval_s=sensor.raw_interval_s, name=sensor.name,
                   store=store)

    # ---- what the service asks -------------------------------------------------------------------

    @property
    def held(self) -> str | None:
        """The doubtful value waiting for confirmation, if any."""
        return self._held

    def problem(self, now: float) -> str | None:
        """Why the value cannot be trusted right now (a value held for ``confirm_s``, no confident read
        lately), or None."""
        if self._held is not None and now - self._held_since >= min(self.confirm_s, self.accept_after_s):
            return f"held {self._held}: {', '.join(self._held_flags)}"  # a passing misread does not flap it
        if self._confident_at is None:
            return "no confident read yet"
        if now - self._confident_at > self.stale_after_s:
            return f"no confident read for {self.stale_after_s:g} s"
        return None

    def signals(self, reading: Reading | None, now: float, send, camera_online: bool = True) -> None:
        """Publish what a meter says besides its value with ``send(topic suffix, JSON, retain) -> delivered``:
        the latest per-frame reading at most every ``raw_interval_s``, and the problem state whenever it
        changes (again until it is delivered)."""
        if reading is not None and self.raw_interval_s > 0 and (
                self._raw_at is None or now - self._raw_at >= self.raw_interval_s):
            self._raw_at = now
            send("raw", json.dumps(reading.as_dict()), True)
        reason = "camera offline" if not camera_online else self.problem(now)
        said = ("ON" if reason else "OFF", reason)
        if said != self._problem_said and send("problem", json.dumps({"state": said[0], "reason": reason}), True):
            self._problem_said = said

    def numeric(self, value: str) -> float:
        """The digit string as the meter means it: ``004711`` with 3 decimals is 4.711."""
        return int(value) / 10 ** self.decimals

    def rate_per_hour(self, now: float) -> float | None:
        """The rise of accepted values over the last ``rate_window_s`` (or since the first), per hour."""
        if not self._history:
            return None
        start = now - self.rate_window_s
        while len(self._history) > 1 and self._history[1][0] <= start:
            self._history.popleft()  # the first entry is the last accepted value at or before the window
        t0, c0 = self._history[0]
        span = now - max(t0, start)
        if span <= 0:
            return None
        return (self._count - c0) / 10 ** self.decimals / (span / 3600.0)

    def extra(self, now: float) -> dict:
        """Fields of the state JSON beyond the Reading: the numeric reading and the rates."""
        rate = self.rate_per_hour(now)
        return {
            "reading": None if self.value is None else round(self.numeric(self.value), self.decimals),
            "rate_per_hour": None if rate is None else float(f"{rate:.6g}"),
            "rate_per_minute": None if rate is None else float(f"{rate / 60.0:.6g}"),
        }

    # ---- readings in ---------------------------------------------------------------------------------

    def update(self, reading: Reading, now: float) -> Decision | None:
        """Record one reading; return a Decision when the published value should change (or be refreshed)."""
        self._wheels.forget_after_a_gap(now)
        candidate = self._fuse(reading, now)
        if candidate is None:
            return None
        value, digits, seen = candidate
        if self._contradicts_hold(reading):
            self._confirm_since = now  # the accepted digits are still seen: the held value is not confirmed yet
        if seen * 2 >= len(digits):  # most wheels read, not only inferred: the camera confirms this value
            self._confident_at = now
            if value == self.value:
                self._value_seen_at = now
        if value == self.value:
            self._held = None  # the accepted value is back: the doubtful one was a glitch
            if self.refresh_s > 0 and now - self._published_at >= self.refresh_s and self._confident_at == now:
                return self._decision(fused_reading(value, digits, reading), (REFRESH,), now)
            return None
        doubts = self._judge(value, now)
        if not doubts and not surely_changed(digits, self.value or value, self.step_confidence):
            return None  # a wheel half-way to its next digit, read as that digit: wait until it is sure
        if doubts:
            return self._hold(fused_reading(value, digits, reading), doubts, now)
        return self._accept(fused_reading(value, digits, reading), now, ())

    def set_value(self, value, now: float) -> Decision:
        """Set the accepted value exactly (a new meter, a correction): clears any hold, persists, publishes."""
        if not isinstance(value, str) or not value.isdigit() or not 1 <= len(value) <= 8:
            raise SetValueError(f"value must be a string of 1-8 digits like \"004711\", not {str(value)[:32]!r}")
        if self.digits and len(value) != self.digits:
            raise SetValueError(f"value {value!r} has {len(value)} digits, sensor {self.name} has {self.digits}")
        log.warning("%s: value set to %s (was %s)", self.name, value, self.value)
        self._wheels.clear()  # reads of the old meter say nothing about the new one
        self._history.clear()
        reading = Reading(value=value, confidence=1.0, digits=[DigitReading(d, 1.0) for d in value])
        return self._accept(reading, now, (SET_VALUE,), source="set_value")

    # ---- fusion ----------------------------------------------------------------------------------

    def _fuse(self, reading: Reading, now: float) -> tuple[str, list, int] | None:
        """This frame's candidate from the wheels (``Wheels.fuse``), or None while one cannot be formed."""
        width = self._wheels.width(reading, self.digits, self.value)
        if width is None:
            return None
        # An unsure wheel is inferred only from an accepted value the camera confirmed lately: not from one
        # stored before a restart, left behind by an outage or by a held value that has moved on.
        current = self.value is not None and len(self.value) == width and now - self._value_seen_at <= self.confirm_s
        return self._wheels.fuse(reading, width, bool(self.digits or self.value), self.value if current else None)

    # ---- plausibility --------------------------------------------------------------------------------

    def _judge(self, value: str, now: float) -> tuple:
        """Why a candidate after the accepted value is doubtful; empty: accept it now."""
        if self.value is None:
            return (FIRST,)
        if len(value) != len(self.value):
            return (JUMP,)
        modulus = 10 ** len(value)
        new, old = int(value), int(self.value)
        delta = (new - old) % modulus
        if delta > modulus // 2:  # backwards (a wrap forwards is a small delta over the top)
            return (DECREASED,)
        changed = next(i for i, (a, b) in enumerate(zip(value, self.value)) if a != b)
        place = len(value) - 1 - changed  # 0: only the lowest wheel changed
        if self.max_rate_per_hour > 0 and self._accepted_at is not None:
            hours = max(now - self._accepted_at, 1e-9) / 3600.0
            if delta / 10 ** self.decimals / hours > self.max_rate_per_hour:
                return (RATE_EXCEEDED,)
        if place > 0 and delta >= 10 ** place:
            return (CARRY,)
        if delta > self.max_step:
            return (JUMP,)
        return ()

    def _hold(self, reading: Reading, doubts: tuple, now: float) -> Decision | None:
        value = reading.value
        if self._held != value:
            chained = self._held is not None and self._follows(self._held, value)
            if not chained:
                self._held_since = self._confirm_since = now
                self._held_flags = doubts
                log.info("%s: value %s held back after %s: %s", self.name, value, self.value, ", ".join(doubts))
            self._held = value
        confirmable = all(d in _CONFIRMABLE for d in self._held_flags)
        if not (confirmable and now - self._confirm_since >= self.confirm_s
                or now - self._held_since >= self.accept_after_s):
            return None
        log.warning("%s: value %s accepted after %.0f s despite %s (was %s)", self.name, value,
                    now - self._held_since, ", ".join(self._held_flags), self.value)
        return self._accept(reading, now, self._held_flags + (ACCEPTED_AFTER_HOLD,))

    def _contradicts_hold(self, reading: Reading) -> bool:
        """Whether this frame read every wheel that the held value changed as the accepted value has it.

        A wheel misread in 3 of 5 frames is stable, but the true digit keeps showing between; a real jump
        (after an outage or a restart) leaves the old digits behind for good.
        """
        if self._held is None or self.value is None or len(reading.digits) != len(self._held):
            return False
        changed = [i for i, (a, b) in enumerate(zip(self._held, self.value)) if a != b]
        return bool(changed) and all(reading.digits[i].digit == self.value[i]
                                     and reading.digits[i].confidence >= self.min_confidence for i in changed)

    def _follows(self, before: str, after: str) -> bool:
        """Whether ``after`` is a normal small step on from ``before`` (a held value that keeps counting)."""
        if len(before) != len(after):
            return False
        delta = (int(after) - int(before)) % 10 ** len(after)
        return 0 < delta <= self.max_step

    def _accept(self, reading: Reading, now: float, flags: tuple, source: str = "reading") -> Decision:
        old = self.value
        self.value = reading.value
        self._accepted_at = self._value_seen_at = now
        self._held = None
        if old is None or len(old) != len(reading.value) or DECREASED in flags or SET_VALUE in flags:
            self._history.clear()
        else:
            self._count += (int(reading.value) - int(old)) % 10 ** len(reading.value)
            if int(reading.value) < int(old):  # counted forwards over the top
                flags += (WRAPPED,)
        self._history.append((now, self._count))
        if self.store is not None:
            self.store.put(self.name, reading.value, time.time(), source)
        return self._decision(reading, flags, now)

    def _decision(self, reading: Reading, flags: tuple, now: float) -> Decision:
        self._published_at = now
        return Decision(reading, flags)
