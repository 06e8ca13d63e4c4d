"""The setup-and-watch page: live view with the boxes, the readings, draw and save an ROI, set a meter's value.

Served by the daemon itself on ``[web] bind:port`` (default 127.0.0.1:8090, off unless ``enabled``) with the
standard library's ``ThreadingHTTPServer`` (chosen by measurement, ``docs/WEB.md``). This module is the
server and its routes; three rules keep it from hurting the frame loop:

* the frame thread only hands over references, and frames are drawn and encoded only while a live view is
  open, in the page's own thread (``device/web_feed.py``);
* anything that needs the recognizer (a preview of a drawn ROI, ``set_value``) is queued as a call the
  frame thread runs between frames, as MQTT commands are (``device/web_actions.py``), and a request waits
  for it with a timeout, never the other way round;
* connections are capped, sockets time out, bodies are capped: a slow or hostile client holds a handler
  thread, never the loop.

Safety (``device/web_guard.py``): the CSRF token on every POST, the token (or this machine's own Host name)
on every request. No path from a request reaches the file system: the static files (``device/web/``) are
read into memory at start; the only files touched are the daemon's own config (``device/web_roi.py``) and
the crop store's files of a configured sensor, named by a string that must match the store's name pattern.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from device.errors import ConfigError, WebError
from device.web_actions import ServiceActions
from device.web_feed import WebState, stream_mjpeg
from device.web_guard import PUBLIC, Guard, read_body

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("web")
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}
MAX_CONNECTIONS = 16
MAX_STREAMS = 4
SOCKET_TIMEOUT_S = 10.0


class WebServer:
    """The page's server: ``start()`` binds and serves in daemon threads; ``close()`` stops it."""

    def __init__(self, web_cfg, state: WebState, actions, device_name: str = "digitcam"):
        self.cfg = web_cfg
        self.state = state
        self.actions = actions
        self.device_name = device_name
        self.guard = Guard(web_cfg.token, web_cfg.bind)
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
        log.info("web page on http://%s:%d/%s", self.cfg.bind, self.port,
                 "" if not self.guard.token else " (token required)")
        return self

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

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
        return {"device": self.device_name, "frame_no": state.frame_no, "csrf": self.guard.csrf,
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
        if not self.web.guard.host_ok(self.headers):
            self._error(403, "this page answers only to this machine's own name (Host header)")
            return None
        if path in PUBLIC or self.web.guard.authorized(self.headers):
            return path
        if self.command == "GET" and path == "/":
            self._send(303, b"", "text/plain", {"Location": "/login"})
        else:
            self._error(403, "a token is needed: open /login")
        return None

    def _body(self) -> dict:
        return read_body(self.headers, self.rfile)

    # ---- methods ----

    def do_GET(self):
        path = self._guard()
        if path is None:
            return
        try:
            if path in self.web.static:
                body, kind = self.web.static[path]
                if path == "/":
                    body = body.replace(b"{{csrf}}", self.web.guard.csrf.encode()).replace(
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
            if not self.web.guard.csrf_ok(self.headers):
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
        cookie = self.web.guard.login_cookie(str(body.get("token", "")))
        self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})

    def _stream(self):
        """The live view (``device.web_feed.stream_mjpeg``), at most ``MAX_STREAMS`` at once."""
        if not self.web._streams.acquire(blocking=False):
            raise WebError(503, f"at most {MAX_STREAMS} live views at once")
        try:
            stream_mjpeg(self, self.web.state, lambda: self.web.httpd is not None, SOCKET_TIMEOUT_S)
        finally:
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
