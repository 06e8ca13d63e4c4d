"""The daemon end to end: a real ``digitcam run`` process, a real mosquitto, a real int8 model, real videos.

The clip is a video of numbers drawn with OpenCV (each shown for a few frames), read by the committed model;
the values the daemon should publish are worked out independently by reading the same video with the
recognizer and a smoother. Nothing here needs TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
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

from tests.support import (
    DEVICE, FRAME_H, FRAME_W, REPO, ROI, STABLE, TOPICS, NotifyListener, Subscriber, states, wait_until, write_config,
    write_frames,
)


def test_video_to_retained_state_and_last_will_on_kill(tmp_path, model, clip, expected, broker, subscribe, daemons):
    sub = subscribe("digitcam/#")
    daemon = daemons(write_config(tmp_path, model, clip[0], broker, loop=True, fps=50), "--print")
    wait_until(lambda: len(states(sub)) >= len(expected), 30)
    got = states(sub)[: len(expected)]
    assert [s["value"] for s in got] == expected
    first = got[0]
    assert set(first) >= {"value", "confidence", "digits", "box", "timestamp", "frame", "model", "flags"}
    assert first["box"] == list(ROI) and first["timestamp"].endswith("Z") and first["model"]["version"]
    assert len(first["digits"]) == len(first["value"])
    assert [p["value"] for p in daemon.printed()[: len(expected)]] == expected
    late = subscribe(TOPICS.state("number"), TOPICS.availability, client_id="late")
    wait_until(lambda: late.on(TOPICS.availability) and late.on(TOPICS.state("number")))
    assert late.on(TOPICS.availability) == [(b"online", True)]
    assert late.on(TOPICS.state("number"))[0][1] is True  # retained
    daemon.proc.kill()  # SIGKILL: no goodbye, the broker sends the last will
    wait_until(lambda: sub.payloads(TOPICS.availability)[-1:] == [b"offline"], 10)
    # the right numbers, not only the ones the pipeline happens to produce
    right = sum(value in clip[1] for value in expected)
    assert right >= len(clip[1]) // 2, f"read {expected}, shown {clip[1]}"


def test_discovery_published_and_resent_when_home_assistant_restarts(tmp_path, model, clip, broker, subscribe,
                                                                      daemons):
    sub = subscribe("homeassistant/#")
    daemons(write_config(tmp_path, model, clip[0], broker, loop=True, fps=20))
    config_topic = f"homeassistant/sensor/{DEVICE}/number/config"
    wait_until(lambda: sub.on(config_topic), 20)
    payload = json.loads(sub.payloads(config_topic)[0])
    assert payload["state_topic"] == TOPICS.state("number")
    assert payload["availability"][0]["topic"] == TOPICS.availability
    sub.publish("homeassistant/status", "online")
    wait_until(lambda: len(sub.on(config_topic)) == 2, 10)


@pytest.mark.parametrize("outage_s", [3.0])
def test_broker_outage_loses_no_reading_and_keeps_order(tmp_path, model, clip, make_broker, daemons, outage_s):
    broker = make_broker(persistent=True)
    sub = Subscriber(broker, (TOPICS.state("number"),), "outage-watcher", persistent=True)
    try:
        daemon = daemons(write_config(tmp_path, model, clip[0], broker, loop=True, fps=40), "--print")
        wait_until(lambda: len(states(sub)) >= 2, 30)
        broker.stop()
        before = len(daemon.printed())
        time.sleep(outage_s)
        made_meanwhile = len(daemon.printed()) - before
        broker.start()
        time.sleep(1.5)
        assert daemon.stop() == 0
        printed = [(p["frame"], p["value"]) for p in daemon.printed()]
        wait_until(lambda: len(states(sub)) >= len(printed), 15)
        received = []
        for s in states(sub):  # duplicates are allowed (QoS 1); dedupe by frame
            if (s["frame"], s["value"]) not in received:
                received.append((s["frame"], s["value"]))
        assert made_meanwhile >= 2, "the outage was too short to test anything"
        assert received == printed
    finally:
        sub.close()


def colour_cast(pixels: np.ndarray) -> float:
    """How much the green (or red) channel of BGR pixels stands out from the other two, on average."""
    green = (pixels[:, 1] - pixels[:, [0, 2]].max(axis=1)).mean()
    red = (pixels[:, 2] - pixels[:, :2].max(axis=1)).mean()
    return float(max(green, red))


def test_snapshot_jpeg_and_bad_commands_answered(tmp_path, model, clip, broker, subscribe, daemons):
    sub = subscribe("digitcam/#")
    daemon = daemons(write_config(tmp_path, model, clip[0], broker, loop=True, fps=20))
    wait_until(lambda: states(sub), 30)
    sub.publish(f"{TOPICS.base}/cmd/snapshot", b'{"sensor": "number", "id": 7}')
    wait_until(lambda: sub.payloads(TOPICS.snapshot("number")), 10)
    image = cv2.imdecode(np.frombuffer(sub.payloads(TOPICS.snapshot("number"))[0], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (FRAME_H, FRAME_W, 3)
    x, y, w, h = ROI
    edge = image[y, x + 5: x + w - 5].astype(int)  # the box's top edge: green (a number) or red (none)
    inside = image[y + 3, x + 5: x + w - 5].astype(int)
    assert colour_cast(edge) > 30  # the box is drawn in colour on the grey frame
    assert colour_cast(inside) < 10
    for name, payload in [("snapshot", b"{not json"), ("selfdestruct", b""), ("read", b'{"sensor": "ghost"}'),
                          ("reload", b'{"sensor": "number"}'), ("read", b"[1, 2]"), ("read", b"x" * 5000),
                          ("snapshot", b'{"sensor": ["number"]}')]:
        sub.publish(f"{TOPICS.base}/cmd/{name}", payload)
    sub.publish(f"{TOPICS.base}/cmd/read", b"")
    wait_until(lambda: len(sub.payloads(TOPICS.command_result)) == 9, 10)
    results = [json.loads(p) for p in sub.payloads(TOPICS.command_result)]
    assert results[0] == {"command": "snapshot", "id": 7, "snapshots": [TOPICS.snapshot("number")], "ok": True}
    errors = [r["error"] for r in results[1:8]]
    assert [r["ok"] for r in results] == [True] + [False] * 7 + [True]
    assert "not JSON" in errors[0] and "unknown command 'selfdestruct'" in errors[1]
    assert "unknown sensor 'ghost'" in errors[2] and "unknown key 'sensor' for reload" in errors[3]
    assert "must be a JSON object" in errors[4] and "too large" in errors[5]
    assert "unknown sensor \"['number']\"" in errors[6]
    assert "number" in results[8]["values"]
    stats = json.loads(wait_until(lambda: sub.payloads(TOPICS.stats), 5)[-1])
    assert stats["frames"] > 0 and stats["fps"] > 0 and stats["camera"] == "online"
    assert {"inference_ms_p50", "inference_ms_p95", "dropped_frames", "cpu_temp_c", "uptime_s", "queue"} <= set(stats)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded: 1 sensor(s)" in daemon.log(), 15)
    sub.publish(f"{TOPICS.base}/cmd/reload", b"")
    wait_until(lambda: len(sub.payloads(TOPICS.command_result)) == 10, 15)
    assert json.loads(sub.payloads(TOPICS.command_result)[-1]) == {"command": "reload", "ok": True}
    assert daemon.proc.poll() is None


def test_bad_config_and_bad_model_exit_2_naming_the_problem(tmp_path, model, clip, daemons):
    config = write_config(tmp_path, model, clip[0], sensor_extra="stable_read = 2")
    daemon = daemons(config)
    assert daemon.wait() == 2
    assert daemon.log().strip().splitlines()[-1].startswith(f"digitcam: error: {config}:")
    assert "sensor[0].stable_read: unknown key (did you mean 'stable_reads'?)" in daemon.log()
    daemon = daemons(write_config(tmp_path, tmp_path / "nothing.tflite", clip[0], name="nomodel.toml"))
    assert daemon.wait() == 2
    assert "model not found" in daemon.log().strip().splitlines()[-1]


def test_missing_camera_retries_without_crashing_and_stops_cleanly(tmp_path, model, broker, subscribe, daemons):
    sub = subscribe(TOPICS.camera, TOPICS.availability)
    daemon = daemons(write_config(tmp_path, model, "/dev/video97", broker))
    wait_until(lambda: sub.payloads(TOPICS.camera)[-1:] == [b"offline"], 20)
    time.sleep(2.5)  # several retries (0.2, 0.4, 0.8, 1.0 s)
    assert daemon.proc.poll() is None
    log = daemon.log()
    assert log.count("camera /dev/video97 cannot be opened; retrying with backoff") == 1  # said once, not per retry
    assert daemon.stop() == 0
    wait_until(lambda: sub.payloads(TOPICS.availability)[-1:] == [b"offline"], 10)


def test_spooled_readings_are_delivered_by_the_next_run(tmp_path, model, clip, expected, make_broker, daemons):
    broker = make_broker()
    broker.stop()  # the first run finds no broker
    first = daemons(write_config(tmp_path, model, clip[0], broker))
    assert first.wait() == 0
    assert "not delivered; they stay in the spool" in first.log()
    assert len(list((tmp_path / "state" / "spool").glob("*.json"))) == len(expected)
    broker.start()
    sub = Subscriber(broker, (TOPICS.state("number"),), "next-run")
    try:
        second = daemons(write_config(tmp_path, model, clip[0], broker), "--max-frames", "1")
        assert second.wait() == 0
        wait_until(lambda: len(states(sub)) >= len(expected), 10)
        assert [s["value"] for s in states(sub)[: len(expected)]] == expected
        assert not list((tmp_path / "state" / "spool").glob("*.json"))
    finally:
        sub.close()


# ---- the Service in-process, with real parts ------------------------------------------------------------


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


def test_readme_run_command_prints_the_sample_without_a_broker(tmp_path, model):
    """``digitcam run --config samples/digitcam.toml --print``, nothing on localhost:1883 needed."""
    import csv

    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path), "DIGITCAM_MODEL": str(model)}
    env.pop("STATE_DIRECTORY", None)
    try:
        socket.create_connection(("localhost", 1883), timeout=0.5).close()
        broker_listens = True
    except OSError:
        broker_listens = False
    done = subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", "samples/digitcam.toml", "--print"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert printed and all(p["sensor"] == "counter" and p["box"] == [60, 58, 200, 64] for p in printed)
    with open(REPO / "samples" / "meter" / "labels.csv") as fh:
        shown = {row["value"] for row in csv.DictReader(fh) if row["value"]}
    read = {p["value"] for p in printed}
    assert len(read & shown) >= len(shown) // 2, f"read {sorted(read)}, the sample shows {sorted(shown)}"
    # nothing was lost: what was not delivered is spooled under the (temporary) home directory, and the log
    # says how much; with no broker on localhost:1883 (as in CI) that is every reading
    spooled = list((tmp_path / ".local" / "state" / "digitcam" / "sample" / "spool").glob("*.json"))
    said = re.search(r"(\d+) reading\(s\) not delivered; they stay in the spool", done.stderr)
    assert len(spooled) == (int(said.group(1)) if said else 0), done.stderr[-2000:]
    if not broker_listens:
        assert len(spooled) == len(printed)
