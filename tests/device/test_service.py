"""The daemon end to end: a real ``digitcam run`` process, a real mosquitto, a real int8 model, real videos.

The clip is a video of numbers drawn with OpenCV (each shown for a few frames), read by the committed model;
the values the daemon should publish are worked out independently by reading the same video with the
recognizer and a smoother. Nothing here needs TensorFlow. The Service in one process, where a test needs its
insides, is tests/device/test_service_inprocess.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from tests.support import DEVICE, FRAME_H, FRAME_W, REPO, ROI, TOPICS, Subscriber, states, wait_until, write_config


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
