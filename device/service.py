"""``digitcam run``: the frame loop that turns camera frames into published numbers.

One frame's path: ``Camera.poll()`` (``device/camera.py``) -> ``FrameReader.read_sensors`` (a box per
sensor, all crops through the recognizer in one call; ``device/reader.py``) -> each sensor's smoother ->
a stable change goes to the publisher (spooled, QoS 1) and, with ``--print``, to stdout as a JSON line.
Everything else (commands, reloads, stats) happens between frames in the same thread, so the recognizer
is never used concurrently; while the camera is down the loop keeps doing it, waiting in short steps.

The ``Service`` receives its parts (source, recognizer, sensors, publisher, ...) so tests hand it real
ones; ``device/daemon.py`` builds them from the config (``device/build.py``) and installs the signals:
SIGTERM/SIGINT (``stop``) finish the frame, flush, publish ``offline`` and exit 0; SIGHUP (``request_reload``)
reloads config and model. Commands are handled in ``device/handlers.py``, the stats report in ``device/stats.py``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import deque
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from device.camera import WAIT, Camera
from device.contract import Reading
from device.errors import DigitcamError
from device.handlers import run_command
from device.images import is_blank
from device.notify import Notifier
from device.reader import FrameReader, Sensor
from device.sensormodels import SensorReaders
from device.sources import Backoff, BadFrame
from device.stats import Stats, publish_stats, stats_report

if TYPE_CHECKING:
    from device.build import Parts

log = logging.getLogger(__name__)

IDLE_STEP_S = 0.05  # while the camera is down: the longest wait between two looks at commands and signals


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Service:
    """The loop. Call ``run``; ``stop``, ``request_reload`` and ``command`` are safe from signals/threads."""

    def __init__(self, source, recognizer, sensors, publisher=None, *, locator=None, notifier=None, printer=None,
                 stats_interval_s: float = 60.0, backoff: Backoff | None = None, reload=None,
                 flush_timeout_s: float = 5.0, unusable_after_s: float = 5.0):
        self.reader = FrameReader(recognizer, locator)
        self.sensors = list(sensors)
        self.publisher = publisher
        self.notifier = notifier or Notifier(address="")
        self.camera = Camera(source, backoff, unusable_after_s, notifier=self.notifier,
                             on_change=publisher.set_camera if publisher is not None else None)
        self.printer = printer
        self.stats_interval_s = stats_interval_s
        self.reload_parts = reload  # (running sensors) -> Parts; None: nothing to reload
        self.flush_timeout_s = flush_timeout_s
        self.stats = Stats()
        self.frame_no = 0
        self.last_frame: np.ndarray | None = None
        self.last_frame_at: float | None = None  # time.monotonic() when last_frame was captured
        self._model = recognizer.describe()
        self._stopping = False
        self._reload_requested = False
        self._commands: deque = deque(maxlen=64)
        self._next_stats = time.monotonic() + stats_interval_s
        self.web = None  # device.web_feed.WebState while the page is on: it is handed frames, publishes and calls
        self.crops = None  # device.cropstore.CropCollection: sensors with collect = true keep their crops
        self.own_models = SensorReaders()  # sensors with their own model (config key model)

    @property
    def source(self):
        return self.camera.source

    @property
    def recognizer(self):
        return self.reader.recognizer

    @property
    def locator(self):
        return self.reader.locator

    @locator.setter
    def locator(self, locator) -> None:
        self.reader.locator = locator

    # ---- control from outside the loop --------------------------------------------------------------

    def stop(self, *_signal) -> None:
        self._stopping = True

    def request_reload(self, *_signal) -> None:
        self._reload_requested = True

    def command(self, name: str, payload: bytes) -> None:
        """Queue a command from the MQTT thread; it runs between frames."""
        self._commands.append((name, payload))

    # ---- the loop -------------------------------------------------------------------------------------

    def run(self, max_frames: int | None = None) -> int:
        self.notifier.ready(f"reading {', '.join(s.name for s in self.sensors)} from {self.source.name}")
        log.info("running: %d sensor(s) from %s, model %s", len(self.sensors), self.source.name,
                 self._model.get("version"))
        try:
            while not self._stopping:
                self._between_frames()
                try:
                    frame = self.camera.poll()
                except BadFrame as exc:
                    self._unusable(str(exc))
                    continue
                if frame is WAIT:
                    time.sleep(min(IDLE_STEP_S, self.camera.retry_in()))
                    continue
                if frame is None:
                    log.info("end of %s after %d frame(s)", self.source.name, self.frame_no)
                    break
                self.process(frame)
                if max_frames is not None and self.frame_no >= max_frames:
                    break
        finally:
            self._shutdown()
        return 0

    def process(self, frame: np.ndarray) -> None:
        """One frame through locate -> read -> smooth -> publish. Errors are counted, never raised."""
        self.frame_no += 1
        self.last_frame, self.last_frame_at = frame, time.monotonic()
        try:
            if is_blank(frame):
                raise BadFrame("blank frame (all pixels one shade): lens covered, no light or a dead sensor")
            readings, ms = self.own_models.read_sensors(self.reader, frame, self.sensors, self.frame_no)
        except Exception as exc:  # a bad frame or a bug in one frame must not stop a months-long run
            self._unusable(f"{exc.__class__.__name__}: {exc}", exc)
            return
        self.stats.frame(ms)
        self.camera.frame_usable()
        now = time.monotonic()  # hold and rate logic: a clock NTP cannot move; wall time only in payloads
        decisions = []
        for sensor, reading in zip(self.sensors, readings):
            sensor.last = reading
            decision = sensor.smoother.update(reading, now)
            decisions.append(decision)
            if decision is not None:
                self.publish(sensor, decision.reading, decision.flags)
        if self.crops is not None:
            self.crops.observe_frame(self.sensors, readings, decisions, frame, self.frame_no, self.reader,
                                    self.own_models)
        self._meter_signals(readings, now)
        if self.web is not None:
            self.web.frame(frame, self.frame_no, self.sensors, ms)
        self.notifier.frame_processed()

    def _unusable(self, message: str, exc: Exception | None = None) -> None:
        self.stats.error(self.frame_no, message, exc)
        self.camera.frame_unusable(message)

    def publish(self, sensor: Sensor, reading: Reading, flags) -> None:
        """One reading out: the payload (wall time only here) to the page, the publisher and ``--print``."""
        meter = getattr(sensor.smoother, "extra", None)  # a meter's numeric reading and rate
        payload = {
            **reading.as_dict(),
            **(meter(time.monotonic()) if meter is not None else {}),
            "timestamp": utc_now(),
            "frame": self.frame_no,
            "model": self.own_models.describe(sensor, self._model),
            "flags": list(flags),
        }
        log.info("%s: %s (%.2f)%s", sensor.name, reading.value, reading.confidence,
                 f" [{', '.join(flags)}]" if flags else "")
        if self.web is not None:
            self.web.published(sensor.name, payload)
        if self.publisher is not None:
            self.publisher.publish_reading(sensor.name, json.dumps(payload))
        if self.printer is not None:
            self.printer(json.dumps({"sensor": sensor.name, **payload}))

    # ---- between frames ---------------------------------------------------------------------------------

    def _between_frames(self) -> None:
        while self._commands:  # device/handlers.py: parse, check, handle, reply on cmd/result
            run_command(self, *self._commands.popleft())
        if self.web is not None:
            self.web.run_calls()
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
        self._meter_signals(None, time.monotonic())  # a camera going offline or a stale read: problem on
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.stats_interval_s
            publish_stats(self)

    def stats_report(self) -> dict:
        """What the stats topic gets now (``device.stats.stats_report``)."""
        return stats_report(self)

    def _meter_signals(self, readings, now: float) -> None:
        """Each meter's raw reading and problem state on ``<sensor>/raw`` and ``<sensor>/problem``."""
        if self.publisher is None:
            return
        for i, sensor in enumerate(self.sensors):
            signals = getattr(sensor.smoother, "signals", None)
            if signals is not None:
                send = functools.partial(self.publisher.publish_sensor, sensor.name)  # (suffix, payload, retain)
                signals(readings[i] if readings else None, now, send, self.camera.online)

    # ---- reload and shutdown ----------------------------------------------------------------------------

    def reload(self) -> str | None:
        """Re-read config and model; on any error keep running as before and return the message."""
        if self.reload_parts is None:
            return "this service was started without a config to reload"
        self.notifier.reloading()
        try:
            parts: Parts = self.reload_parts(self.sensors)
        except DigitcamError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            self.notifier.ready()
            return f"reload failed: {exc}"
        if parts.source is not None:
            self.camera.replace(parts.source)
        self.reader = FrameReader(parts.recognizer, parts.locator)
        self.own_models = SensorReaders(parts.sensor_recognizers, parts.locator)
        self.sensors = list(parts.sensors)
        self._model = self.recognizer.describe()
        if self.publisher is not None and parts.discovery is not None:
            self.publisher.set_discovery(parts.discovery)
        log.info("reloaded: %d sensor(s), model %s", len(self.sensors), self._model.get("version"))
        self.notifier.ready()
        return None

    def _shutdown(self) -> None:
        self.notifier.stopping()
        self.camera.close()
        if self.publisher is not None:
            self.publisher.close(self.flush_timeout_s)
        if self.crops is not None:
            self.crops.close(self.flush_timeout_s)
        log.info("stopped after %d frame(s)", self.frame_no)

