"""Camera faults against a real daemon: its image folder is emptied, or fills with frames it cannot use.

The test plays systemd: it binds the ``NOTIFY_SOCKET`` datagram socket the daemon reports to and checks
READY=1, then WATCHDOG=1 only while frames are processed (a daemon whose camera is gone must let the
watchdog expire), and the retained ``camera`` topic and stats that Home Assistant shows.
"""

from __future__ import annotations

import json
import shutil
import time

import cv2
import numpy as np
import pytest

from tests.support import TOPICS, wait_until, write_config

WATCHDOG_USEC = "200000"  # the daemon feeds every 0.1 s while frames flow
RECOVERY_S = 5.0


def camera_is(sub, state: bytes):
    return lambda: sub.payloads(TOPICS.camera)[-1:] == [state]


def last_stats(sub) -> dict:
    payloads = sub.payloads(TOPICS.stats)
    return json.loads(payloads[-1]) if payloads else {}


def error_lines(daemon) -> list[str]:
    return [line for line in daemon.log().splitlines() if line.startswith(("ERROR", "WARNING device.service"))]


@pytest.fixture
def watched(tmp_path, model, clip_frames, broker, subscribe, notify_socket, daemons):
    """A daemon reading a looping copy of the clip's frames, watched over MQTT and sd_notify, frames flowing."""
    folder = tmp_path / "frames"
    shutil.copytree(clip_frames, folder)
    sub = subscribe(TOPICS.camera, TOPICS.stats, TOPICS.state("number"))
    config = write_config(tmp_path, model, folder, broker, loop=True, fps=20)
    config.write_text(config.read_text().replace("retry_max_s = 1.0", "retry_max_s = 1.0\nread_timeout_s = 1.0"))
    daemon = daemons(config, env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": WATCHDOG_USEC})
    wait_until(lambda: "WATCHDOG=1" in notify_socket.lines(), 60)
    wait_until(camera_is(sub, b"online"), 10)
    assert notify_socket.lines()[0].startswith("READY=1")
    return folder, sub, daemon, notify_socket


def replace_frames(folder, frame: np.ndarray | None) -> dict:
    """Empty the folder (``frame`` None) or overwrite every file in place, atomically, with ``frame``.

    Returns the original files' bytes by name for ``restore_frames``.
    """
    originals = {path.name: path.read_bytes() for path in sorted(folder.iterdir())}
    encoded = None if frame is None else cv2.imencode(".jpg", frame)[1].tobytes()
    for name in originals:
        if encoded is None:
            (folder / name).unlink()
        else:
            atomic_write(folder / name, encoded)
    return originals


def atomic_write(path, data: bytes) -> None:
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def restore_frames(folder, originals: dict) -> float:
    for name, data in originals.items():
        atomic_write(folder / name, data)
    return time.monotonic()


def assert_fault_then_recovery(folder, sub, daemon, notify, moved, expect_in_log: str):
    """The shared story of every camera fault: offline, said once, no watchdog, then back within 5 s."""
    wait_until(camera_is(sub, b"offline"), 15)
    detected = time.monotonic()
    wait_until(lambda: last_stats(sub).get("camera") == "offline", 5)
    assert expect_in_log in (last_stats(sub).get("camera_error") or "")
    said = len(error_lines(daemon))
    time.sleep(3.0)  # several retries with backoff (0.2, 0.4, 0.8, 1, 1 s)
    assert len(error_lines(daemon)) == said, "the fault is logged again on every retry"
    assert 1 <= said <= 3, error_lines(daemon)
    assert expect_in_log in daemon.log()
    assert "WATCHDOG=1" not in notify.lines(since=detected + 0.2), "the watchdog is fed with no frame processed"
    assert any(line.startswith("STATUS=camera fault") for line in notify.lines())
    assert daemon.proc.poll() is None
    back = restore_frames(folder, moved)
    wait_until(camera_is(sub, b"online"), RECOVERY_S)
    wait_until(lambda: "WATCHDOG=1" in notify.lines(since=back), RECOVERY_S)
    assert time.monotonic() - back < RECOVERY_S
    assert "is back" in daemon.log()
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()


def test_folder_emptied_then_refilled(watched):
    folder, sub, daemon, notify = watched
    moved = replace_frames(folder, None)
    assert_fault_then_recovery(folder, sub, daemon, notify, moved, "has no images")


def test_frames_of_the_wrong_size(watched):
    folder, sub, daemon, notify = watched
    small = np.random.default_rng(1).integers(0, 255, (24, 32, 3), np.uint8)
    moved = replace_frames(folder, small)  # the sensor's ROI lies outside these frames
    assert_fault_then_recovery(folder, sub, daemon, notify, moved, "lies outside the 32x24 frame")


def test_all_black_frames(watched, clip_frames):
    folder, sub, daemon, notify = watched
    shape = cv2.imread(str(next(clip_frames.iterdir()))).shape
    moved = replace_frames(folder, np.zeros(shape, np.uint8))
    assert_fault_then_recovery(folder, sub, daemon, notify, moved, "blank")


def test_read_and_snapshot_commands_during_an_outage_say_camera_offline(watched, subscribe):
    """No stale frame is read or shown as new while the camera is gone; once it is back, cmd/read reads."""
    folder, sub, daemon, notify = watched
    results = subscribe(TOPICS.command_result, TOPICS.state("number"), client_id="commander")
    moved = replace_frames(folder, None)
    wait_until(camera_is(sub, b"offline"), 15)
    states_before = len(results.payloads(TOPICS.state("number")))
    results.publish(f"{TOPICS.base}/cmd/read", b'{"id": 1}')
    results.publish(f"{TOPICS.base}/cmd/snapshot", b'{"id": 2}')
    wait_until(lambda: len(results.payloads(TOPICS.command_result)) == 2, 5)
    answers = [json.loads(p) for p in results.payloads(TOPICS.command_result)]
    assert [(a["id"], a["ok"]) for a in answers] == [(1, False), (2, False)]
    assert all(a["error"].startswith("camera offline: ") for a in answers), answers
    assert len(results.payloads(TOPICS.state("number"))) == states_before  # nothing re-published as new
    restore_frames(folder, moved)
    wait_until(camera_is(sub, b"online"), RECOVERY_S)
    results.publish(f"{TOPICS.base}/cmd/read", b'{"id": 3}')
    wait_until(lambda: len(results.payloads(TOPICS.command_result)) == 3, 5)
    last = json.loads(results.payloads(TOPICS.command_result)[-1])
    assert last["id"] == 3 and last["ok"] is True and "number" in last["values"]
    assert daemon.stop() == 0 and "Traceback" not in daemon.log()
