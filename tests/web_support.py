"""What the web page's tests share (tests/device/test_web*.py): the bundled sample's config with the page on,
plain HTTP requests, the daemon's service in a thread, and the daemon process once its page answers.

Apart from tests/support.py, which the device, fault and benchmark tests share, because only the page's
tests use these. The ``in_process`` fixture over ``InProcess`` is in tests/device/conftest.py.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from pathlib import Path

from device.config import load_config
from device.daemon import build_service
from device.web import start_web
from tests.support import REPO, wait_until

SAMPLE = REPO / "samples" / "meter"
SAMPLE_ROI = [60, 58, 200, 64]
TOKEN = "correct-horse-battery-staple-42"


def sample_config(directory: Path, *, port: int, web: str = "", mqtt: str = 'host = ""', fps: int = 10,
                  sensor: str = "") -> Path:
    """The bundled sample's config, looping, with the page on ``port`` and a comment that must survive edits."""
    path = directory / "digitcam.toml"
    path.write_text(f"""# digitcam config written by test_web
[device]
name = "webtest"
state_dir = "{directory / 'state'}"

[camera]
source = "{SAMPLE}"
loop = true
fps = {fps}

[mqtt]
{mqtt}

[web]
enabled = true
port = {port}
{web}

[[sensor]]
name = "counter"
roi = {SAMPLE_ROI}  # the counter window
mode = "meter"
min_confidence = 0.5
unit = "m³"
device_class = "water"
{sensor}
""")
    return path


def request(port: int, method: str, path: str, body=None, headers=None, host: str = "127.0.0.1"):
    """One HTTP request; returns (status, headers, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=15)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


def api_state(port: int, headers=None) -> dict:
    status, _, body = request(port, "GET", "/api/state", headers=headers)
    assert status == 200, body
    return json.loads(body)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class InProcess:
    """The daemon's service in a thread with its page on, for tests that need the service's insides."""

    def __init__(self, config: Path):
        self.cfg = load_config(config)
        self.service, _ = build_service(self.cfg)
        self.web = start_web(self.cfg, self.service)
        self.thread = threading.Thread(target=self.service.run, daemon=True)
        self.thread.start()

    def close(self):
        self.service.stop()
        self.thread.join(20)
        self.web.close()


def start_daemon(daemons, config: Path):
    """``digitcam run`` as a process (the ``daemons`` fixture), once its page answers with a frame read."""
    daemon = daemons(config)
    port = load_config(config).web.port
    wait_until(lambda: daemon.proc.poll() is not None or answers(port), timeout=60)
    assert daemon.proc.poll() is None, daemon.log()
    return daemon


def frame_no(port: int) -> int:
    """The frame the page reports, 0 while it does not answer."""
    try:
        return api_state(port)["frame_no"]
    except (OSError, AssertionError, http.client.HTTPException):
        return 0


def answers(port: int) -> bool:
    return frame_no(port) > 0
