"""``digitcam run``: the frame loop that turns camera frames into published numbers.

One frame's path: ``Camera.poll()`` (``device/camera.py``) -> ``FrameReader.read_sensors`` (a box per
sensor, all crops through the recognizer in one call; ``device/reader.py``) -> each sensor's smoother ->
a stable change goes to the publisher (spooled, QoS 1) and, with ``--print``, to stdout as a JSON line.
Everything else (commands, reloads, stats) happens between frames in the same thread, so the recognizer
is never used concurrently; while the camera is down the loop keeps doing it, waiting in short steps.

The ``Service`` receives its parts (source, recognizer, sensors, publisher, ...) so tests hand it real
ones; ``build_service`` builds them from the config (``device/build.py``). Signals: SIGTERM/SIGINT finish
the frame, flush, publish ``offline`` and exit 0; SIGHUP reloads config and model.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import time
from collections import deque
from datetime import datetime, timezone

import numpy as np

from device.build import Parts, Reloader, build_parts, build_publisher
from device.camera import WAIT, Camera
from device.commands import CommandError, parse_command
from device.config import describe, load_config
from device.contract import Reading
from device.errors import DigitcamError
from device.images import is_blank
from device.meter import SetValueError
from device.notify import Notifier
from device.reader import FrameReader, Sensor
from device.sensormodels import SensorReaders
from device.sources import Backoff, BadFrame
from device.stats import Stats, cpu_temperature

log = logging.getLogger(__name__)

ON_DEMAND = "on_demand"
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
        self.web = None  # device.web.WebState while the page is on: it is handed frames, publishes and calls
        self.crops = None  # device.cropstore.CropCollection: sensors with collect = true keep their crops
        self.own_models = SensorReaders()  # sensors with their own model (config key model)
        self._handlers = {"read": self._cmd_read, "snapshot": self._cmd_snapshot, "reload": self._cmd_reload,
                          "set_value": self._cmd_set_value}

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
                self._publish(sensor, decision.reading, decision.flags)
        if self.crops is not None:
            self.crops.observe_frame(self.sensors, readings, decisions, frame, self.frame_no, self.reader)
        self._meter_signals(readings, now)
        if self.web is not None:
            self.web.frame(frame, self.frame_no, self.sensors, ms)
        self.notifier.frame_processed()

    def _unusable(self, message: str, exc: Exception | None = None) -> None:
        self.stats.error(self.frame_no, message, exc)
        self.camera.frame_unusable(message)

    def _publish(self, sensor: Sensor, reading: Reading, flags) -> None:
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
        while self._commands:
            self._run_command(*self._commands.popleft())
        if self.web is not None:
            self.web.run_calls()
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
        self._meter_signals(None, time.monotonic())  # a camera going offline or a stale read: problem on
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.stats_interval_s
            self._publish_stats()

    def stats_report(self) -> dict:
        report = self.stats.report(time.monotonic())
        queue = self.publisher.queue_status() if self.publisher is not None else {"queue": 0, "spool_in_memory": None}
        report.update({
            "dropped_frames": self.source.dropped,
            "cpu_temp_c": cpu_temperature(),
            **queue,
            "camera": "online" if self.camera.online else "offline",
            "camera_error": self.camera.error,
            "values": {s.name: s.smoother.value for s in self.sensors},
        })
        if self.crops is not None and self.crops.collectors:
            report["crops"] = self.crops.report()
        return report

    def _publish_stats(self) -> None:
        report = self.stats_report()
        self.notifier.status(f"{report['fps']} fps, camera {report['camera']}, queue {report['queue']}")
        if self.publisher is not None:
            self.publisher.publish_stats(report)
        log.debug("stats %s", report)

    # ---- commands (device/commands.py says which are accepted) --------------------------------------------

    def _run_command(self, name: str, payload: bytes) -> None:
        reply: dict = {"command": name[:64]}
        try:
            command = parse_command(name, payload, [s.name for s in self.sensors])
            if "id" in command.args:
                reply["id"] = command.args["id"]
            if command.spec.needs_frame:
                self._check_fresh_frame()
            reply.update(self._handlers[command.name](command.chosen(self.sensors), command.args))
            reply["ok"] = True
        except CommandError as exc:
            log.warning("command %s refused: %s", name[:64], exc)
            reply.update(ok=False, error=str(exc))
        except Exception as exc:  # the command failed on our side; say so, keep running
            log.exception("command %s failed", name[:64])
            reply.update(ok=False, error=f"{exc.__class__.__name__}: {exc}")
        if self.publisher is not None:
            self.publisher.publish_result(reply)

    def _check_fresh_frame(self) -> None:
        """A read or snapshot of a frame from before the camera went down would pass an old number as new."""
        if self.camera.error is not None:
            raise CommandError(f"camera offline: {self.camera.error}")
        if self.last_frame is None:
            raise CommandError("no frame has been read yet")

    def _cmd_read(self, chosen, _args) -> dict:
        """Read the last frame now and publish each chosen sensor's reading, stable or not. Tracking and
        stats are left as they are: this is not a frame of the loop."""
        readings, _ = self.own_models.read_sensors(self.reader, self.last_frame, self.sensors, self.frame_no,
                                                   track=False)
        values = {}
        for sensor, reading in zip(self.sensors, readings):
            if sensor in chosen:
                sensor.last = reading
                self._publish(sensor, reading, (ON_DEMAND,))
                values[sensor.name] = reading.value
        return {"values": values}

    def _cmd_snapshot(self, chosen, _args) -> dict:
        """Publish the last frame, annotated with each chosen sensor's box and number, as a JPEG."""
        from device.overlay import annotate, encode_jpeg

        topics = []
        for sensor in chosen:
            last = sensor.last or Reading(value=None, confidence=0.0)
            image = encode_jpeg(annotate(self.last_frame, last.box, last.value, last.confidence))
            if self.publisher is not None:
                topics.append(self.publisher.publish_snapshot(sensor.name, image))
        return {"snapshots": topics}

    def _cmd_reload(self, _chosen, _args) -> dict:
        error = self.reload()
        if error:
            raise CommandError(error)
        return {}

    def _cmd_set_value(self, chosen, args) -> dict:
        """Set a meter's accepted value exactly (a swapped meter, a correction) and publish it."""
        sensor = chosen[0]
        if not hasattr(sensor.smoother, "set_value"):
            raise CommandError(f"sensor {sensor.name} is not a meter (mode = \"meter\"): it has no value to set")
        try:
            decision = sensor.smoother.set_value(args["value"], time.monotonic())
        except SetValueError as exc:
            raise CommandError(str(exc)) from None
        self._publish(sensor, decision.reading, decision.flags)
        return {"sensor": sensor.name, "value": decision.reading.value}

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


def build_service(cfg, printer=None, notifier: Notifier | None = None, source=None):
    """The daemon's parts built from its config and wired together once: ``main`` and bench/daemon.py use it.

    Returns ``(service, publisher)``; the publisher is None without an ``[mqtt] host`` and is not started.
    """
    parts = build_parts(cfg, source=source)
    publisher = build_publisher(cfg, parts.discovery)
    service = Service(parts.source, parts.recognizer, parts.sensors, publisher, locator=parts.locator,
                      notifier=notifier if notifier is not None else Notifier(), printer=printer,
                      stats_interval_s=cfg.mqtt.stats_interval_s,
                      backoff=Backoff(cfg.camera.retry_min_s, cfg.camera.retry_max_s),
                      reload=Reloader(cfg.path, cfg), flush_timeout_s=cfg.device.flush_timeout_s,
                      unusable_after_s=cfg.camera.read_timeout_s)
    if publisher is not None:
        publisher.on_command = service.command
    from device.cropstore import CropCollection

    service.crops = CropCollection(cfg.state_dir)  # idle (no thread) until a sensor has collect = true
    service.own_models = SensorReaders(parts.sensor_recognizers, parts.locator)
    return service, publisher


def main(args) -> int:
    """``digitcam run --config FILE``: a bad config or model exits 2 here, before anything starts."""
    cfg = load_config(args.config)
    log.info("config %s: %s", cfg.path, describe(cfg))
    if not cfg.mqtt.host and not args.print_readings:
        log.warning("no [mqtt] host configured and no --print: readings go nowhere but the log")
    printer = (lambda line: print(line, flush=True)) if args.print_readings else None
    service, publisher = build_service(cfg, printer=printer)
    from device.web import start_web

    web = start_web(cfg, service)  # before the broker: a port in use is a one-line error naming web.port
    if publisher is not None:
        publisher.start()
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    signal.signal(signal.SIGHUP, service.request_reload)
    try:
        return service.run(args.max_frames)
    except BrokenPipeError:  # --print piped into head: stop quietly
        sys.stderr.close()
        return 0
    finally:
        if web is not None:
            web.close()
