"""The setup-and-watch page (device/web.py) against the real daemon: the config edit, the guards, fuzzed
requests, and a real headless Chromium that watches the live view, drags an ROI, saves it and sets a value.

Every test here runs the real daemon on the bundled sample (``samples/meter``, looping) with the bundled
model: as a process where the test is about the outside (browser, fuzz), in a thread where it needs the
service's insides. Nothing is mocked.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import load_config, parse_config
from device.errors import ConfigError, WebError
from device.daemon import build_service
from device.web import MAX_CONNECTIONS, start_web
from device.web_feed import ROI_COLOUR
from device.web_roi import save_roi, set_roi_in_text
from tests.support import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
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


def review_crop(directory: Path, raw: str = "004711") -> Path:
    """A crop the sensor kept for review (too unsure to label), written by the crop store itself."""
    from device.contract import prepare_crop
    from device.crop_files import REVIEW
    from device.crop_folder import CropStore

    frame = cv2.imread(str(SAMPLE / "frame_0000.jpg"))
    x, y, w, h = SAMPLE_ROI
    store = CropStore(directory / "state" / "crops" / "counter", 10 ** 7)
    return store.add(prepare_crop(frame[y:y + h, x:x + w])[:, :, 0], None, REVIEW, time.time(), raw, 0.31).path


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


@pytest.fixture
def in_process():
    started = []

    def start(config: Path) -> InProcess:
        started.append(InProcess(config))
        return started[-1]

    yield start
    for daemon in started:
        daemon.close()


def start_daemon(daemons, config: Path):
    """``digitcam run`` as a process (the ``daemons`` fixture), once its page answers with a frame read."""
    daemon = daemons(config)
    port = load_config(config).web.port
    wait_until(lambda: daemon.proc.poll() is not None or _answers(port), timeout=60)
    assert daemon.proc.poll() is None, daemon.log()
    return daemon


def frame_no(port: int) -> int:
    """The frame the page reports, 0 while it does not answer."""
    try:
        return api_state(port)["frame_no"]
    except (OSError, AssertionError, http.client.HTTPException):
        return 0


def _answers(port: int) -> bool:
    return frame_no(port) > 0


# ---- the config edit ------------------------------------------------------------------------------------

TWO_SENSORS = """# top comment
[device]
name = "x"   # the name

[[sensor]]
name = "first"
roi = [1, 2, 30, 40]   # keep me
mode = "meter"

[[sensor]]
# the second one
name = "second"
roi = [
  5, 6,
  70, 80,
]  # multi-line
"""


def test_roi_edit_changes_only_that_line_and_keeps_comments():
    edited = set_roi_in_text(TWO_SENSORS, "first", [10, 20, 300, 40])
    assert edited == TWO_SENSORS.replace("roi = [1, 2, 30, 40]   # keep me", "roi = [10, 20, 300, 40]   # keep me")
    second = set_roi_in_text(TWO_SENSORS, "second", [0, 0, 9, 9])
    assert second.endswith('name = "second"\nroi = [0, 0, 9, 9]  # multi-line\n')
    assert second.startswith(TWO_SENSORS[: TWO_SENSORS.index("roi = [\n")])


def test_roi_edit_adds_the_line_after_the_name_when_there_is_none():
    text = '[[sensor]]\nname = "a"\nmode = "number"\n\n[[sensor]]\nname = "b"\n'
    assert set_roi_in_text(text, "b", [1, 1, 5, 5]) == text + "roi = [1, 1, 5, 5]\n"
    assert set_roi_in_text(text, "a", [1, 1, 5, 5]) == text.replace('"a"\n', '"a"\nroi = [1, 1, 5, 5]\n')


def test_roi_edit_refuses_what_it_cannot_edit_safely():
    with pytest.raises(WebError, match="not in the config"):
        set_roi_in_text(TWO_SENSORS, "third", [1, 1, 5, 5])
    with pytest.raises(WebError, match=r"\[\[sensor\]\] tables"):
        set_roi_in_text('sensor = [{name = "a", roi = [1, 1, 5, 5]}]\n', "a", [2, 2, 5, 5])


def test_save_roi_is_atomic_keeps_a_backup_and_is_checked_like_check_config(tmp_path):
    path = sample_config(tmp_path, port=free_port())
    path.chmod(0o640)
    before = path.read_bytes()
    answer = save_roi(path, "counter", [50, 50, 210, 70], frame_size=(320, 180))
    assert answer["saved"] is True
    assert (tmp_path / "digitcam.toml.bak").read_bytes() == before
    assert load_config(path).sensors[0].roi == (50, 50, 210, 70)
    assert "roi = [50, 50, 210, 70]  # the counter window" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digitcam.toml", "digitcam.toml.bak"]
    with pytest.raises(WebError, match="does not fit"):
        save_roi(path, "counter", [300, 0, 50, 50], frame_size=(320, 180))
    for bad in ([1, 2, 3], [0, 0, 1, 5], ["1", 2, 3, 4], [True, 0, 5, 5], None):
        with pytest.raises(WebError):
            save_roi(path, "counter", bad)
    path.write_text(path.read_text().replace('unit = "m³"', 'unit = "parsecs"'))  # someone broke it meanwhile
    with pytest.raises(WebError, match="sensor\\[0\\].unit"):
        save_roi(path, "counter", [50, 50, 210, 70])


def test_a_read_only_config_gives_the_snippet_and_changes_nothing(request):
    """As the shipped unit sees /etc (ProtectSystem=strict): the daemon may read the file, not write it.
    Run as an unprivileged user when the tests run as root (root may write anything)."""
    request_cleanup = request.addfinalizer
    outer = Path(tempfile.mkdtemp(prefix="digitcam-web-"))  # pytest's own tmp folders are private to root
    request_cleanup(lambda: shutil.rmtree(outer))
    outer.chmod(0o755)
    folder = outer / "etc"
    folder.mkdir()
    path = sample_config(folder, port=free_port())
    script = ("import json, sys; from pathlib import Path; from device.web_roi import save_roi; "
              "print(json.dumps(save_roi(Path(sys.argv[1]), 'counter', [10, 10, 100, 50])))")
    command = [sys.executable, "-c", script, str(path)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop root")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    else:
        folder.chmod(0o555)
        path.chmod(0o444)
    before = digest(path)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    folder.chmod(0o755)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["saved"] is False and "read-only" in answer["error"]
    assert answer["snippet"] == '[[sensor]]\nname = "counter"\nroi = [10, 10, 100, 50]\n'
    assert digest(path) == before and sorted(p.name for p in folder.iterdir()) == ["digitcam.toml"]


# ---- config errors ------------------------------------------------------------------------------------------


def test_web_config_errors_name_the_key(tmp_path):
    base = sample_config(tmp_path, port=8090).read_text()

    def error(web_lines: str) -> str:
        with pytest.raises(ConfigError) as info:
            parse_config(base.replace("port = 8090", f"port = 8090\n{web_lines}"), tmp_path / "digitcam.toml")
        message = str(info.value)
        assert "\n" not in message
        return message

    assert "web.bind: '0.0.0.0' is reachable from other machines: set web.token_file" in error('bind = "0.0.0.0"')
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    assert "web.token_file:" in error(f'bind = "0.0.0.0"\ntoken_file = "{token}"') and "chmod o-rwx" in error(
        f'token_file = "{token}"')
    token.chmod(0o600)
    token.write_text("short")
    assert "at least 16" in error(f'token_file = "{token}"')
    assert "web.fps: must be > 0" in error("fps = 0")
    assert "web.tokenfile: unknown key (did you mean 'token_file'?)" in error('tokenfile = "x"')
    token.write_text(TOKEN)
    cfg = parse_config(base.replace("port = 8090", 'port = 8090\nbind = "0.0.0.0"\ntoken_file = "token"'),
                       tmp_path / "digitcam.toml")
    assert cfg.web.token == TOKEN and TOKEN not in repr(cfg)


def test_a_port_in_use_is_a_one_line_error_naming_web_port(tmp_path, daemons):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        daemon = daemons(sample_config(tmp_path, port=taken.getsockname()[1]))
        assert daemon.wait(60) == 2
    last = daemon.log().strip().splitlines()[-1]
    assert last.startswith("digitcam: error: web.port: cannot listen on 127.0.0.1:") and "in use" in last


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
    wait_until(lambda: _answers(port), timeout=60)
    assert request(port, "GET", "/", headers={"Host": f"evil.example:{port}"})[0] == 403
    assert request(port, "GET", "/api/state", headers={"Host": "evil.example"})[0] == 403
    assert request(port, "GET", "/", headers={"Host": f"localhost:{port}"})[0] == 200
    assert request(port, "POST", "/api/roi", {"sensor": "counter", "roi": [1, 1, 50, 50]})[0] == 403
    assert digest(path) == before


def test_set_value_and_preview_run_on_the_frame_thread(tmp_path, in_process):
    port = free_port()
    daemon = in_process(sample_config(tmp_path, port=port))
    wait_until(lambda: _answers(port), timeout=60)
    csrf = api_state(port)["csrf"]
    head = {"X-CSRF-Token": csrf}
    status, _, body = request(port, "POST", "/api/preview", {"sensor": "counter", "roi": SAMPLE_ROI}, head)
    preview = json.loads(body)
    assert status == 200 and len(preview["value"]) == 6 and preview["crop"].startswith("data:image/png;base64,")
    status, _, body = request(port, "POST", "/api/set_value", {"sensor": "counter", "value": "12"}, head)
    assert status == 200, body
    assert daemon.service.sensors[0].smoother.value == "12"
    status, _, body = request(port, "POST", "/api/set_value", {"sensor": "counter", "value": "12a"}, head)
    assert status == 400 and "digits" in json.loads(body)["error"]
    assert request(port, "POST", "/api/set_value", {"sensor": "nope", "value": "1"}, head)[0] == 404


def test_review_crops_are_listed_shown_and_labelled_by_name_only(tmp_path, in_process):
    port = free_port()
    crop = review_crop(tmp_path)
    in_process(sample_config(tmp_path, port=port, sensor="collect = true"))
    wait_until(lambda: _answers(port), timeout=60)
    head = {"X-CSRF-Token": api_state(port)["csrf"]}
    assert api_state(port)["sensors"][0]["collect"] is True
    status, _, body = request(port, "GET", "/api/crops?sensor=counter")
    listed = json.loads(body)
    assert status == 200 and [c["name"] for c in listed["crops"]] == [crop.name] and listed["crops"][0]["raw"] == "004711"
    status, headers, png = request(port, "GET", f"/api/crop.png?sensor=counter&name={crop.name}")
    assert status == 200 and headers["Content-Type"] == "image/png" and png == crop.read_bytes()
    for name in ("../../digitcam.toml", f"../counter/{crop.name}", "%2e%2e%2fdigitcam.toml", crop.name + "/x", ""):
        assert request(port, "GET", f"/api/crop.png?sensor=counter&name={name}")[0] == 400, name
    assert request(port, "GET", f"/api/crop.png?sensor=..&name={crop.name}")[0] == 404
    label = {"sensor": "counter", "name": crop.name, "label": "004712"}
    assert request(port, "POST", "/api/label", label)[0] == 403  # no CSRF token
    assert request(port, "POST", "/api/label", {**label, "label": "47a"}, head)[0] == 400
    status, _, body = request(port, "POST", "/api/label", label, head)
    renamed = crop.with_name(json.loads(body)["name"])
    assert status == 200 and not crop.exists() and renamed.exists() and "-human-004712-" in renamed.name
    assert json.loads(request(port, "GET", "/api/crops?sensor=counter")[2])["counts"]["human"] == 1


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
    wait_until(lambda: _answers(port), timeout=20)
    assert daemon.proc.poll() is None, daemon.log()
    assert files(tmp_path) == before
    assert "Traceback" not in daemon.log() and "WARNING device.web" not in daemon.log()


# ---- the real browser -----------------------------------------------------------------------------------------


def chrome():
    """Headless Chromium through Debian's chromedriver (no driver download: Selenium Manager is not used)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh --dev)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1000",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    return webdriver.Chrome(service=DriverService(executable_path=driver), options=options)


@pytest.fixture
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def pixel(image: np.ndarray, fx: float, fy: float, scale: tuple[float, float]) -> np.ndarray:
    """The screenshot's colour at frame coordinates (fx, fy): the middle of that frame pixel on screen."""
    return image[int((fy + 0.5) * scale[1]), int((fx + 0.5) * scale[0])].astype(int)


def test_browser_sees_the_live_view_draws_an_roi_saves_it_and_sets_the_value(tmp_path, daemons, browser,
                                                                            broker, subscribe):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    port = free_port()
    path = sample_config(tmp_path, port=port, mqtt=f'host = "{broker.host}"\nport = {broker.port}',
                         sensor="collect = true")
    crop = review_crop(tmp_path)
    sub = subscribe("digitcam/webtest/counter/state")
    daemon = start_daemon(daemons, path)
    browser.get(f"http://127.0.0.1:{port}/")
    live = browser.find_element(By.ID, "live")
    wait_until(lambda: browser.execute_script("return arguments[0].naturalWidth", live) == 320, timeout=30)
    browser.save_screenshot(str(tmp_path / "page.png"))
    card = browser.find_element(By.CSS_SELECTOR, '.card[data-sensor="counter"]')
    wait_until(lambda: len(card.find_element(By.CLASS_NAME, "raw").text) > len("raw 004700"), timeout=30)
    assert card.find_element(By.CLASS_NAME, "raw").text.startswith("raw 00")  # the sample counts 0047xx
    assert "frames/s" in browser.find_element(By.ID, "stats").text

    # the live view is a camera frame with the boxes: outside the boxes the screenshot is one of the sample's
    # frames (each frame's own noise tells them apart), and on the boxes it is the ROI's and the box's colour
    shot = cv2.imdecode(np.frombuffer(live.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
    scale = (shot.shape[1] / 320, shot.shape[0] / 180)
    ys, xs = ((np.arange(n) + 0.5) * s for n, s in ((180, scale[1]), (320, scale[0])))
    seen = shot[ys.astype(int)][:, xs.astype(int)].astype(int)  # each frame pixel's middle on screen
    outside = np.ones((180, 320), bool)
    x, y, w, h = SAMPLE_ROI
    outside[max(0, y - 24): y + h + 3, max(0, x - 3): x + w + 3] = False  # the boxes, the digits, the label above
    diffs = sorted(np.abs(seen - cv2.imread(str(f)).astype(int))[outside].mean() for f in SAMPLE.glob("*.jpg"))
    assert diffs[0] < 6 and diffs[0] < 0.6 * diffs[1], diffs[:3]
    amber = np.median([pixel(shot, x - 1, fy, scale) for fy in range(y + 5, y + h - 5, 4)], axis=0)
    green = np.median([pixel(shot, x, fy, scale) for fy in range(y + 5, y + h - 5, 4)], axis=0)
    assert np.abs(amber - np.array(ROI_COLOUR)).max() < 70, amber
    assert green[1] > 150 and green[0] < 130 and green[2] < 130, green  # device.overlay's green box

    # drag a new ROI on the image: preview, save, and the next readings use it
    card.find_element(By.CLASS_NAME, "draw").click()
    canvas = browser.find_element(By.ID, "draw")
    rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", canvas)
    target = [50, 50, 220, 80]
    sx, sy = rect[0] / 320, rect[1] / 180
    start = (target[0] * sx - rect[0] / 2, target[1] * sy - rect[1] / 2)  # offsets from the canvas centre
    ActionChains(browser).move_to_element_with_offset(canvas, int(start[0]), int(start[1])).click_and_hold() \
        .move_by_offset(int(target[2] * sx / 2), int(target[3] * sy / 2)) \
        .move_by_offset(int(target[2] * sx / 2), int(target[3] * sy / 2)).release().perform()
    preview = card.find_element(By.CLASS_NAME, "preview")
    wait_until(preview.is_displayed, timeout=20)
    text = card.find_element(By.CSS_SELECTOR, ".preview .raw").text
    drawn = json.loads(text[: text.index("]") + 1])
    assert all(abs(a - b) <= 3 for a, b in zip(drawn, target)), (drawn, target)
    assert " reads 00" in text  # the model reads the meter in the drawn crop
    assert browser.execute_script("return arguments[0].naturalHeight",
                                  card.find_element(By.CSS_SELECTOR, ".preview img")) > 0
    card.find_element(By.CLASS_NAME, "save").click()
    wait_until(lambda: "saved to" in card.find_element(By.CLASS_NAME, "msg").text, timeout=20)
    assert load_config(path).sensors[0].roi == tuple(drawn)
    assert "# the counter window" in path.read_text() and (tmp_path / "digitcam.toml.bak").exists()
    wait_until(lambda: api_state(port)["sensors"][0]["raw"]["box"] == drawn, timeout=30)
    wait_until(lambda: f"roi [{', '.join(map(str, drawn))}]" in card.find_element(By.CLASS_NAME, "roi").text,
               timeout=10)

    # set the meter's value: it is published on MQTT with the set_value flag
    field = card.find_element(By.CLASS_NAME, "setvalue")
    field.send_keys("005000")
    card.find_element(By.CLASS_NAME, "set").click()
    wait_until(lambda: "value set to 005000" in card.find_element(By.CLASS_NAME, "msg").text, timeout=20)
    message = wait_until(lambda: next((json.loads(p) for p in sub.payloads("digitcam/webtest/counter/state")
                                       if b'"set_value"' in p), None), timeout=20)
    assert message["value"] == "005000"
    wait_until(lambda: "published 005000" in card.find_element(By.CLASS_NAME, "flags").text, timeout=10)

    # label the crop the sensor kept for review
    card.find_element(By.CLASS_NAME, "showcrops").click()
    row = wait_until(lambda: card.find_elements(By.CSS_SELECTOR, f'.crop[data-name="{crop.name}"]'), timeout=20)[0]
    image = row.find_element(By.TAG_NAME, "img")
    wait_until(lambda: browser.execute_script("return arguments[0].naturalWidth", image) == 128, timeout=10)
    field = row.find_element(By.CLASS_NAME, "label")
    field.clear()
    field.send_keys("004712")
    row.find_element(By.CLASS_NAME, "savelabel").click()
    wait_until(lambda: not crop.exists(), timeout=20)
    assert [p.name for p in crop.parent.glob("*-human-004712-*.png")]
    (tmp_path / "page.png").write_bytes(browser.get_screenshot_as_png())
    assert daemon.proc.poll() is None and "Traceback" not in daemon.log()


# ---- the measurements behind docs/WEB.md ------------------------------------------------------------------


def run_bench(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()


def test_bench_daemon_measures_frames_per_second_without_and_with_a_viewer():
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh --dev)")
    lines = run_bench("bench/daemon.py", "--quick", "--viewer", "--viewer-rounds", "1")  # 1 s segments
    row = next(line for line in lines if line.startswith("| ") and line.endswith(" |") and "%" in line)
    without, with_, _, _, received = (cell.strip() for cell in row.strip("|").split("|"))
    assert float(without) > 0 and float(with_) > 0
    assert 0 < float(received) <= 4.0 * 1.5  # the viewer got frames, at about the capped rate
    assert lines[-1].startswith("daemon: ") and "without a viewer" in lines[-1]


def test_bench_web_server_measures_the_standard_library_server():
    lines = run_bench("bench/web_server.py", "--quick")
    row = next(line for line in lines if line.startswith("| stdlib |"))
    rss, one, four = (float(cell) for cell in row.strip("|").split("|")[1:4])
    assert 0 < rss < 50 and one > 0 and four > 0 and row.endswith("| 0 |")
    assert lines[-1].startswith("web servers: stdlib ")
