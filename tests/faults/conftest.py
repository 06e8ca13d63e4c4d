"""Fault fixtures: the daemon tests' real parts (broker, subscriber, model, clip, daemon process) plus what the
fault tests add: the clip as an image folder, an sd_notify listener, and a throwaway TLS certificate
authority. (``daemons`` takes ``env=`` and ``preexec=`` for NOTIFY_SOCKET and resource limits.)

The broker, subscriber, model, clip and ``write_config`` come from ``tests/device`` so there is one copy of
each; this file only adds what faults need.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.device.conftest import Broker, Subscriber, make_broker, broker, subscribe, wait_until  # noqa: F401
from tests.device.test_service import (  # noqa: F401
    REPO,
    TOPICS,
    Daemon,
    clip,
    daemons,
    model,
    states,
    write_config,
    write_frames,
)


# (tests/device/conftest.py's Broker adds "user root" when run as root: mosquitto would otherwise drop to
# the user "mosquitto", which cannot write persistence or read key files in pytest's root-only tmp dirs)
ANONYMOUS = "allow_anonymous true\n"


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


def printed(daemon) -> list[tuple[str, int, str]]:
    """The key of every stable reading the daemon printed with ``--print``, in order."""
    return [reading_key(p) for p in daemon.printed()]


@pytest.fixture(scope="session")
def clip_frames(clip, tmp_path_factory) -> Path:
    """The clip's frames as JPEG files in name order: a folder source the tests can empty and refill."""
    return write_frames(clip[0], tmp_path_factory.mktemp("clip_frames"), ".jpg")


class NotifyListener:
    """The systemd side of sd_notify: a unix datagram socket the daemon sends READY=1/WATCHDOG=1/STATUS= to.

    A thread receives every datagram as it arrives and keeps it with its arrival time, so a test can ask
    what arrived in a time window.
    """

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
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

    def close(self) -> None:
        self._running = False
        self._thread.join(1)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: ca.crt, server.crt, server.key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=digitcam test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.cnf", cwd=d)
    return d
