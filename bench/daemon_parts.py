"""The parts bench/daemon.py builds its run from: the counter video, mosquitto and its subscriber, the config.

Kept apart from the measurement so bench/soak.py can use the same video, port and config without the
benchmark's command line; bench/daemon.py and bench/soak.py both import them from here.
``TimedSource`` and ``build_timed_service`` wrap the daemon's own source and wiring (device/daemon.py) to
timestamp every frame; the broker and subscriber run on the CPUs ``taskset`` leaves free (``helper_cpus``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

from device.benchmark import synthetic_frame
from device.daemon import build_service
from device.mqtt import Publisher
from device.notify import Notifier
from device.service import Service
from device.sources import build_source

SENSOR = "counter"
MAX_FPS = 2000  # room for this many frames a second in the table of read times


# ---- the input and the broker -------------------------------------------------------------------------


def make_video(path: Path, numbers: int, hold: int) -> tuple[Path, tuple[int, int, int, int]]:
    """A counter video: ``numbers`` consecutive values, each shown for ``hold`` frames; returns its plate box.

    MPEG-4 part 2 (``mp4v``), the compressed kind a camera or phone records; OpenCV's wheel has no H.264
    encoder. Decoding costs ~1.4 ms a frame here, MJPG of the same noisy frames ~6 ms; a Pi camera
    (picamera2) hands over raw frames and decodes nothing.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write an MPEG-4 video to {path}")
    box = None
    for i in range(numbers):
        frame, box = synthetic_frame(f"{4711 + i:05d}")
        for _ in range(hold):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path, box


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(directory: Path) -> tuple[subprocess.Popen, int]:
    """mosquitto on 127.0.0.1:<free port>, no persistence; returns (process, port) once it accepts."""
    if shutil.which("mosquitto") is None:
        raise RuntimeError("mosquitto is not installed (scripts/setup.sh --dev)")
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = start_helper(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def write_config(directory: Path, model: Path, video: Path, port: int, sensor: str, *, device: str = "bench",
                 camera: str = "", mqtt: str = "", threads: int | None = 1, stats_interval_s: float = 5,
                 web: str = "") -> Path:
    """The daemon's TOML, as a user would write it: one sensor (``sensor``: its roi or locate lines).

    ``camera`` and ``mqtt`` are extra lines for those tables, ``web`` the lines of a ``[web]`` table. ``min_confidence = 0`` so every change is
    published whatever the model thinks of OpenCV's font. Shared with bench/soak.py. ``model`` is written
    absolute: the daemon resolves a relative path against the config's directory, not the caller's.
    """
    path = directory / "digitcam.toml"
    path.write_text(f"""
[device]
name = "{device}"
state_dir = "{directory / 'state'}"
model = "{Path(model).resolve()}"
{"" if threads is None else f"threads = {threads}"}

[camera]
source = "{video}"
loop = true
{camera}

[mqtt]
host = "127.0.0.1"
port = {port}
stats_interval_s = {stats_interval_s}
{mqtt}

[[sensor]]
name = "{SENSOR}"
{sensor}
min_confidence = 0.0
stable_reads = 3
window = 5
""" + (f"\n[web]\n{web}\n" if web else ""))
    return path


# ---- timing the daemon's parts --------------------------------------------------------------------------


class TimedSource:
    """The configured source, unchanged, with the time each frame was returned.

    The table is allocated once for ``seconds`` at ``MAX_FPS``; its pages become resident only as frames
    fill it (8 bytes a frame: ~1.4 MB of the RSS after 10 minutes at 300 frames/s).
    """

    def __init__(self, source, seconds: float):
        self._source = source
        self.read_at = np.zeros(int(seconds * MAX_FPS) + 1, dtype=np.float64)
        self.frames = 0

    def read(self):
        frame = self._source.read()
        if frame is not None and self.frames + 1 < len(self.read_at):
            self.frames += 1  # the service numbers frames the same way: 1, 2, ...
            self.read_at[self.frames] = time.time()  # the subscriber's clock
        return frame

    def __getattr__(self, name):
        return getattr(self._source, name)


def helper_cpus() -> set[int]:
    """CPUs for the broker and subscriber: those this process may not use (taskset), else the same ones.

    The target is the daemon on one core; the broker usually runs elsewhere (a Home Assistant box).
    """
    mine = os.sched_getaffinity(0)
    others = set(range(os.cpu_count() or 1)) - mine
    return others or mine


def start_helper(command: list[str], **popen) -> subprocess.Popen:
    cpus = helper_cpus()
    return subprocess.Popen(command, preexec_fn=lambda: os.sched_setaffinity(0, cpus), **popen)


class Subscriber:
    """``mosquitto_sub`` in its own process, writing each state message with its arrival time (Unix, ns).

    Another process, so no Python thread of the daemon's waits for the GIL to take the timestamp.
    """

    def __init__(self, port: int, topic: str, output: Path):
        self.output = output
        self._file = open(output, "w")
        self.proc = start_helper(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic,
                                  "-F", "%U %p"], stdout=self._file, stderr=subprocess.DEVNULL)

    def close(self) -> list[tuple[float, int, str]]:
        """Stop it and return (arrival time, frame number, value) per message."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._file.close()
        arrivals = []
        for line in self.output.read_text().splitlines():
            stamp, _, payload = line.partition(" ")
            message = json.loads(payload)
            arrivals.append((float(stamp), int(message["frame"]), message.get("value")))
        return arrivals


def build_timed_service(cfg, seconds: float) -> tuple[Service, Publisher, TimedSource]:
    """The daemon exactly as ``digitcam run`` wires it, with its source cut off after ``seconds``."""
    source = TimedSource(build_source(cfg.camera), seconds)
    service, publisher = build_service(cfg, notifier=Notifier(address=""), source=source)
    return service, publisher, source


def rss_mb() -> float:
    """This process's resident set size, from /proc (what `ps` and systemd's MemoryCurrent count)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")
