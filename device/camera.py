"""The camera supervisor: opens and closes the source, paces retries, and decides when the camera is down.

The loop asks ``poll()`` for the next frame and gets a frame, ``None`` (the end of a file that does not
loop) or ``WAIT`` (the camera is down: try again later, after ``retry_in()`` seconds). The supervisor never
sleeps, so the loop keeps handling commands, reloads and stats while the camera is away.

The camera is *down* when the source cannot be opened or fails (``SourceError``), or when frames come but
none is usable for ``unusable_after_s`` (wrong size, blank, undecodable): then it is retried at the
backoff pace until a usable frame comes. Each state change is said once: to the log, to ``on_change``
(the publisher's retained ``camera`` topic) and to the notifier (systemd's status line).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from device.sources import Backoff, BadFrame, SourceError

# the daemon's log lines keep the logger name docs/OPERATIONS.md shows for them
log = logging.getLogger("device.service")

WAIT = "wait"  # poll(): no frame now, the camera is down; ask again after retry_in()


class Camera:
    """One source under supervision; ``error`` is None while it delivers usable frames."""

    def __init__(self, source, backoff: Backoff | None = None, unusable_after_s: float = 5.0, on_change=None,
                 notifier=None, clock=time.monotonic):
        self.source = source
        self.backoff = backoff or Backoff()
        self.unusable_after_s = unusable_after_s
        self.on_change = on_change  # (online: bool) -> None
        self.notifier = notifier
        self.clock = clock
        self.is_open = False
        self.error: str | None = None  # why the camera is down; None: up
        self._retry_at = 0.0
        self._unusable_since: float | None = None

    @property
    def online(self) -> bool:
        return self.is_open and self.error is None

    @property
    def name(self) -> str:
        return self.source.name

    def retry_in(self) -> float:
        """Seconds until the next try; 0 when the loop may poll now."""
        return max(0.0, self._retry_at - self.clock())

    def poll(self) -> np.ndarray | None | str:
        """The next frame, None at the end of the source, or WAIT. A bad frame raises BadFrame."""
        if self.clock() < self._retry_at:
            return WAIT
        if not self.is_open and not self._open():
            return WAIT
        try:
            frame = self.source.read()
        except BadFrame:
            raise  # the source works; the caller counts the frame and calls frame_unusable
        except SourceError as exc:
            self.source.close()
            self.is_open = False
            self._down(str(exc))
            return WAIT
        return frame

    def replace(self, source) -> None:
        """A reload brought a new source: close the old one; the new one is opened on the next poll."""
        if source is not self.source:
            self.source.close()
            self.source, self.is_open = source, False

    def close(self) -> None:
        """At shutdown: the state stays as it was, for a last stats report."""
        self.source.close()

    def _open(self) -> bool:
        try:
            self.source.open()
        except SourceError as exc:
            self._down(str(exc))
            return False
        self.is_open = True
        self._back()
        if self.on_change is not None:
            self.on_change(True)  # (re)opened: say online even if it was never said down
        return True

    def frame_unusable(self, message: str) -> None:
        """A frame came but cannot be read; after ``unusable_after_s`` of these the camera is down."""
        now = self.clock()
        if self._unusable_since is None:
            self._unusable_since = now
        if now - self._unusable_since >= self.unusable_after_s:
            self._down(f"camera {self.source.name}: no usable frame for {self.unusable_after_s:g} s "
                       f"(last: {message})")

    def frame_usable(self) -> None:
        if self._unusable_since is None:
            return
        self._unusable_since = None
        if self.error is not None and self._back() and self.on_change is not None:
            self.on_change(True)

    def _back(self) -> bool:
        """The one "camera is back" path; True when it had been down."""
        was_down = self.error is not None
        if was_down:
            log.warning("camera %s is back", self.source.name)
        self.error = None
        self._retry_at = 0.0
        self.backoff.reset()
        return was_down

    def _down(self, message: str) -> None:
        """Say the camera is unavailable (logged once per fault) and schedule the next try."""
        if self.on_change is not None:
            self.on_change(False)
        delay = self.backoff.next()
        if message != self.error:
            log.error("%s; retrying with backoff (up to %.0f s)", message, self.backoff.most)
            if self.notifier is not None:
                self.notifier.status(f"camera fault: {message}")
        else:
            log.debug("%s; retrying in %.1f s", message, delay)
        self.error = message
        self._retry_at = self.clock() + delay
