"""The setup-and-watch page: live view with the boxes, the readings, draw and save an ROI, set a meter's value.

Served by the daemon itself on ``[web] bind:port`` (default 127.0.0.1:8090, off unless ``enabled``) with the
standard library's ``ThreadingHTTPServer`` (chosen by measurement, ``docs/WEB.md``). Three rules keep it
from hurting the frame loop:

* the frame thread only hands over references (``WebState.frame``); a frame is copied at most ``fps``
  times a second and only while a live view is open, and JPEG encoding happens in the viewer's thread;
* anything that needs the recognizer (a preview of a drawn ROI, ``set_value``) is queued as a call the
  frame thread runs between frames (``WebState.call``), as MQTT commands are, and a request waits for it
  with a timeout, never the other way round;
* connections are capped, sockets time out, bodies are capped: a slow or hostile client holds a handler
  thread, never the loop.

Safety: every POST needs the page's CSRF token (``X-CSRF-Token``) and a JSON body; with a token file
(required for a non-local bind) every request needs the token (a cookie after ``/login``, or
``Authorization: Bearer``); without one the ``Host`` header must name this machine (no DNS rebinding).
No path from a request reaches the file system: the static files are read into memory at start; the only
files touched are the daemon's own config (``save_roi``: minimal edit, validated, atomic, ``.bak``) and the
crop store's files of a configured sensor, named by a string that must match the store's name pattern.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

import numpy as np

from device.errors import ConfigError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("web")
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}
MAX_BODY = 4096  # the largest write (an ROI, a value) is well under 200 bytes
MAX_CONNECTIONS = 16
MAX_STREAMS = 4
MAX_CROPS = 12  # review crops listed at once
SOCKET_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 5.0  # how long a request waits for the frame thread
WATCH_GRACE_S = 3.0  # a state poll keeps the readings' clock "watched" this long
SESSION_COOKIE = "digitcam_session"
ROI_COLOUR = (0, 200, 255)  # BGR amber: the configured ROI; the located box is drawn green/red by device.overlay
BOUNDARY = "digitcamframe"


class WebError(Exception):
    """A request we refuse: the HTTP status and a one-line reason for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---- what the frame thread hands over ---------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One frame kept for the live view, with what each sensor had on it (copied: the loop moves on)."""

    seq: int
    frame_no: int
    image: np.ndarray
    sensors: tuple  # (name, roi, box, value, confidence) per sensor


class WebState:
    """Between the frame thread and the HTTP threads. The frame thread's side (``frame``, ``published``,
    ``run_calls``) is non-blocking and does almost nothing unless someone watches."""

    def __init__(self, fps: float = 4.0):
        self.interval = 1.0 / fps
        self.frame_no = 0
        self.sensors: list = []
        self.published_payloads: dict = {}  # sensor name -> the last published payload (dict)
        self.viewers = 0  # open live views; frames are copied only while > 0 (changed under _cond)
        self._next_grab = 0.0
        self._seq = 0
        self._snapshot: Snapshot | None = None
        self._frame_shape: tuple | None = None
        self._times: deque = deque(maxlen=256)  # monotonic time of recent frames, for frames/s
        self._ms: deque = deque(maxlen=256)  # their inference ms
        self._calls: deque = deque(maxlen=16)
        self._cond = threading.Condition()
        self._jpeg: tuple[int, bytes] | None = None  # (seq, JPEG) of the latest snapshot, encoded once
        self._encoder: threading.Thread | None = None

    # ---- the frame thread ----

    def frame(self, image: np.ndarray, frame_no: int, sensors, ms: float) -> None:
        """Called by the loop after each processed frame: references only, a copy only when watched and due."""
        now = time.monotonic()
        self.frame_no = frame_no
        self.sensors = sensors
        self._frame_shape = image.shape
        self._times.append(now)
        self._ms.append(ms)
        if self.viewers and now >= self._next_grab:
            self._next_grab = now + self.interval
            self._grab(image, frame_no, sensors)

    def _grab(self, image: np.ndarray, frame_no: int, sensors) -> None:
        rows = []
        for s in sensors:
            last = s.last
            rows.append((s.name, tuple(s.config.roi), last.box if last else None, last.value if last else None,
                         float(last.confidence) if last else 0.0))
        with self._cond:
            self._seq += 1
            self._snapshot = Snapshot(self._seq, frame_no, image.copy(), tuple(rows))
            self._cond.notify_all()

    def published(self, sensor_name: str, payload: dict) -> None:
        """Called by the loop for each published reading (a few a minute): the page shows the last."""
        self.published_payloads[sensor_name] = payload

    def run_calls(self) -> None:
        """Called by the loop between frames: run what the page queued (it needs the recognizer)."""
        while self._calls:
            fn, future = self._calls.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except Exception as exc:  # the page gets the message; the loop carries on
                future.set_exception(exc)

    # ---- the HTTP threads ----

    def call(self, fn, timeout: float = CALL_TIMEOUT_S):
        """Run ``fn`` on the frame thread and return its result; WebError 503 if the loop does not get to it."""
        if len(self._calls) == self._calls.maxlen:
            raise WebError(503, "the daemon is busy; try again")
        future: Future = Future()
        self._calls.append((fn, future))
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise WebError(503, f"the frame loop did not answer within {timeout:.0f} s") from None

    def watch(self, delta: int) -> None:
        """A live view opens (+1) or closes (-1); the first one starts the encoder thread."""
        with self._cond:
            self.viewers += delta
            if self._encoder is None:
                self._encoder = threading.Thread(target=self._encode_loop, name="web-encoder", daemon=True)
                self._encoder.start()

    def wait_jpeg(self, after_seq: int, timeout: float) -> tuple[int, bytes] | None:
        """The next encoded frame ``(seq, JPEG)`` newer than ``after_seq``, None on timeout: a live view's pace."""
        with self._cond:
            self._cond.wait_for(lambda: self._jpeg is not None and self._jpeg[0] > after_seq, timeout)
            jpeg = self._jpeg
        return jpeg if jpeg is not None and jpeg[0] > after_seq else None

    def _encode_loop(self) -> None:
        """Draw and encode each snapshot once, in this one thread however many viewers come and go (their
        handler threads only send bytes), so the big per-frame buffers live in one malloc arena."""
        done = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._snapshot is not None and self._snapshot.seq > done)
                snap = self._snapshot
            done = snap.seq
            try:
                data = render_jpeg(snap)
            except Exception:  # a frame it cannot draw (odd shape): say so once, keep serving the next
                log.warning("web: cannot draw frame %d for the live view", snap.frame_no, exc_info=True)
                continue
            with self._cond:
                self._jpeg = (snap.seq, data)
                self._cond.notify_all()

    def frame_size(self) -> tuple[int, int] | None:
        shape = self._frame_shape
        return None if shape is None else (int(shape[1]), int(shape[0]))

    def rates(self) -> dict:
        """Frames/s over the last few seconds and the median inference ms of recent frames."""
        times, ms = tuple(self._times), tuple(self._ms)
        now = time.monotonic()
        recent = [t for t in times if now - t <= 5.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        return {"fps": round(fps, 1), "inference_ms_p50": round(float(np.median(ms)), 2) if ms else None}


def render_jpeg(snap: Snapshot, quality: int = 80) -> bytes:
    """A snapshot with each sensor's ROI (amber) and its located box with the reading (device.overlay)."""
    import cv2

    from device.contract import to_gray
    from device.overlay import annotate

    image = snap.image
    colour = image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    canvas = image.copy() if colour else cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2BGR)
    for _name, roi, box, value, confidence in snap.sensors:
        if roi:  # just outside the ROI, so a located box on the same pixels stays visible
            x, y, w, h = roi
            cv2.rectangle(canvas, (x - 1, y - 1), (x + w, y + h), ROI_COLOUR, 1)
        if box is not None:
            canvas = annotate(canvas, box, value, confidence)
    # full-resolution colour (4:4:4): with the usual 4:2:0 a 1-pixel amber line fades into the grey around it
    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality,
                                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


# ---- the config file edit ----------------------------------------------------------------------------------


_HEADER = re.compile(r"^\s*\[")
_SENSOR_HEADER = re.compile(r"^\s*\[\[\s*sensor\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_\-\"']+)\s*=")


def _sensor_index(text: str, sensor: str) -> int:
    data = tomllib.loads(text)
    tables = data.get("sensor", [])
    for i, table in enumerate(tables if isinstance(tables, list) else []):
        if isinstance(table, dict) and table.get("name") == sensor:
            return i
    raise WebError(404, f"sensor {sensor!r} is not in the config file")


def set_roi_in_text(text: str, sensor: str, roi) -> str:
    """The config text with only sensor ``sensor``'s ``roi`` line changed (or added after its name):
    comments, order and every other byte stay. Checked by parsing both and comparing."""
    index = _sensor_index(text, sensor)
    lines = text.splitlines(keepends=True)
    value = f"[{', '.join(str(int(v)) for v in roi)}]"
    start, seen = None, -1
    for number, line in enumerate(lines):
        if _SENSOR_HEADER.match(line):
            seen += 1
            if seen == index:
                start = number
                break
    if start is None:
        raise WebError(409, "the sensors are not written as [[sensor]] tables; edit the file by hand")
    end = next((n for n in range(start + 1, len(lines)) if _HEADER.match(lines[n])), len(lines))
    name_line = None
    for number in range(start + 1, end):
        match = _KEY.match(lines[number])
        if not match:
            continue
        key = match.group(2).strip("\"'")
        if key == "name" and name_line is None:
            name_line = number
        if key == "roi":
            last = number  # an array may go on over several lines: up to the line with its closing bracket
            while "]" not in _code(lines[last]) and last + 1 < end:
                last += 1
            tail = _code(lines[last])
            comment = lines[last][len(tail):].rstrip("\r\n")
            newline = "\n" if lines[last].endswith("\n") else ""
            rest = tail[tail.rindex("]") + 1:] if "]" in tail else ""  # the spaces before a comment stay
            rest = rest if comment else rest.rstrip()
            lines[number:last + 1] = [f"{match.group(1)}roi = {value}{rest}{comment}{newline}"]
            break
    else:
        at = name_line if name_line is not None else start
        indent = _KEY.match(lines[at]).group(1) if name_line is not None else ""
        if not lines[at].endswith("\n"):
            lines[at] += "\n"
        lines.insert(at + 1, f"{indent}roi = {value}\n")
    edited = "".join(lines)
    before, after = tomllib.loads(text), tomllib.loads(edited)
    before["sensor"][index]["roi"] = [int(v) for v in roi]
    if before != after:
        raise WebError(409, "the config file could not be edited safely; edit it by hand")
    return edited


def _code(line: str) -> str:
    """A line without its trailing comment (a '#' outside a string)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line.rstrip("\r\n")


def snippet(sensor: str, roi) -> str:
    return f"[[sensor]]\nname = \"{sensor}\"\nroi = [{', '.join(str(int(v)) for v in roi)}]\n"


def _write_atomically(path: Path, data: bytes, like: os.stat_result) -> None:
    """Temp file in the same folder, fsynced, the old file's mode (and owner, as root), renamed over, folder fsynced."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), like.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.fchown(f.fileno(), like.st_uid, like.st_gid)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_roi(config_path: Path, sensor: str, roi, frame_size=None) -> dict:
    """Write ``roi`` for ``sensor`` into the config file: re-read now, edited minimally, checked like
    ``check-config``, the old file kept as ``<name>.bak``, written atomically. A file the daemon may not
    write (``ProtectSystem=strict``) gives the TOML to paste instead (``saved: false``)."""
    from device.config import parse_config

    roi = check_roi(roi, frame_size)
    try:
        old = config_path.read_bytes()
        text = old.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebError(500, f"cannot read {config_path}: {getattr(exc, 'strerror', None) or exc}") from None
    edited = set_roi_in_text(text, sensor, roi)
    try:
        parse_config(edited, config_path)
    except ConfigError as exc:
        raise WebError(422, str(exc)) from None
    answer = {"sensor": sensor, "roi": roi, "path": str(config_path), "snippet": snippet(sensor, roi)}
    backup = config_path.with_name(config_path.name + ".bak")
    if not (os.access(config_path, os.W_OK) and os.access(config_path.parent, os.W_OK)):
        return {**answer, "saved": False, "error": f"{config_path} is read-only for the daemon"}
    try:
        like = config_path.stat()
        _write_atomically(backup, old, like)
        _write_atomically(config_path, edited.encode("utf-8"), like)
    except OSError as exc:
        return {**answer, "saved": False, "error": f"cannot write {config_path}: {exc.strerror or exc}"}
    log.warning("web: sensor %s: roi set to %s in %s (old file kept as %s)", sensor, roi, config_path, backup.name)
    return {**answer, "saved": True, "backup": str(backup)}


def check_roi(roi, frame_size=None) -> list[int]:
    """``[x, y, w, h]``: whole pixels, inside the frame when its size is known."""
    if (not isinstance(roi, list) or len(roi) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)):
        raise WebError(400, "roi must be [x, y, width, height] in whole pixels")
    x, y, w, h = roi
    if x < 0 or y < 0 or w < 2 or h < 2:
        raise WebError(400, f"roi needs x, y >= 0 and width, height >= 2, not {roi}")
    if frame_size is not None and (x + w > frame_size[0] or y + h > frame_size[1]):
        raise WebError(400, f"roi {roi} does not fit the {frame_size[0]}x{frame_size[1]} frame")
    return [x, y, w, h]


# ---- what the page asks of the daemon ------------------------------------------------------------------


class ServiceActions:
    """The page's view of a running ``device.service.Service``: only plain attributes are read from the
    HTTP threads; anything touching the recognizer or a smoother runs on the frame thread via ``state.call``."""

    def __init__(self, service, state: WebState, config_path: Path):
        self.service = service
        self.state = state
        self.config_path = Path(config_path)
        self._save_lock = threading.Lock()

    def _sensor(self, name):
        for sensor in self.service.sensors:
            if sensor.name == name:
                return sensor
        raise WebError(404, f"unknown sensor {str(name)[:64]!r}")

    def status(self) -> dict:
        service = self.service
        queue = service.publisher.queue_status() if service.publisher is not None else {"queue": None}
        return {"camera": "online" if service.camera.online else "offline", "camera_error": service.camera.error,
                "frames": service.stats.frames, "errors": service.stats.errors,
                "dropped_frames": service.source.dropped, "queue": queue.get("queue"),
                "spool_in_memory": queue.get("spool_in_memory")}

    def preview(self, name, roi) -> dict:
        """The crop ``roi`` of the last frame as the model sees it (PNG) and what the model reads in it."""
        import cv2

        from device.contract import prepare_crop
        from device.locate import crop

        roi = check_roi(roi, self.state.frame_size())
        self._sensor(name)

        def run():
            frame = self.service.last_frame
            if frame is None:
                raise WebError(409, "no frame has been read yet")
            piece = crop(frame, tuple(roi))
            (reading,), ms = self.service.recognizer.read([piece])
            return reading, prepare_crop(piece, self.service.recognizer.spec)

        reading, model_input = self.state.call(run)
        png = cv2.imencode(".png", model_input[:, :, 0])[1].tobytes()
        return {"sensor": name, "roi": roi, **reading.as_dict(),
                "crop": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}

    def save_roi(self, name, roi) -> dict:
        self._sensor(name)
        with self._save_lock:
            answer = save_roi(self.config_path, name, roi, self.state.frame_size())
        if answer["saved"]:
            self.service.request_reload()
        return answer

    # ---- crops kept for review (device/cropstore.py; ``digitcam crops`` does the same from a shell) ----

    def _crop(self, sensor, name):
        """A stored crop of a configured sensor, by a name that must be a crop store name (no path)."""
        from device.cropstore import NAME, parse_name

        self._sensor(sensor)
        if not isinstance(name, str) or not NAME.match(name):
            raise WebError(400, "not a crop name")
        path = self._crops_folder(sensor) / name
        if not path.is_file():
            raise WebError(404, f"no crop {name} for sensor {sensor}")
        return parse_name(path)

    def _crops_folder(self, sensor) -> Path:
        root = getattr(self.service.crops, "root", None)
        if root is None:
            raise WebError(409, "this daemon keeps no crops")
        return Path(root) / sensor

    def crops(self, sensor) -> dict:
        """The sensor's review crops (newest first, at most MAX_CROPS) and how many of each kind it has."""
        from device.cropstore import CropError, scan

        self._sensor(sensor)
        try:
            stored = scan(self._crops_folder(sensor))
        except CropError:
            stored = []
        review = [c for c in reversed(stored) if c.kind == "review"][:MAX_CROPS]
        kinds = {kind: sum(c.kind == kind for c in stored) for kind in ("auto", "human", "review")}
        return {"sensor": sensor, "counts": kinds,
                "crops": [{"name": c.name, "raw": c.raw, "confidence": c.confidence, "at": c.at} for c in review]}

    def crop_png(self, sensor, name) -> bytes:
        return self._crop(sensor, name).path.read_bytes()

    def label_crop(self, sensor, name, label) -> dict:
        """A person's label for a crop: the file is renamed, as ``digitcam crops label`` does."""
        from device.cropstore import CropError, check_label, relabel_file

        crop = self._crop(sensor, name)
        try:
            moved = relabel_file(crop, check_label(label if isinstance(label, str) else ""))
        except CropError as exc:
            raise WebError(400, str(exc)) from None
        except OSError as exc:
            raise WebError(409, f"cannot rename the crop: {exc.strerror or exc}") from None
        log.info("web: sensor %s: crop %s labelled %s", sensor, crop.name, moved.label)
        return {"sensor": sensor, "name": moved.name, "label": moved.label}

    def set_value(self, name, value) -> dict:
        """A meter's ``set_value``: the MQTT command's own check and handler, run on the frame thread."""
        from device.commands import CommandError, parse_command
        from device.handlers import set_value

        self._sensor(name)
        payload = json.dumps({"sensor": name, "value": value}).encode()

        def run():
            command = parse_command("set_value", payload, [s.name for s in self.service.sensors])
            return set_value(self.service, command.chosen(self.service.sensors), command.args)

        try:
            return self.state.call(run)
        except CommandError as exc:
            raise WebError(400, str(exc)) from None


# ---- the HTTP server ----------------------------------------------------------------------------------------


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
PUBLIC = ("/login", "/app.css", "/app.js")  # no secrets in these: the login page needs them


class WebServer:
    """The page's server: ``start()`` binds and serves in daemon threads; ``close()`` stops it."""

    def __init__(self, web_cfg, state: WebState, actions, device_name: str = "digitcam"):
        self.cfg = web_cfg
        self.state = state
        self.actions = actions
        self.device_name = device_name
        self.token = web_cfg.token or ""
        self.csrf = secrets.token_urlsafe(32)
        self.session = hmac.new(self.token.encode(), b"digitcam-web-session", "sha256").hexdigest() if self.token else ""
        self.static = {route: (STATIC_DIR.joinpath(name).read_bytes(), kind) for route, (name, kind) in STATIC.items()}
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._streams = threading.BoundedSemaphore(MAX_STREAMS)
        self.httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.errors_seen: set = set()  # exception types a handler raised, logged once each

    @property
    def port(self) -> int:
        return self.httpd.server_address[1] if self.httpd is not None else self.cfg.port

    def start(self) -> "WebServer":
        family = socket.AF_INET6 if ":" in self.cfg.bind else socket.AF_INET
        try:
            self.httpd = _Server((self.cfg.bind, self.cfg.port), _Handler, family, self)
        except OSError as exc:
            raise ConfigError(f"web.port: cannot listen on {self.cfg.bind}:{self.cfg.port}: "
                              f"{exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="web", daemon=True)
        self._thread.start()
        log.info("web page on http://%s:%d/%s", self.cfg.bind, self.port, "" if not self.token else " (token required)")
        return self

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    # ---- checks ----

    def authorized(self, handler) -> bool:
        if not self.token:
            return True
        auth = handler.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return True
        for part in handler.headers.get("Cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == SESSION_COOKIE and hmac.compare_digest(value.encode(), self.session.encode()):
                return True
        return False

    def host_ok(self, handler) -> bool:
        """Without a token, only a Host naming this machine (a rebinding DNS name must not reach the page)."""
        if self.token:
            return True
        host = handler.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOOPBACK_HOSTS or name == self.cfg.bind

    def csrf_ok(self, handler) -> bool:
        return hmac.compare_digest(handler.headers.get("X-CSRF-Token", "").encode(), self.csrf.encode())

    # ---- the answers ----

    def state_json(self) -> dict:
        state = self.state
        payloads = state.published_payloads
        sensors = []
        for s in list(state.sensors):
            last = s.last
            sensors.append({
                "name": s.name, "roi": list(s.config.roi), "locate": bool(s.config.locate), "mode": s.config.mode,
                "meter": hasattr(s.smoother, "set_value"), "collect": bool(getattr(s.config, "collect", False)),
                "value": s.smoother.value,
                "raw": last.as_dict() if last is not None else None, "published": payloads.get(s.name),
            })
        size = state.frame_size()
        return {"device": self.device_name, "frame_no": state.frame_no, "csrf": self.csrf,
                "frame": None if size is None else {"width": size[0], "height": size[1]},
                "stats": {**state.rates(), **self.actions.status()}, "sensors": sensors}


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on connections: one over the cap is closed at once."""

    daemon_threads = True
    request_queue_size = 16

    def __init__(self, address, handler, family, web: WebServer):
        self.address_family = family
        self.web = web
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.web._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.web._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.web._slots.release()

    def handle_error(self, request, client_address):
        """A handler that raised: a bug (said once per kind, with its traceback), never the daemon's end."""
        kind = sys.exc_info()[0]
        if kind is not None and issubclass(kind, (ConnectionError, TimeoutError)):
            log.debug("web: %s went away (%s)", client_address[0], kind.__name__)  # a closed tab, a sleeping phone
            return
        level = logging.DEBUG if kind in self.web.errors_seen else logging.WARNING
        self.web.errors_seen.add(kind)
        log.log(level, "web: a request from %s failed", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Routes: GET / /app.js /app.css /api/state /stream.mjpg /api/crops /api/crop.png /login; POST /login
    /api/preview /api/roi /api/set_value /api/label. Anything else is 404 (unknown path) or 501 (unknown method)."""

    server_version = "digitcam"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    # one buffered write per answer, sent at once: headers and body in separate unbuffered writes meet the
    # client's delayed ACK on a kept-alive connection (~17 requests/s instead of thousands, docs/WEB.md)
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    @property
    def web(self) -> WebServer:
        return self.server.web

    def finish(self):
        try:
            super().finish()
        except OSError:  # the client went away with bytes of ours still buffered
            pass

    def log_message(self, fmt, *args):
        log.debug("web: %s %s", self.address_string(), fmt % args)

    # ---- plumbing ----

    def _send(self, status: int, body: bytes, kind: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self.close_connection = True
        self._json(status, {"ok": False, "error": message})

    def _guard(self) -> str | None:
        """The request's path if it may go on; else the refusal is sent and None returned."""
        path = urlsplit(self.path).path
        if not self.web.host_ok(self):
            self._error(403, "this page answers only to this machine's own name (Host header)")
            return None
        if path in PUBLIC or self.web.authorized(self):
            return path
        if self.command == "GET" and path == "/":
            self._send(303, b"", "text/plain", {"Location": "/login"})
        else:
            self._error(403, "a token is needed: open /login")
        return None

    def _body(self) -> dict:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise WebError(411, "a Content-Length is needed")
        if int(length) > MAX_BODY:
            raise WebError(413, f"a body of at most {MAX_BODY} bytes")
        raw = self.rfile.read(int(length))
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        if kind == "application/x-www-form-urlencoded":
            return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if kind != "application/json":
            raise WebError(415, "send application/json")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise WebError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise WebError(400, "the body must be a JSON object")
        return data

    # ---- methods ----

    def do_GET(self):
        path = self._guard()
        if path is None:
            return
        try:
            if path in self.web.static:
                body, kind = self.web.static[path]
                if path == "/":
                    body = body.replace(b"{{csrf}}", self.web.csrf.encode()).replace(
                        b"{{device}}", self.web.device_name.encode())
                self._send(200, body, kind)
            elif path == "/api/state":
                self._json(200, self.web.state_json())
            elif path == "/stream.mjpg":
                self._stream()
            elif path in ("/api/crops", "/api/crop.png"):
                query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if path == "/api/crops":
                    self._json(200, {"ok": True, **self.web.actions.crops(query.get("sensor"))})
                else:
                    self._send(200, self.web.actions.crop_png(query.get("sensor"), query.get("name")), "image/png")
            elif path == "/login":
                self._send(200, LOGIN_PAGE, "text/html; charset=utf-8")
            else:
                raise WebError(404, "no such page")
        except WebError as exc:
            self._error(exc.status, str(exc))

    def do_POST(self):
        path = self._guard()
        if path is None:
            return
        try:
            if path == "/login":
                return self._login(self._body())
            if not self.web.csrf_ok(self):
                raise WebError(403, "missing or wrong CSRF token (reload the page)")
            actions = {"/api/preview": self._preview, "/api/roi": self._roi, "/api/set_value": self._set_value,
                       "/api/label": self._label}
            if path not in actions:
                raise WebError(404, "no such action")
            self._json(200, {"ok": True, **actions[path](self._body())})
        except WebError as exc:
            self._error(exc.status, str(exc))

    def _preview(self, body):
        return self.web.actions.preview(body.get("sensor"), body.get("roi"))

    def _roi(self, body):
        return self.web.actions.save_roi(body.get("sensor"), body.get("roi"))

    def _set_value(self, body):
        return self.web.actions.set_value(body.get("sensor"), body.get("value"))

    def _label(self, body):
        return self.web.actions.label_crop(body.get("sensor"), body.get("name"), body.get("label"))

    def _login(self, body):
        token = str(body.get("token", ""))
        if not self.web.token or not hmac.compare_digest(token.encode(), self.web.token.encode()):
            time.sleep(1.0)  # a guesser gets one try a second per connection slot
            raise WebError(403, "wrong token")
        cookie = f"{SESSION_COOKIE}={self.web.session}; HttpOnly; SameSite=Strict; Path=/"
        self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})

    def _stream(self):
        """MJPEG: a part per new snapshot, at most ``fps`` a second; frames are copied only while this runs."""
        if not self.web._streams.acquire(blocking=False):
            raise WebError(503, f"at most {MAX_STREAMS} live views at once")
        state = self.web.state
        state.watch(+1)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            seq, data, idle = 0, None, 0.0
            while self.web.httpd is not None:
                jpeg = state.wait_jpeg(seq, 1.0)
                if jpeg is None:
                    idle += 1.0
                    if idle < SOCKET_TIMEOUT_S or data is None:
                        continue
                    # the camera is down: the last frame again now and then, so a viewer that has gone away
                    # (a phone put to sleep) fails a write and frees its slot
                    jpeg = seq, data
                idle, (seq, data) = 0.0, jpeg
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                                 .encode() + data + b"\r\n")
                self.wfile.flush()
        except (OSError, ValueError):  # the viewer went away (or timed out writing)
            pass
        finally:
            state.watch(-1)
            self.web._streams.release()


LOGIN_PAGE = b"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>digitcam login</title>
<link rel="stylesheet" href="/app.css"></head><body><main class="login"><h1>digitcam</h1>
<form method="post" action="/login"><label>Token <input name="token" type="password" autocomplete="current-password"
autofocus></label> <button>Open</button></form></main></body></html>"""


def start_web(cfg, service) -> WebServer | None:
    """The page for a running service, if ``[web] enabled``: wires a WebState into it and starts serving."""
    if not cfg.web.enabled:
        return None
    state = WebState(cfg.web.fps)
    service.web = state
    return WebServer(cfg.web, state, ServiceActions(service, state, cfg.path), cfg.device.name).start()
