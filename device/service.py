"""``digitcam run``: the frame loop that turns camera frames into published numbers.

One frame's path: ``source.read()`` -> a box per sensor (fixed ROI or the locator) -> all crops through
the recognizer in one call -> each sensor's smoother -> a stable change goes to the publisher (spooled,
QoS 1) and, with ``--print``, to stdout as a JSON line. Everything else (commands, reloads, stats, camera
retries) happens between frames in the same thread, so the recognizer is never used concurrently.

The ``Service`` receives its parts (source, recognizer, sensors, publisher, ...) so tests hand it real
ones; ``main`` builds them from the config. Signals: SIGTERM/SIGINT finish the frame, flush, publish
``offline`` and exit 0; SIGHUP reloads config and model.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device import locate
from device.config import Config, describe, load_config
from device.contract import Reading
from device.errors import DigitcamError
from device.images import is_blank
from device.notify import Notifier
from device.smooth import Smoother
from device.sources import Backoff, BadFrame, SourceError, build_source

log = logging.getLogger(__name__)

COMMANDS = ("read", "snapshot", "reload")
MAX_COMMAND_BYTES = 1024
ON_DEMAND = "on_demand"


class CommandError(ValueError):
    """A command payload that is not one we accept; answered on cmd/result, never raised further."""


@dataclass
class Sensor:
    """One configured number: where to look, its smoother, its box tracker and its last reading (for snapshots)."""

    config: object
    smoother: Smoother
    last: Reading | None = None
    tracker: locate.BoxTracker = field(default_factory=locate.BoxTracker)
    searched_at: int | None = None  # frame number of the last locator search
    view: int | None = None  # the locator view that won the last search's vote, read until the next search

    @property
    def name(self) -> str:
        return self.config.name


def build_sensors(configs, previous=()) -> list[Sensor]:
    """Sensors for these configs; an unchanged sensor keeps its smoother (and its stable value) on reload."""
    kept = {s.name: s for s in previous}
    out = []
    for cfg in configs:
        old = kept.get(cfg.name)
        out.append(old if old is not None and old.config == cfg else Sensor(cfg, Smoother.from_config(cfg)))
    return out


def cpu_temperature() -> float | None:
    """The SoC temperature in °C where the kernel exposes it (a Pi does), else None."""
    try:
        return round(int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


class Service:
    """The loop. Call ``run``; ``stop``, ``request_reload`` and ``command`` are safe from signals/threads."""

    def __init__(self, source, recognizer, sensors, publisher=None, *, locator=None, notifier=None, printer=None,
                 stats_interval_s: float = 60.0, backoff: Backoff | None = None, reload=None,
                 flush_timeout_s: float = 5.0, unusable_after_s: float = 5.0):
        self.source = source
        self.recognizer = recognizer
        self.sensors = list(sensors)
        self.publisher = publisher
        self.locator = locator
        self.notifier = notifier or Notifier(address="")
        self.printer = printer
        self.stats_interval_s = stats_interval_s
        self.backoff = backoff or Backoff()
        self.reload_parts = reload  # () -> dict of new parts; None: reload only re-reads nothing
        self.flush_timeout_s = flush_timeout_s
        self.unusable_after_s = unusable_after_s  # frames come but none can be read this long: camera down
        self._unusable_since: float | None = None
        self.stats = Stats()
        self.frame_no = 0
        self.last_frame = None
        self.source_open = False
        self.source_error: str | None = None
        self._model = recognizer.describe()
        self._stopping = False
        self._reload_requested = False
        self._commands: deque = deque(maxlen=64)
        self._next_stats = time.monotonic() + stats_interval_s
        self._box_cache: dict = {}
        self._warned: set = set()

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
                if not self.source_open and not self._open_source():
                    continue
                try:
                    frame = self.source.read()
                except BadFrame as exc:
                    self._count_error(str(exc))
                    self._frame_unusable(str(exc))
                    continue
                except SourceError as exc:
                    self._source_failed(exc)
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
        self.last_frame = frame
        try:
            if is_blank(frame):
                raise BadFrame("blank frame (all pixels one shade): lens covered, no light or a dead sensor")
            readings = self._read_sensors(frame)
        except Exception as exc:  # a bad frame or a bug in one frame must not stop a months-long run
            self._count_error(f"{exc.__class__.__name__}: {exc}", exc)
            self._frame_unusable(f"{exc.__class__.__name__}: {exc}")
            return
        self._frame_usable()
        now = time.time()
        for sensor, reading in zip(self.sensors, readings):
            sensor.last = reading
            decision = sensor.smoother.update(reading, now)
            if decision is not None:
                self._publish(sensor, decision.reading, decision.flags)
        self.notifier.frame_processed()

    def _read_sensors(self, frame: np.ndarray) -> list[Reading]:
        """A Reading per sensor; all crops go through the recognizer in one call.

        A located box is read through the locator's views (a few slightly different crops that vote)
        when the locator searches; between searches only the view that won is read, so the vote costs one
        crop's read per search, not per frame. A fixed ROI is read as it is.
        """
        boxes = [self._box(sensor, frame) for sensor in self.sensors]
        viewed = [(sensor, self._views(sensor, box, frame.shape)) for sensor, box in zip(self.sensors, boxes)
                  if box is not None]
        found, picks, ms = self.recognizer.read_views([[locate.crop(frame, v) for v in views] for _, views in viewed])
        for (sensor, views), pick in zip(viewed, picks):
            if len(views) > 1:
                sensor.view = pick
        self.stats.frame(ms)
        readings = iter(found)
        out = []
        for box in boxes:
            if box is None:
                out.append(Reading(value=None, confidence=1.0))  # the locator saw no number
            else:
                reading = next(readings)
                reading.box = box
                out.append(reading)
        return out

    def _views(self, sensor: Sensor, box, frame_shape) -> list:
        """The crops to read for a sensor's box: all the locator's views on a search frame, else the winner."""
        if not (sensor.config.locate and self.locator is not None):
            return [box]
        views = self.locator.view_boxes(box, frame_shape)
        if sensor.searched_at == self.frame_no or sensor.view is None or sensor.view >= len(views):
            return views
        return [views[sensor.view]]

    def _box(self, sensor: Sensor, frame: np.ndarray):
        """Where to read: the locator's box (searched inside the roi, if set), else the fixed roi."""
        cfg = sensor.config
        key = (cfg.name, frame.shape[:2])
        fixed = self._box_cache.get(key)
        if fixed is None:
            fixed = self._box_cache[key] = self._fixed_box(cfg, frame)
        if cfg.locate and self.locator is not None:
            return self._located_box(sensor, frame, fixed if cfg.roi else None)
        return fixed

    def _located_box(self, sensor: Sensor, frame: np.ndarray, roi) -> tuple | None:
        """The locator's box, searched every ``locate_every`` frames and tracked so the crop does not jump.

        Between searches the tracked box is read again: a meter or a house number does not move
        between frames, and the search costs more than the read.
        """
        due = sensor.searched_at is None or self.frame_no - sensor.searched_at >= sensor.config.locate_every
        if due:
            sensor.searched_at = self.frame_no
            found = self.locator.find(frame, roi)
            sensor.tracker.update(None if found is None else tuple(int(v) for v in found))
        box = sensor.tracker.box
        return None if box is None else locate.clip_box(box, frame.shape)

    @staticmethod
    def _fixed_box(cfg, frame: np.ndarray) -> tuple:
        """The configured ROI clipped to the frame, or the whole frame; an ROI outside it is an error."""
        if not cfg.roi:
            return locate.whole_frame(frame)
        h, w = frame.shape[:2]
        x, y, bw, bh = cfg.roi
        x1, y1 = min(x + bw, w), min(y + bh, h)
        if x >= w or y >= h or x1 - x < 2 or y1 - y < 2:
            raise ValueError(f"sensor {cfg.name}: roi {list(cfg.roi)} lies outside the {w}x{h} frame")
        return x, y, x1 - x, y1 - y

    def _publish(self, sensor: Sensor, reading: Reading, flags) -> dict:
        payload = {
            **reading.as_dict(),
            "timestamp": utc_now(),
            "frame": self.frame_no,
            "model": self._model,
            "flags": list(flags),
        }
        text = json.dumps(payload)
        log.info("%s: %s (%.2f)%s", sensor.name, reading.value, reading.confidence,
                 f" [{', '.join(flags)}]" if flags else "")
        if self.publisher is not None:
            self.publisher.publish_reading(sensor.name, text)
        if self.printer is not None:
            self.printer(json.dumps({"sensor": sensor.name, **payload}))
        return payload

    # ---- between frames ---------------------------------------------------------------------------------

    def _between_frames(self) -> None:
        if self._commands:
            while self._commands:
                self._run_command(*self._commands.popleft())
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.stats_interval_s
            self._publish_stats(now)

    def _count_error(self, message: str, exc: Exception | None = None) -> None:
        """Count a per-frame error; log each distinct message once (then at DEBUG) so logs stay readable."""
        self.stats.errors += 1
        if message in self._warned:
            log.debug("%s", message)
            return
        if len(self._warned) < 100:
            self._warned.add(message)
        if exc is not None and not isinstance(exc, (DigitcamError, ValueError)):
            log.exception("frame %d: %s (counted in stats; repeats at DEBUG)", self.frame_no, message)
        else:
            log.warning("frame %d: %s (counted in stats; repeats at DEBUG)", self.frame_no, message)

    def stats_report(self) -> dict:
        report = self.stats.report(time.monotonic())
        report.update({
            "dropped_frames": self.source.dropped,
            "cpu_temp_c": cpu_temperature(),
            "queue": len(self.publisher.spool) if self.publisher is not None else 0,
            "spool_in_memory": self.publisher.spool.in_memory if self.publisher is not None else None,
            "camera": "online" if self.source_open and self.source_error is None else "offline",
            "camera_error": self.source_error,
            "values": {s.name: s.smoother.value for s in self.sensors},
        })
        return report

    def _publish_stats(self, now: float) -> None:
        report = self.stats_report()
        self.notifier.status(f"{report['fps']} fps, camera {report['camera']}, queue {report['queue']}")
        if self.publisher is not None:
            self.publisher.publish(self.publisher.topics.stats, json.dumps(report), qos=0)
        log.debug("stats %s", report)

    # ---- the camera ---------------------------------------------------------------------------------

    def _open_source(self) -> bool:
        try:
            self.source.open()
        except SourceError as exc:
            self._source_failed(exc)
            return False
        if self.source_error is not None:
            log.warning("camera %s is back", self.source.name)
        self.source_open, self.source_error = True, None
        self.backoff.reset()
        if self.publisher is not None:
            self.publisher.set_camera(True)
        return True

    def _source_failed(self, exc: Exception) -> None:
        """Close the source, say so once, and wait (interruptibly) before the next try."""
        self.source.close()
        self.source_open = False
        self._camera_down(str(exc))

    def _frame_unusable(self, message: str) -> None:
        """Frames come but none can be read (wrong size, blank, undecodable): after ``unusable_after_s`` the
        camera is down as if it had gone, and frames are read at the backoff pace until one is usable."""
        now = time.monotonic()
        if self._unusable_since is None:
            self._unusable_since = now
        if now - self._unusable_since >= self.unusable_after_s:
            self._camera_down(f"camera {self.source.name}: no usable frame for {self.unusable_after_s:g} s "
                              f"(last: {message})")

    def _frame_usable(self) -> None:
        if self._unusable_since is None:
            return
        self._unusable_since = None
        if self.source_error is not None:
            log.warning("camera %s is back", self.source.name)
            self.source_error = None
            self.backoff.reset()
            if self.publisher is not None:
                self.publisher.set_camera(True)

    def _camera_down(self, message: str) -> None:
        """Say the camera is unavailable (logged once per fault), then wait the backoff delay interruptibly."""
        if self.publisher is not None:
            self.publisher.set_camera(False)
        delay = self.backoff.next()
        if message != self.source_error:
            log.error("%s; retrying with backoff (up to %.0f s)", message, self.backoff.most)
            self.notifier.status(f"camera fault: {message}")
        else:
            log.debug("%s; retrying in %.1f s", message, delay)
        self.source_error = message
        deadline = time.monotonic() + delay
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            self._between_frames()

    # ---- commands ---------------------------------------------------------------------------------------

    def _parse_command(self, name: str, payload: bytes) -> dict:
        if name not in COMMANDS:
            raise CommandError(f"unknown command {name[:64]!r}: want one of {', '.join(COMMANDS)}")
        if len(payload) > MAX_COMMAND_BYTES:
            raise CommandError(f"payload of {len(payload)} bytes is too large (at most {MAX_COMMAND_BYTES})")
        if not payload.strip():
            return {}
        try:
            args = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise CommandError("payload is not JSON: send nothing or an object like {\"sensor\": \"name\"}") from None
        if not isinstance(args, dict):
            raise CommandError(f"payload must be a JSON object, not {type(args).__name__}")
        allowed = {"id"} | ({"sensor"} if name in ("read", "snapshot") else set())
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise CommandError(f"unknown key {unknown[0][:64]!r} for {name}: allowed {', '.join(sorted(allowed))}")
        sensor = args.get("sensor")
        if sensor is not None and (not isinstance(sensor, str) or sensor not in {s.name for s in self.sensors}):
            raise CommandError(f"unknown sensor {str(sensor)[:64]!r}: have {', '.join(s.name for s in self.sensors)}")
        return args

    def _run_command(self, name: str, payload: bytes) -> None:
        reply: dict = {"command": name[:64]}
        try:
            args = self._parse_command(name, payload)
            if "id" in args:
                reply["id"] = args["id"]
            chosen = [s for s in self.sensors if args.get("sensor") in (None, s.name)]
            if name == "reload":
                error = self.reload()
                if error:
                    raise CommandError(error)
            elif self.last_frame is None:
                raise CommandError("no frame has been read yet")
            elif name == "read":
                reply["values"] = self._read_now(chosen)
            else:
                reply["snapshots"] = self._snapshot(chosen)
            reply["ok"] = True
        except CommandError as exc:
            log.warning("command %s refused: %s", name[:64], exc)
            reply.update(ok=False, error=str(exc))
        except Exception as exc:  # the command failed on our side; say so, keep running
            log.exception("command %s failed", name[:64])
            reply.update(ok=False, error=f"{exc.__class__.__name__}: {exc}")
        if self.publisher is not None:
            self.publisher.publish(self.publisher.topics.command_result, json.dumps(reply))

    def _read_now(self, chosen) -> dict:
        """Read the last frame now and publish each chosen sensor's reading, stable or not."""
        readings = self._read_sensors(self.last_frame)
        values = {}
        for sensor, reading in zip(self.sensors, readings):
            if sensor in chosen:
                sensor.last = reading
                self._publish(sensor, reading, (ON_DEMAND,))
                values[sensor.name] = reading.value
        return values

    def _snapshot(self, chosen) -> list:
        """Publish the last frame, annotated with each chosen sensor's box and number, as a JPEG."""
        from device.overlay import annotate, encode_jpeg

        topics = []
        for sensor in chosen:
            last = sensor.last or Reading(value=None, confidence=0.0)
            image = encode_jpeg(annotate(self.last_frame, last.box, last.value, last.confidence))
            topic = self.publisher.topics.snapshot(sensor.name) if self.publisher is not None else None
            if topic is not None:
                self.publisher.publish(topic, image, qos=1, retain=True)
                topics.append(topic)
        return topics

    # ---- reload and shutdown ----------------------------------------------------------------------------

    def reload(self) -> str | None:
        """Re-read config and model; on any error keep running as before and return the message."""
        if self.reload_parts is None:
            return "this service was started without a config to reload"
        self.notifier.reloading()
        try:
            parts = self.reload_parts(self)
        except DigitcamError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            self.notifier.ready()
            return f"reload failed: {exc}"
        if "source" in parts and parts["source"] is not self.source:
            self.source.close()
            self.source, self.source_open = parts["source"], False
        self.recognizer = parts.get("recognizer", self.recognizer)
        self._model = self.recognizer.describe()
        self.sensors = parts.get("sensors", self.sensors)
        self.locator = parts.get("locator", self.locator)
        self._box_cache.clear()
        if self.publisher is not None and "discovery" in parts:
            self.publisher.set_discovery(parts["discovery"])
        log.info("reloaded: %d sensor(s), model %s", len(self.sensors), self._model.get("version"))
        self.notifier.ready()
        return None

    def _shutdown(self) -> None:
        self.notifier.stopping()
        self.source.close()
        if self.publisher is not None:
            self.publisher.close(self.flush_timeout_s)
        log.info("stopped after %d frame(s)", self.frame_no)


# ---- building the parts from a config -------------------------------------------------------------------


def build_locator(cfg: Config):
    """The locator model when a sensor asks for ``locate = true``; whole frame (with a warning) if none exists."""
    if not any(s.locate for s in cfg.sensors):
        return None
    from device.locate import default_locator

    locator = default_locator(Path(cfg.device.locator) if cfg.device.locator else None,
                              threads=cfg.device.threads, runtime=cfg.device.runtime)
    if locator is None:
        log.warning("no locator model installed: sensors with locate = true read the whole frame")
    return locator


def build_recognizer(cfg: Config):
    from device.cli import default_model
    from device.recognize import Recognizer

    return Recognizer(cfg.device.model or default_model(), threads=cfg.device.threads, runtime=cfg.device.runtime)


def discovery_for(cfg: Config, recognizer) -> list:
    from device.discovery import discovery_messages
    from device.mqtt import Topics

    if not cfg.mqtt.discovery:
        return []
    topics = Topics(cfg.mqtt.topic_prefix, cfg.device.name)
    return discovery_messages(topics, cfg.sensors, recognizer.describe(), cfg.mqtt.discovery_prefix)


def reloader(config_path: Path, running: Config):
    """A reload function for the Service: new config -> new parts; device/mqtt changes need a restart."""
    state = {"config": running}

    def reload(service: Service) -> dict:
        cfg = load_config(config_path)
        old = state["config"]
        if cfg.device.name != old.device.name or cfg.mqtt != old.mqtt or cfg.state_dir != old.state_dir:
            log.warning("changes to [mqtt], device name or state_dir take effect after a restart")
        parts = {"recognizer": build_recognizer(cfg), "sensors": build_sensors(cfg.sensors, service.sensors),
                 "locator": build_locator(cfg), "discovery": None}
        parts["discovery"] = discovery_for(cfg, parts["recognizer"])
        if cfg.camera != old.camera:
            parts["source"] = build_source(cfg.camera)
        state["config"] = cfg
        log.info("config %s: %s", config_path, describe(cfg))
        return parts

    return reload


def build_service(cfg, printer=None, notifier: Notifier | None = None, source=None):
    """The daemon's parts built from its config and wired together once: ``main`` and bench/daemon.py use it.

    Returns ``(service, publisher)``; the publisher is None without an ``[mqtt] host`` and is not started.
    The model is loaded before the camera is opened, so a bad model fails before any device is touched.
    """
    from device.mqtt import Publisher, Topics
    from device.spool import Spool

    recognizer = build_recognizer(cfg)
    source = source if source is not None else build_source(cfg.camera)
    publisher = None
    if cfg.mqtt.host:
        topics = Topics(cfg.mqtt.topic_prefix, cfg.device.name)
        spool = Spool(cfg.state_dir / "spool", cfg.device.spool_max)
        publisher = Publisher(cfg.mqtt, topics, spool, discovery=discovery_for(cfg, recognizer))
    service = Service(source, recognizer, build_sensors(cfg.sensors), publisher, locator=build_locator(cfg),
                      notifier=notifier if notifier is not None else Notifier(), printer=printer,
                      stats_interval_s=cfg.mqtt.stats_interval_s,
                      backoff=Backoff(cfg.camera.retry_min_s, cfg.camera.retry_max_s),
                      reload=reloader(cfg.path, cfg), flush_timeout_s=cfg.device.flush_timeout_s,
                      unusable_after_s=cfg.camera.read_timeout_s)
    if publisher is not None:
        publisher.on_command = service.command
    return service, publisher


def main(args) -> int:
    """``digitcam run --config FILE``: a bad config or model exits 2 here, before anything starts."""
    cfg = load_config(args.config)
    log.info("config %s: %s", cfg.path, describe(cfg))
    if not cfg.mqtt.host and not args.print_readings:
        log.warning("no [mqtt] host configured and no --print: readings go nowhere but the log")
    printer = (lambda line: print(line, flush=True)) if args.print_readings else None
    service, publisher = build_service(cfg, printer=printer)
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
