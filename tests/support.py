"""What the device, fault and benchmark tests share: a real mosquitto, a recording subscriber, the daemon as a
process, the CLI as a process, the systemd notify socket, QoS-1 dedupe, and the test clip drawn with OpenCV.

Nothing here needs TensorFlow or the trainer: the daemon tests read with the committed model
(``models/digitcam.tflite``; ``DIGITCAM_TEST_MODEL`` points them at another) and a clip of numbers drawn
with OpenCV, as on a Pi. The fixtures that use these live in ``tests/conftest.py``; test modules import
from here, never from one another.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device.mqtt import Topics

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "digitcam.tflite"  # the committed recognizer
FRAME_H, FRAME_W = 120, 320
ROI = (40, 30, 240, 60)
FRAMES_PER_VALUE = 5
STABLE = dict(stable_reads=3, window=5, min_confidence=0.3)
DEVICE = "testcam"
TOPICS = Topics("digitcam", DEVICE)
CLIP_NUMBERS = ("4711", "80125", "3", "629", "104", "77", "5830", "91")  # neighbours differ: no two merge
ANONYMOUS = "allow_anonymous true\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll ``predicate`` until it returns something truthy; fail the test with a message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {getattr(predicate, '__name__', predicate)}")


# ---- the broker and a subscriber ---------------------------------------------------------------------


class Broker:
    """``mosquitto -c <conf>`` on 127.0.0.1:<free port>; stop/start/restart keep the port. No pid_file."""

    def __init__(self, directory: Path, extra_conf: str = "", persistent: bool = False):
        if shutil.which("mosquitto") is None:
            pytest.skip("mosquitto is not installed (scripts/setup.sh --dev)")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.directory = directory
        self.conf = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        persistence = f"persistence true\npersistence_location {directory}/\n" if persistent else "persistence false\n"
        if os.geteuid() == 0:  # as root mosquitto drops to user 'mosquitto', which cannot write pytest's tmp dirs
            persistence += "user root\n"
        self.conf.write_text(
            f"listener {self.port} {self.host}\n{persistence}"
            f"{extra_conf if extra_conf else 'allow_anonymous true'}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "Broker":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log.read_text()[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Subscriber:
    """A paho client that records (topic, payload, retain) of everything on its topics, in arrival order.

    ``persistent`` keeps its session (and QoS 1 messages queued for it) on a persistent broker across restarts.
    """

    def __init__(self, broker: Broker, topics=("#",), client_id: str = "test-subscriber", persistent: bool = False):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.topics = list(topics)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        wait_until(self._connected.is_set, 10)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe([(t, 1) for t in self.topics])
        self._connected.set()

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [p for p, _ in self.on(topic)]

    def publish(self, topic: str, payload, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def states(sub, sensor: str = "number") -> list[dict]:
    return [json.loads(p) for p in sub.payloads(TOPICS.state(sensor))]


def reading_key(state: dict) -> tuple[str, int, str]:
    """What identifies one reading: its frame id and value, and its time (frame ids start again at 1 after a
    daemon restart)."""
    return state["timestamp"], state["frame"], state["value"]


def received_in_order(sub) -> list[tuple[str, int, str]]:
    """The key of every state message, duplicates (QoS 1 re-sends) removed, first arrival kept."""
    out, seen = [], set()
    for key in map(reading_key, states(sub)):
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


# ---- the daemon and the CLI as processes ------------------------------------------------------------------


def write_config(directory: Path, model: Path, source, broker=None, *, loop=False, fps=0.0, mqtt_extra="",
                 sensor_extra="", name="digitcam.toml") -> Path:
    mqtt = (f'host = "{broker.host}"\nport = {broker.port}\nreconnect_min_s = 1\nreconnect_max_s = 1\n'
            f'keepalive = 5\nstats_interval_s = 1\n{mqtt_extra}') if broker else 'host = ""'
    text = f"""
[device]
name = "{DEVICE}"
state_dir = "{directory / 'state'}"
model = "{model}"
flush_timeout_s = 3

[camera]
source = "{source}"
loop = {str(loop).lower()}
fps = {fps}
retry_min_s = 0.2
retry_max_s = 1.0

[mqtt]
{mqtt}

[[sensor]]
name = "number"
roi = {list(ROI)}
stable_reads = {STABLE['stable_reads']}
window = {STABLE['window']}
min_confidence = {STABLE['min_confidence']}
{sensor_extra}
"""
    path = directory / name
    path.write_text(text)
    return path


class Daemon:
    """``python -m device.cli run`` as a subprocess, its stdout (JSON lines) and stderr (log) in files."""

    def __init__(self, config: Path, *args: str, env: dict | None = None, preexec=None):
        """``env`` adds variables (e.g. a NOTIFY_SOCKET); ``preexec`` runs in the child (e.g. resource limits)."""
        self.out = config.with_suffix(".out")
        self.err = config.with_suffix(".err")
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "device.cli", "run", "--config", str(config), *args],
                                         stdout=out, stderr=err, env=full_env, cwd=REPO, preexec_fn=preexec)

    def printed(self) -> list[dict]:
        """Complete JSON lines so far (a line still being written has no newline yet)."""
        text = self.out.read_text()
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]

    def log(self) -> str:
        return self.err.read_text()

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def printed(daemon) -> list[tuple[str, int, str]]:
    """The key of every stable reading the daemon printed with ``--print``, in order."""
    return [reading_key(p) for p in daemon.printed()]


def run_cli(*args, timeout: float = 120, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``python -m device.cli ARGS`` as a subprocess, text output captured."""
    return subprocess.run([sys.executable, "-m", "device.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


# ---- systemd's notify socket ------------------------------------------------------------------------------


class NotifyListener:
    """The systemd side of sd_notify: a unix datagram socket the daemon sends READY=1/WATCHDOG=1/STATUS= to.

    A thread receives every datagram as it arrives and keeps each line with its arrival time, so a test can
    ask what arrived in a time window (``lines``) or since it last asked (``take``).
    """

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._taken = 0
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._running:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, OSError):
                continue
            now = time.monotonic()
            self.messages.extend((now, line) for line in data.decode().splitlines())

    def lines(self, since: float = 0.0, until: float = float("inf")) -> list[str]:
        return [line for t, line in list(self.messages) if since <= t < until]

    def take(self, settle_s: float = 0.2) -> list[str]:
        """The lines that arrived since the last ``take``, after ``settle_s`` for the last ones to land."""
        time.sleep(settle_s)
        got = list(self.messages)
        out, self._taken = [line for _, line in got[self._taken:]], len(got)
        return out

    def close(self) -> None:
        self._running = False
        self._thread.join(1)
        self.sock.close()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


# ---- the test clip: numbers drawn with OpenCV ---------------------------------------------------------------


def number_crop(text: str) -> np.ndarray:
    """A grey crop of ``text`` as dark digits on a light plate (``device.benchmark.draw_number``)."""
    from device.benchmark import synthetic_crop

    return cv2.cvtColor(synthetic_crop(text, 40, 40 + 24 * len(text)), cv2.COLOR_BGR2GRAY)


def number_frame(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A BGR frame with the crop letterboxed into ROI on a noisy grey background."""
    frame = rng.normal(128, 12, (FRAME_H, FRAME_W)).clip(0, 255).astype(np.uint8)
    x, y, w, h = ROI
    scale = min(w / crop.shape[1], h / crop.shape[0])
    cw, ch = max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))
    window = np.full((h, w), int(np.median(crop)), np.uint8)
    window[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw] = cv2.resize(crop, (cw, ch))
    frame[y:y + h, x:x + w] = window
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def write_clip(path: Path, numbers=CLIP_NUMBERS) -> Path:
    """Each number shown for FRAMES_PER_VALUE frames, MJPG in AVI."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (FRAME_W, FRAME_H))
    rng = np.random.default_rng(0)
    for text in numbers:
        crop = number_crop(text)
        for _ in range(FRAMES_PER_VALUE):
            writer.write(number_frame(crop, rng))
    writer.release()
    return path


def write_frames(video: Path, folder: Path, suffix: str) -> Path:
    """Every frame of ``video`` as ``0000<suffix>``, ``0001<suffix>``, ... in ``folder``: a folder source."""
    from device.sources import OpenCVSource

    folder.mkdir(parents=True, exist_ok=True)
    source = OpenCVSource(str(video), live=False)
    source.open()
    i = 0
    while (frame := source.read()) is not None:
        cv2.imwrite(str(folder / f"{i:04d}{suffix}"), frame)
        i += 1
    source.close()
    return folder
