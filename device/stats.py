"""The numbers on the stats topic: frames, errors, frames/s and inference times, plus the SoC temperature,
and the report the loop publishes every ``stats_interval_s`` (``stats_report``, ``publish_stats``).

Per-frame errors are counted here and logged once each: an expected fault (a ``DigitcamError`` such as a
bad frame, or a ``ValueError`` for an image or ROI that does not fit) once per message; anything else is
a bug, logged with its traceback once per kind (exception type and the line that raised it).
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import numpy as np

from device.errors import DigitcamError

# the daemon's log lines keep the logger name docs/OPERATIONS.md shows for them
log = logging.getLogger("device.service")
EXPECTED = (DigitcamError, ValueError)
MAX_REMEMBERED = 100


def cpu_temperature() -> float | None:
    """The SoC temperature in °C where the kernel exposes it (a Pi does), else None."""
    try:
        return round(int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


class Stats:
    """Counters for the stats topic. Inference times go into a fixed ring: nothing allocated per frame."""

    def __init__(self, ring: int = 1024):
        self.started = time.monotonic()
        self.frames = 0
        self.errors = 0
        self._ms = np.zeros(ring, dtype=np.float64)
        self._n = 0
        self._window_start = self.started
        self._window_frames = 0
        self.warned: set = set()  # what was logged already; repeats go to DEBUG

    def error(self, frame_no: int, message: str, exc: Exception | None = None) -> None:
        """Count one frame's error; log it once (then at DEBUG), a bug with its traceback."""
        self.errors += 1
        bug = exc is not None and not isinstance(exc, EXPECTED)
        key = message
        if bug:
            where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ is not None else []
            key = f"{exc.__class__.__name__} at " + ", ".join(f"{f.filename}:{f.lineno}" for f in where)
        if key in self.warned:
            log.debug("%s", message)
            return
        if len(self.warned) < MAX_REMEMBERED:
            self.warned.add(key)
        log.log(logging.ERROR if bug else logging.WARNING, "frame %d: %s (counted in stats; repeats at DEBUG)",
                frame_no, message, exc_info=exc if bug else None)

    def frame(self, ms: float) -> None:
        self._ms[self._n % len(self._ms)] = ms
        self._n += 1
        self.frames += 1

    def report(self, now: float) -> dict:
        """The numbers since the last report (fps) and over the last ``ring`` frames (inference times)."""
        span = max(now - self._window_start, 1e-9)
        fps = (self.frames - self._window_frames) / span
        self._window_start, self._window_frames = now, self.frames
        recent = self._ms[: min(self._n, len(self._ms))]
        p50, p95 = (np.percentile(recent, (50, 95)) if len(recent) else (None, None))
        return {
            "fps": round(fps, 2),
            "frames": self.frames,
            "errors": self.errors,
            "inference_ms_p50": None if p50 is None else round(float(p50), 3),
            "inference_ms_p95": None if p95 is None else round(float(p95), 3),
            "uptime_s": round(now - self.started, 1),
        }


def stats_report(service) -> dict:
    """What the stats topic gets from a running ``device.service.Service``: the counters since the last
    report, the source, the queue, the camera, each sensor's value and, when sensors collect, the crops."""
    report = service.stats.report(time.monotonic())
    queue = service.publisher.queue_status() if service.publisher is not None else {"queue": 0, "spool_in_memory": None}
    report.update({
        "dropped_frames": service.source.dropped,
        "cpu_temp_c": cpu_temperature(),
        **queue,
        "camera": "online" if service.camera.online else "offline",
        "camera_error": service.camera.error,
        "values": {s.name: s.smoother.value for s in service.sensors},
    })
    if service.crops is not None and service.crops.collectors:
        report["crops"] = service.crops.report()
    return report


def publish_stats(service) -> None:
    """The report to the publisher's stats topic and, in one line, to systemd's status."""
    report = stats_report(service)
    service.notifier.status(f"{report['fps']} fps, camera {report['camera']}, queue {report['queue']}")
    if service.publisher is not None:
        service.publisher.publish_stats(report)
    log.debug("stats %s", report)
