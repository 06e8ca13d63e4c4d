"""The page's guards against the real daemon (docs/WEB.md's table): beyond localhost every request needs the
token and every write the CSRF token, a foreign ``Host`` is refused (DNS rebinding), and fuzzed requests,
raw garbage and silent connections neither crash the daemon nor change or add a file, while frames keep
coming.

Apart from tests/device/test_web.py (the page at work) because each test here is an attack on it.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np

from device.config import load_config
from device.web import MAX_CONNECTIONS
from tests.support import free_port, wait_until
from tests.web_support import TOKEN, answers, api_state, digest, frame_no, request, sample_config, start_daemon


# ---- guards ---------------------------------------------------------------------------------------------------


def test_beyond_localhost_every_request_needs_the_token_and_writes_the_csrf_token(tmp_path, in_process):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    port = free_port()
    path = sample_config(tmp_path, port=port, web=f'bind = "0.0.0.0"\ntoken_file = "{token}"')
    before = digest(path)
    in_process(path)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    wait_until(lambda: api_state(port, bearer)["frame_no"] > 0, timeout=60)
    csrf = api_state(port, bearer)["csrf"]
    roi = {"sensor": "counter", "roi": [50, 50, 210, 70]}

    assert request(port, "POST", "/api/roi", roi, {"X-CSRF-Token": csrf})[0] == 403  # no token
    assert request(port, "POST", "/api/roi", roi, {"Authorization": "Bearer wrong", "X-CSRF-Token": csrf})[0] == 403
    assert request(port, "POST", "/api/roi", roi, bearer)[0] == 403  # token but no CSRF token
    assert request(port, "GET", "/api/state")[0] == 403
    assert request(port, "GET", "/stream.mjpg")[0] == 403
    status, headers, _ = request(port, "GET", "/")
    assert status == 303 and headers["Location"] == "/login"
    assert digest(path) == before

    status, _, _ = request(port, "POST", "/login", b"token=nope", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403
    status, headers, _ = request(port, "POST", "/login", f"token={TOKEN}".encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    cookie = {"Cookie": headers["Set-Cookie"].split(";")[0]}
    status, _, page = request(port, "GET", "/", headers=cookie)
    assert status == 200 and csrf.encode() in page
    status, _, body = request(port, "POST", "/api/roi", roi, {**cookie, "X-CSRF-Token": csrf})
    assert status == 200 and json.loads(body)["saved"] is True
    assert load_config(path).sensors[0].roi == (50, 50, 210, 70)


def test_local_page_refuses_a_foreign_host_name_and_writes_without_csrf(tmp_path, in_process):
    """DNS rebinding: a page from evil.example resolved to 127.0.0.1 must not read the CSRF token."""
    port = free_port()
    path = sample_config(tmp_path, port=port)
    before = digest(path)
    in_process(path)
    wait_until(lambda: answers(port), timeout=60)
    assert request(port, "GET", "/", headers={"Host": f"evil.example:{port}"})[0] == 403
    assert request(port, "GET", "/api/state", headers={"Host": "evil.example"})[0] == 403
    assert request(port, "GET", "/", headers={"Host": f"localhost:{port}"})[0] == 200
    assert request(port, "POST", "/api/roi", {"sensor": "counter", "roi": [1, 1, 50, 50]})[0] == 403
    assert digest(path) == before


# ---- fuzz --------------------------------------------------------------------------------------------------


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, return whatever comes back before the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:
            pass
    return b"".join(chunks)


def hold_slot(port: int) -> socket.socket:
    """A silent connection the server keeps (a handler thread waits on it); retried while it is refused
    because the fuzz requests' handlers still hold slots."""
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(0.3)
        try:
            if s.recv(1) == b"":  # closed at once: over the cap
                s.close()
                time.sleep(0.1)
                continue
        except socket.timeout:
            return s  # the server waits for a request on it
        raise AssertionError("the server sent something unasked")
    raise AssertionError("no connection slot came free")


def files(folder: Path) -> dict:
    """Name -> sha256 of the files in ``folder``, less the daemon's own output and log."""
    return {p.name: digest(p) for p in folder.iterdir() if p.is_file() and p.suffix not in (".out", ".err")}


def test_fuzzed_requests_never_crash_the_daemon_or_touch_a_file(tmp_path, daemons):
    port = free_port()
    path = sample_config(tmp_path, port=port)
    daemon = start_daemon(daemons, path)
    csrf = api_state(port)["csrf"]
    before = files(tmp_path)
    rng = np.random.default_rng(18)
    head = {"X-CSRF-Token": csrf}
    cases = [
        ("GET", "/../../etc/passwd", None, {}), ("GET", "/%2e%2e/%2e%2e/etc/passwd", None, {}),
        ("GET", "/app.js/../../digitcam.toml", None, {}), ("GET", "//etc/passwd", None, {}),
        ("GET", "/digitcam.toml", None, {}), ("GET", "/web/index.html", None, {}),
        ("PUT", "/api/roi", {"sensor": "counter", "roi": [1, 1, 9, 9]}, head),
        ("DELETE", "/", None, {}), ("PATCH", "/api/roi", b"{}", head), ("OPTIONS", "/api/roi", None, {}),
        ("POST", "/api/roi", b"x" * 100_000, head), ("POST", "/api/roi", b"{not json", head),
        ("POST", "/api/roi", b"[1, 2]", head), ("POST", "/api/roi", {"sensor": "../../etc/passwd", "roi": [1, 1, 5, 5]}, head),
        ("POST", "/api/roi", {"sensor": "counter", "roi": "[1,1,5,5]"}, head),
        ("POST", "/api/roi", {"sensor": "counter", "roi": [1e9, 1, 5, 5]}, head),
        ("POST", "/api/roi", {"sensor": "counter", "roi": [-5, 1, 5, 5]}, head),
        ("POST", "/api/roi", {"sensor": "counter", "roi": [1, 1, 10 ** 30, 5]}, head),
        ("POST", "/api/roi", {"sensor": {"$ne": 1}, "roi": [1, 1, 5, 5]}, head),
        ("POST", "/api/set_value", {"sensor": "counter", "value": "9" * 5000}, head),
        ("POST", "/api/set_value", {"sensor": "counter", "value": None}, head),
        ("POST", "/api/preview", {"sensor": "counter", "roi": [0, 0, 320, 180], "x": "\u0000"}, head),
        ("POST", "/api/roi", {"sensor": "counter", "roi": [1, 1, 5, 5]}, {"X-CSRF-Token": "forged"}),
        ("POST", "/api/nothing", {}, head), ("GET", "/api/state?" + "a=1&" * 2000, None, {}),
    ]
    for method, target, body, headers in cases:
        status, _, _ = request(port, method, target, body, headers)
        assert status in (400, 403, 404, 411, 413, 415, 422, 501, 200), (method, target, status)
        if status == 200:
            assert target == "/api/preview" or target.startswith("/api/state"), (method, target)
    garbage = [b"\x00" * 3000, b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 70_000 + b"\r\n\r\n",
               b"GET " + b"/a" * 40_000 + b" HTTP/1.1\r\n\r\n", b"POST /api/roi HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
               b"POST /api/roi HTTP/1.1\r\nContent-Length: 99999999999\r\nX-CSRF-Token: " + csrf.encode() + b"\r\n\r\n",
               b"GET / HTTP/1.1\r\n" + b"H: v\r\n" * 300 + b"\r\n", b"\xff\xfe HTTP/9.9\r\n\r\n"]
    garbage += [bytes(rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8)) for _ in range(20)]
    for data in garbage:
        raw(port, data)
    for _ in range(3):  # a live view that goes away mid-stream (a closed tab) is no error
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"multipart/x-mixed-replace" in s.recv(4096)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    time.sleep(1.0)
    # slow clients hold only their own handler: with all but one slot held by silent connections the page
    # still answers and frames keep coming; a connection over the cap is closed at once, not queued
    idle = [hold_slot(port) for _ in range(MAX_CONNECTIONS - 1)]
    try:
        frames = frame_no(port)
        wait_until(lambda: frame_no(port) > frames + 5, timeout=20)
        idle.append(hold_slot(port))
        started = time.monotonic()
        assert raw(port, b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") == b""
        assert time.monotonic() - started < 2
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: answers(port), timeout=20)
    assert daemon.proc.poll() is None, daemon.log()
    assert files(tmp_path) == before
    assert "Traceback" not in daemon.log() and "WARNING device.web" not in daemon.log()
