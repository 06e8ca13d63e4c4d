"""The frame reader and what goes through it, on the committed model and the bundled sample (no TensorFlow)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import SensorConfig
from device.contract import to_gray
from device.locate import Candidate
from device.oneshot import read_image
from device.reader import FrameReader, build_sensors
from device.recognize import Recognizer
from device.service import Service
from device.sources import FolderSource

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "digitcam.tflite"
SAMPLE = REPO / "samples" / "meter"
SAMPLE_ROI = (60, 58, 200, 64)  # samples/digitcam.toml


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(MODEL)


@pytest.fixture(scope="module")
def frame():
    return cv2.imread(str(SAMPLE / "frame_0000.jpg"))


def test_16_bit_colour_is_scaled_to_8_bits_not_clipped():
    rng = np.random.default_rng(16)
    img8 = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    img16 = img8.astype(np.uint16) * 257  # the same picture at 16 bits per channel
    np.testing.assert_array_equal(to_gray(img16), to_gray(img8))
    np.testing.assert_array_equal(to_gray(img16[:, :, 0]), img8[:, :, 0])
    np.testing.assert_array_equal(to_gray(np.dstack([img16, img16[:, :, :1]])), to_gray(img8))  # with alpha


def test_a_16_bit_png_reads_like_its_8_bit_original(tmp_path, recognizer, frame):
    eight, sixteen = tmp_path / "eight.png", tmp_path / "sixteen.png"
    x, y, w, h = SAMPLE_ROI
    crop = frame[y:y + h, x:x + w]
    cv2.imwrite(str(eight), crop)
    cv2.imwrite(str(sixteen), crop.astype(np.uint16) * 257)
    assert cv2.imread(str(sixteen), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    want = read_image(recognizer, str(eight), use_locator=False)
    got = read_image(recognizer, str(sixteen), use_locator=False)
    assert want["value"] == "004711"  # samples/meter/labels.csv
    assert (got["value"], got["confidence"], got["box"]) == (want["value"], want["confidence"], want["box"])


def test_one_shot_and_daemon_read_a_box_the_same_way(recognizer, frame):
    """``digitcam read`` (find_and_read) and a daemon sensor on the same fixed box give the same Reading."""
    reader = FrameReader(recognizer)
    x, y, w, h = SAMPLE_ROI
    crop = np.ascontiguousarray(frame[y:y + h, x:x + w])
    one_shot, _ = reader.find_and_read(crop)
    sensor = build_sensors([SensorConfig(name="counter", roi=SAMPLE_ROI)])[0]
    (daemon,), ms = reader.read_sensors(frame, [sensor], frame_no=1)
    assert ms > 0
    assert daemon.box == SAMPLE_ROI and one_shot.box == (0, 0, w, h)
    assert (daemon.value, daemon.confidence, daemon.digits) == (one_shot.value, one_shot.confidence, one_shot.digits)


class FixedLocator:
    """The locator's interface with a fixed answer; counts searches. Its two views are the box twice."""

    def __init__(self, box):
        self.box, self.searches = box, 0

    def find(self, frame, roi=None):
        self.searches += 1
        return self.box

    def candidates(self, frame, roi=None):
        """``find``'s box as the one candidate (the daemon's search asks for candidates)."""
        return [Candidate(self.find(frame, roi), 1.0)]

    def view_boxes(self, box, frame_shape):
        return [box, box]


def test_an_on_demand_read_moves_no_track_and_counts_no_frame(recognizer, frame):
    sensor = build_sensors([SensorConfig(name="n", locate=True, locate_every=3)])[0]
    locator = FixedLocator(SAMPLE_ROI)
    service = Service(FolderSource(SAMPLE), recognizer, [sensor], locator=locator)
    service.process(frame)
    state = (sensor.searched_at, sensor.view, sensor.tracker.box, locator.searches, service.stats.frames)
    assert state == (1, sensor.view, SAMPLE_ROI, 1, 1) and sensor.view in (0, 1)
    service.command("read", b"")
    service._between_frames()
    assert sensor.last.value is not None and sensor.last.box == SAMPLE_ROI
    assert (sensor.searched_at, sensor.view, sensor.tracker.box, locator.searches, service.stats.frames) == state


def test_a_sensor_never_searched_is_read_on_demand_without_starting_a_track(recognizer, frame):
    sensor = build_sensors([SensorConfig(name="n", locate=True)])[0]
    locator = FixedLocator(SAMPLE_ROI)
    reader = FrameReader(recognizer, locator)
    (reading,), _ = reader.read_sensors(frame, [sensor], frame_no=0, track=False)
    assert reading.box == SAMPLE_ROI and locator.searches == 1
    assert sensor.searched_at is None and sensor.tracker.box is None and sensor.view is None


class RecordingPublisher:
    """What the service sends, recorded: the publisher's methods the service calls, nothing else."""

    def __init__(self):
        self.results, self.readings, self.camera = [], [], []

    def publish_reading(self, sensor, payload):
        self.readings.append((sensor, payload))

    def publish_result(self, reply):
        self.results.append(reply)

    def publish_snapshot(self, sensor, jpeg):
        return f"snapshot/{sensor}"

    def publish_stats(self, report):
        pass

    def queue_status(self):
        return {"queue": 0, "spool_in_memory": False}

    def set_camera(self, online):
        self.camera.append(online)

    def close(self, timeout):
        pass


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {predicate}")


def test_read_and_snapshot_while_the_camera_is_down_say_camera_offline(tmp_path, recognizer):
    """A command during an outage is answered at once (not after the backoff), ok: false, and no stale frame
    is published as a new reading; once frames flow again the same command is answered ok."""
    from device.sources import Backoff

    folder = tmp_path / "frames"
    folder.mkdir()
    files = sorted(SAMPLE.glob("*.jpg"))[:5]
    for path in files:
        (folder / path.name).write_bytes(path.read_bytes())
    publisher = RecordingPublisher()
    sensors = build_sensors([SensorConfig(name="counter", roi=SAMPLE_ROI)])
    service = Service(FolderSource(folder, loop=True, fps=50), recognizer, sensors, publisher,
                      backoff=Backoff(5.0, 5.0))  # a long backoff: commands must not wait for it
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: service.frame_no >= 3 and publisher.camera[-1:] == [True])
        for path in folder.iterdir():
            path.unlink()
        wait_for(lambda: publisher.camera[-1:] == [False])
        readings = len(publisher.readings)
        asked = time.monotonic()
        service.command("read", b'{"id": 1}')
        service.command("snapshot", b'{"id": 2}')
        wait_for(lambda: len(publisher.results) == 2, 2.0)
        assert time.monotonic() - asked < 1.0
        assert [(r["id"], r["ok"]) for r in publisher.results] == [(1, False), (2, False)]
        assert all(r["error"].startswith(f"camera offline: image folder {folder}") for r in publisher.results)
        assert len(publisher.readings) == readings and service.last_frame is not None
    finally:
        service.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_read_while_the_camera_works_is_answered_with_the_values(recognizer):
    publisher = RecordingPublisher()
    sensors = build_sensors([SensorConfig(name="counter", roi=SAMPLE_ROI)])
    service = Service(FolderSource(SAMPLE), recognizer, sensors, publisher)
    service.run(max_frames=2)
    service.command("read", b'{"id": 3}')
    service._between_frames()
    (reply,) = publisher.results
    assert reply["ok"] is True and reply["values"] == {"counter": sensors[0].last.value}
    assert sensors[0].last.value == "004711"


def test_the_smoother_is_fed_monotonic_time_not_the_wall_clock(recognizer, frame, monkeypatch):
    """A Pi without a real-time clock jumps its wall clock at NTP sync: hold and rate logic must not see it."""
    import device.service

    sensor = build_sensors([SensorConfig(name="counter", roi=SAMPLE_ROI)])[0]
    seen = []
    update = sensor.smoother.update
    sensor.smoother.update = lambda reading, now: (seen.append(now), update(reading, now))[1]
    service = Service(FolderSource(SAMPLE), recognizer, [sensor])
    jumps = itertools.cycle([1e9, 1e9 - 86400.0, 2e9])  # the wall clock leaps forward, back a day, forward again
    monkeypatch.setattr(device.service.time, "time", lambda: next(jumps))
    start = time.monotonic()
    for _ in range(3):
        service.process(frame)
    assert len(seen) == 3 and seen == sorted(seen)
    assert all(start <= t <= time.monotonic() for t in seen)
