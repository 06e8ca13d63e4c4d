"""systemd notifications (sd_notify) over $NOTIFY_SOCKET, with no dependency beyond the socket module.

``READY=1`` once the daemon is running, ``STATUS=`` lines for ``systemctl status``, and ``WATCHDOG=1``
only from the frame loop after a frame was processed: a daemon whose camera is gone stops feeding the
watchdog and systemd restarts it. Without $NOTIFY_SOCKET (not under systemd) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None, watchdog_usec: str | None = None):
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self.address = address or None
        usec = os.environ.get("WATCHDOG_USEC") if watchdog_usec is None else watchdog_usec
        # feed at twice the rate systemd demands; without a watchdog, feeding is skipped
        self.watchdog_interval = int(usec) / 2e6 if usec and usec.isdigit() and int(usec) > 0 else None
        self._last_feed = 0.0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self.address else None
        if self._sock is not None:
            self._sock.setblocking(False)  # a full or dead socket must never stall the frame loop

    def send(self, *lines: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self.address, exc)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *((f"STATUS={status}",) if status else ()))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def reloading(self) -> None:
        self.send("RELOADING=1")

    def frame_processed(self, now: float | None = None) -> None:
        """Feed the watchdog, at most once per half watchdog period; cheap enough for every frame."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic() if now is None else now
        if now - self._last_feed >= self.watchdog_interval:
            self._last_feed = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
