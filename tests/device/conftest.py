"""Device fixtures: a real mosquitto on a free loopback port, and a subscriber that records what it gets."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion


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


@pytest.fixture
def make_broker(tmp_path):
    """Factory for brokers with extra mosquitto.conf lines (auth, TLS); all are stopped at the end."""
    brokers = []

    def make(extra_conf: str = "", persistent: bool = False) -> Broker:
        directory = tmp_path / f"broker{len(brokers)}"
        directory.mkdir()
        broker = Broker(directory, extra_conf, persistent)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def broker(make_broker) -> Broker:
    """A fresh anonymous mosquitto for one test; ``broker.stop()``/``start()``/``restart()`` keep its port."""
    return make_broker()


@pytest.fixture
def subscribe(broker):
    """Factory for recording subscribers on the test's broker; all are closed at the end."""
    subs = []

    def make(*topics, client_id=None, persistent=False) -> Subscriber:
        sub = Subscriber(broker, topics or ("#",), client_id or f"test-sub-{len(subs)}", persistent)
        subs.append(sub)
        return sub

    yield make
    for sub in subs:
        sub.close()
