"""The daemon's Service in this process, with real parts: a folder of the clip's frames, the int8 recognizer,
real sensors, and a stand-in locator where a test needs to choose the boxes.

Apart from tests/device/test_service.py (``digitcam run`` as a process) because these reach into the
service: its error counts, a reload, the sd_notify messages, and how a located box is searched, tracked
and read between searches. Nothing here needs TensorFlow or a broker.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from device.build import Parts
from device.contract import Reading
from device.locate import Candidate
from device.notify import Notifier
from device.recognize import Recognizer
from device.reader import build_sensors
from device.service import Service
from device.config import SensorConfig
from device.sources import FolderSource, OpenCVSource

from tests.support import FRAME_H, FRAME_W, ROI, STABLE, NotifyListener, write_frames


@pytest.fixture
def frames_folder(tmp_path, clip):
    """The clip's frames as PNG files, plus one corrupt file in the middle."""
    folder = write_frames(clip[0], tmp_path / "frames", ".png")
    (folder / "0012.png").write_bytes(b"\x89PNG\r\n broken")
    return folder


def sensor(name="number", roi=ROI, **options):
    return build_sensors([SensorConfig(name=name, roi=roi, **{**STABLE, **options})])[0]


def test_service_survives_bad_frames_and_counts_them(model, frames_folder):
    printed = []
    service = Service(FolderSource(frames_folder), Recognizer(model), [sensor()], printer=printed.append)
    assert service.run() == 0
    assert service.stats.errors == 1
    assert service.frame_no == len(list(frames_folder.glob("*.png"))) - 1
    values = [json.loads(p)["value"] for p in printed]
    assert values and all(json.loads(p)["sensor"] == "number" for p in printed)
    report = service.stats_report()
    assert report["errors"] == 1 and report["frames"] == service.frame_no and report["camera"] == "online"
    assert report["inference_ms_p50"] > 0 and report["inference_ms_p95"] >= report["inference_ms_p50"]


def test_roi_outside_the_frame_is_counted_not_fatal(model, frames_folder, caplog):
    service = Service(FolderSource(frames_folder), Recognizer(model), [sensor(roi=(5000, 0, 10, 10))])
    assert service.run(max_frames=10) == 0
    assert service.stats.errors == 10
    assert caplog.text.count("lies outside the 320x120 frame") == 1


def test_reload_keeps_unchanged_sensors_and_refuses_bad_config(model, frames_folder):
    from device.errors import ConfigError

    kept = sensor()
    service = Service(FolderSource(frames_folder), Recognizer(model), [kept])
    more = [kept.config, SensorConfig(name="other")]
    service.reload_parts = lambda running: Parts(service.recognizer, build_sensors(more, running))
    assert service.reload() is None
    assert service.sensors[0] is kept and service.sensors[1].name == "other"

    def broken(running):
        raise ConfigError("digitcam.toml:3: camera.fsp: unknown key")

    service.reload_parts = broken
    assert "camera.fsp" in service.reload()
    assert [s.name for s in service.sensors] == ["number", "other"]


def test_sd_notify_ready_watchdog_only_while_frames_flow(tmp_path, model, frames_folder):
    listener = NotifyListener(tmp_path / "notify.sock")
    notifier = Notifier(address=listener.path, watchdog_usec="20000")  # feed every 10 ms
    try:
        service = Service(FolderSource(frames_folder, fps=100), Recognizer(model), [sensor()], notifier=notifier)
        service.run()
        messages = listener.take()
        assert messages[0].startswith("READY=1")
        assert messages.count("WATCHDOG=1") >= 5
        assert messages[-1] == "STOPPING=1"

        blind = Service(OpenCVSource("/dev/video97", live=True), Recognizer(model), [sensor()], notifier=notifier)
        thread = threading.Thread(target=blind.run)
        thread.start()
        time.sleep(0.8)
        blind.stop()
        thread.join(5)
        messages = listener.take()
        assert "WATCHDOG=1" not in messages  # no frame, no feeding: systemd may restart us
        assert any(m.startswith("STATUS=camera fault: camera /dev/video97 cannot be opened") for m in messages)
    finally:
        listener.close()
        notifier.close()


def test_locate_without_a_locator_reads_the_whole_frame(model, frames_folder):
    whole = build_sensors([SensorConfig(name="n", locate=True, **STABLE)])[0]
    service = Service(FolderSource(frames_folder), Recognizer(model), [whole], locator=None)
    service.run(max_frames=3)
    assert whole.last.box == (0, 0, FRAME_W, FRAME_H)


class FixedLocator:
    """A stand-in with the locator model's interface, ``find(frame, roi=None) -> box | None``; records the rois.

    Given several boxes it answers them in turn, one per call (the last one from then on).
    """

    def __init__(self, *boxes):
        self.boxes = list(boxes)
        self.rois = []
        self.viewed = []

    def find(self, frame, roi=None):
        self.rois.append(roi)
        return self.boxes[min(len(self.rois), len(self.boxes)) - 1]

    def candidates(self, frame, roi=None):
        """``find``'s box as the one candidate (the daemon's search asks for candidates)."""
        box = self.find(frame, roi)
        return [] if box is None else [Candidate(box, 1.0)]

    def view_boxes(self, box, frame_shape):
        """The box and a copy of it: two views that agree, so the reading is the box's own."""
        self.viewed.append(box)
        return [box, box]


def test_locate_uses_the_locators_box_and_none_means_no_number(model, frames_folder):
    found = build_sensors([SensorConfig(name="n", locate=True, locate_every=1, **STABLE)])[0]
    service = Service(FolderSource(frames_folder), Recognizer(model), [found], locator=FixedLocator(ROI))
    service.run(max_frames=3)
    assert found.last.box == ROI
    assert service.locator.viewed == [ROI] * 3  # a located box is read through the locator's views
    service.locator = FixedLocator(None)
    service.process(service.last_frame)
    assert found.last.box == ROI  # one miss: the tracked box is held (a hand in front of the meter)
    for _ in range(5):
        service.process(service.last_frame)
    assert found.last == Reading(value=None, confidence=1.0)  # six misses in a row: no number
    assert service.locator.rois == [None] * 6


class CountingRecognizer(Recognizer):
    """The real recognizer, counting the crops of each call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def read(self, crops):
        self.calls.append(len(crops))
        return super().read(crops)


def test_all_views_are_read_on_search_frames_and_only_the_winner_between(model, frames_folder):
    sensor = build_sensors([SensorConfig(name="n", locate=True, locate_every=3, **STABLE)])[0]
    recognizer = CountingRecognizer(model)
    service = Service(FolderSource(frames_folder), recognizer, [sensor], locator=FixedLocator(ROI))
    service.run(max_frames=1)
    for _ in range(5):
        service.process(service.last_frame)
    assert recognizer.calls == [2, 1, 1, 2, 1, 1]  # frames 1 and 4 search: both views vote
    assert sensor.view in (0, 1) and sensor.last.box == ROI


def test_locator_runs_every_nth_frame_and_the_tracked_box_does_not_jump(model, frames_folder):
    tracked = build_sensors([SensorConfig(name="n", locate=True, locate_every=3, **STABLE)])[0]
    elsewhere = (0, 0, 100, 30)  # one frame's stray box on a sign: not followed
    locator = FixedLocator(ROI, (44, 30, 240, 60), elsewhere, (44, 30, 240, 60))
    service = Service(FolderSource(frames_folder), Recognizer(model), [tracked], locator=locator)
    service.run(max_frames=1)
    boxes = [tracked.last.box]
    for _ in range(9):
        service.process(service.last_frame)
        boxes.append(tracked.last.box)
    assert len(locator.rois) == 4  # frames 1, 4, 7 and 10
    assert boxes[:3] == [ROI] * 3  # the box found on frame 1 serves frames 2 and 3
    assert boxes[3] == (42, 30, 240, 60)  # a nearby box moves the crop part of the way (alpha 0.4, rounded)
    assert boxes[6] == boxes[3]  # the stray box did not steal the crop
    assert boxes[9][0] == 43


def test_locate_inside_an_roi_searches_only_there(model, frames_folder):
    narrowed = build_sensors([SensorConfig(name="n", locate=True, locate_every=1, roi=(0, 0, 5000, 90), **STABLE)])[0]
    locator = FixedLocator((50, 35, 200, 50))
    service = Service(FolderSource(frames_folder), Recognizer(model), [narrowed], locator=locator)
    service.run(max_frames=2)
    assert locator.rois == [(0, 0, FRAME_W, 90)] * 2  # clipped to the frame
    assert narrowed.last.box == (50, 35, 200, 50)
