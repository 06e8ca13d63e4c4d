"""Shared fixtures: the daemon tests' real parts (broker, subscribers, daemon processes, notify socket, model,
clip) from ``tests/support.py``, and the trainer's tiny model. Each area may add its own in
``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests import support

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "configs" / "tiny.toml"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A real tiny recognizer, trained once per session (~1 min on 2 cores) and exported to full int8.

    It is trained by ``trainer.train`` from ``configs/tiny.toml`` on clean rendered numbers and exported
    by ``trainer.export`` (uint8 input, named outputs, manifest), so tests exercise the real path. It reads
    ``iter_samples("rendered", split, seed, difficulty="easy")`` images well and little else.
    Returns the ``.tflite`` path; its ``.json`` manifest lies beside it.
    """
    pytest.importorskip("tensorflow")
    from trainer.export import export_run
    from trainer.train import train
    from trainer.train_config import load_config

    base = tmp_path_factory.mktemp("tiny_model")
    run = train(load_config(TINY_CONFIG), base / "run")
    model = base / "tiny.tflite"
    export_run(run.path, model, version="test", parity=False)
    return model


# ---- the daemon tests' real parts (tests/support.py has the classes) ---------------------------------------


@pytest.fixture(scope="session")
def model() -> Path:
    """The recognizer the daemon tests read with: the committed model (no TensorFlow needed), or
    ``DIGITCAM_TEST_MODEL``."""
    override = os.environ.get("DIGITCAM_TEST_MODEL")
    return Path(override) if override else support.MODEL


@pytest.fixture(scope="session")
def locator():
    """The committed locator model (``models/locator.tflite``), loaded once."""
    from device.bundled import REPO_LOCATOR
    from device.locate import Locator

    if not REPO_LOCATOR.is_file():
        pytest.skip("models/locator.tflite is not committed")
    return Locator(REPO_LOCATOR)


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """(video path, labels): numbers drawn with OpenCV, each shown for FRAMES_PER_VALUE frames, MJPG in AVI."""
    path = support.write_clip(tmp_path_factory.mktemp("clip") / "numbers.avi")
    return path, list(support.CLIP_NUMBERS)


@pytest.fixture(scope="session")
def expected(model, clip):
    """The stable values of one pass over the clip, found without the daemon: source -> ROI -> model -> smoother."""
    from device.recognize import Recognizer
    from device.smooth import Smoother
    from device.sources import OpenCVSource

    recognizer = Recognizer(model)
    smoother = Smoother(**support.STABLE)
    source = OpenCVSource(str(clip[0]), live=False)
    source.open()
    values = []
    x, y, w, h = support.ROI
    while (frame := source.read()) is not None:
        (reading,), _ = recognizer.read([frame[y:y + h, x:x + w]])
        decision = smoother.update(reading, 0.0)
        if decision is not None:
            values.append(decision.reading.value)
    source.close()
    assert values, "the model reads no stable value in the clip: the test clip or model is broken"
    return values


@pytest.fixture(scope="session")
def clip_frames(clip, tmp_path_factory) -> Path:
    """The clip's frames as JPEG files in name order: a folder source the tests can empty and refill."""
    return support.write_frames(clip[0], tmp_path_factory.mktemp("clip_frames"), ".jpg")


@pytest.fixture
def make_broker(tmp_path):
    """Factory for brokers with extra mosquitto.conf lines (auth, TLS); all are stopped at the end."""
    brokers = []

    def make(extra_conf: str = "", persistent: bool = False) -> support.Broker:
        directory = tmp_path / f"broker{len(brokers)}"
        directory.mkdir()
        broker = support.Broker(directory, extra_conf, persistent)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def broker(make_broker) -> support.Broker:
    """A fresh anonymous mosquitto for one test; ``broker.stop()``/``start()``/``restart()`` keep its port."""
    return make_broker()


@pytest.fixture
def subscribe(broker):
    """Factory for recording subscribers on the test's broker; all are closed at the end."""
    subs = []

    def make(*topics, client_id=None, persistent=False) -> support.Subscriber:
        sub = support.Subscriber(broker, topics or ("#",), client_id or f"test-sub-{len(subs)}", persistent)
        subs.append(sub)
        return sub

    yield make
    for sub in subs:
        sub.close()


@pytest.fixture
def daemons():
    """Factory for daemon processes (``support.Daemon``); any still running at the end is killed."""
    started = []

    def start(config: Path, *args: str, **options) -> support.Daemon:
        daemon = support.Daemon(config, *args, **options)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


@pytest.fixture
def notify_socket(tmp_path):
    listener = support.NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: ca.crt, server.crt, server.key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    openssl = support.openssl
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=digitcam test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.cnf", cwd=d)
    return d
