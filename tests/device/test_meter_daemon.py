"""A meter sensor end to end: a real ``digitcam run``, a real mosquitto, the committed model, drawn meter frames.

Carry logic, wrap and rate are worked out in tests/device/test_meter.py on plain Readings; here the same
meter runs inside the daemon: the state JSON's numeric reading and rate, the discovery of the rate, raw
and problem entities (and their removal), ``cmd/set_value`` and the accepted value surviving a restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support import TOPICS, number_crop, number_frame, states, wait_until, write_config

METER = ('mode = "meter"\ndigits = 6\ndecimals = 3\nunit = "m³"\ndevice_class = "water"\nconfirm_s = 0.5\n'
         'raw_interval_s = 0.5\nmax_step = 2')
DISCOVERY = "homeassistant/{}/testcam/{}/config"


def meter_frames(folder: Path, values, per_value: int = 8) -> Path:
    """Each value drawn on ``per_value`` frames (fresh noise on each), as a folder source."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    i = 0
    for value in values:
        crop = number_crop(value)
        for _ in range(per_value):
            cv2.imwrite(str(folder / f"{i:04d}.png"), number_frame(crop, rng))
            i += 1
    return folder


def published_values(sub) -> list[str]:
    """Distinct state values in arrival order (QoS 1 may deliver one twice)."""
    out = []
    for s in states(sub):
        if not out or out[-1] != s["value"]:
            out.append(s["value"])
    return out


def stored(tmp_path) -> str:
    return json.loads((tmp_path / "state" / "meters.json").read_text())["number"]["value"]


def test_meter_state_discovery_and_persistence(tmp_path, model, broker, subscribe, daemons):
    sub = subscribe("#")
    frames = meter_frames(tmp_path / "counting", ["004711", "004712", "004713"])
    daemon = daemons(write_config(tmp_path, model, frames, broker, fps=10, sensor_extra=METER))
    assert daemon.wait(60) == 0, daemon.log()[-2000:]
    wait_until(lambda: "004713" in published_values(sub), 10)
    assert published_values(sub) == ["004711", "004712", "004713"]
    last = states(sub)[-1]
    assert last["reading"] == 4.713 and last["flags"] == []
    assert last["rate_per_hour"] > 0 and last["rate_per_minute"] == pytest.approx(last["rate_per_hour"] / 60, rel=1e-5)
    assert states(sub)[0]["flags"] == ["first", "accepted_after_hold"]  # nothing stored: a first value waits
    assert stored(tmp_path) == "004713"

    configs = {t: json.loads(p) for t, p, _ in sub.messages if t.endswith("/config") and p}
    value = configs[DISCOVERY.format("sensor", "number")]
    assert value["value_template"] == "{{ value_json.reading }}" and value["expire_after"] == 3600
    assert configs[DISCOVERY.format("sensor", "number_rate")]["unit_of_measurement"] == "m³/h"
    assert configs[DISCOVERY.format("sensor", "number_raw")]["entity_category"] == "diagnostic"
    assert configs[DISCOVERY.format("binary_sensor", "number_problem")]["device_class"] == "problem"
    raws = [json.loads(p) for p in sub.payloads(f"{TOPICS.base}/number/raw")]
    assert raws and all(r["value"] in ("004711", "004712", "004713") for r in raws)
    problems = [json.loads(p)["state"] for p in sub.payloads(f"{TOPICS.base}/number/problem")]
    assert problems[-1] == "OFF"

    # a restart: the stored value checks the first reading; a lower one (a misread, a moved camera) is held
    lower = meter_frames(tmp_path / "lower", ["004709"], per_value=30)
    sub.messages.clear()
    daemon = daemons(write_config(tmp_path, model, lower, broker, fps=10, sensor_extra=METER))
    assert daemon.wait(60) == 0
    wait_until(lambda: sub.payloads(f"{TOPICS.base}/number/problem"), 10)
    assert "held 004709: decreased" in json.loads(sub.payloads(f"{TOPICS.base}/number/problem")[-1])["reason"]
    assert not states(sub) or {s["value"] for s in states(sub)} == {"004713"}  # only the retained old state
    assert stored(tmp_path) == "004713"


def test_set_value_is_answered_published_persisted_and_refused_when_bad(tmp_path, model, broker, subscribe, daemons):
    sub = subscribe("#")
    frames = meter_frames(tmp_path / "swapped", ["000003"], per_value=20)
    daemon = daemons(write_config(tmp_path, model, frames, broker, fps=10, loop=True, sensor_extra=METER))
    wait_until(lambda: sub.payloads(f"{TOPICS.base}/number/raw"), 30)
    for payload in (b'{"sensor": "number", "value": 3}', b'{"sensor": "number"}',
                    b'{"sensor": "number", "value": "0003"}', b'{"sensor": "number", "value": "000003", "id": 9}'):
        sub.publish(f"{TOPICS.base}/cmd/set_value", payload)
    wait_until(lambda: len(sub.payloads(TOPICS.command_result)) == 4, 15)
    results = [json.loads(p) for p in sub.payloads(TOPICS.command_result)]
    assert [r["ok"] for r in results] == [False, False, False, True]
    assert "value must be a string of digits" in results[0]["error"]
    assert "set_value needs 'value'" in results[1]["error"]
    assert "has 4 digits, sensor number has 6" in results[2]["error"]
    assert results[3] == {"command": "set_value", "id": 9, "sensor": "number", "value": "000003", "ok": True}
    wait_until(lambda: any(s["flags"] == ["set_value"] for s in states(sub)), 10)
    state = next(s for s in states(sub) if s["flags"] == ["set_value"])
    assert state["value"] == "000003" and state["reading"] == 0.003
    assert stored(tmp_path) == "000003"
    assert "value set to 000003" in daemon.log()
    assert daemon.stop() == 0


def test_entities_of_a_sensor_removed_from_the_config_are_deleted(tmp_path, model, broker, subscribe, daemons):
    frames = meter_frames(tmp_path / "frames", ["004711"], per_value=4)
    daemon = daemons(write_config(tmp_path, model, frames, broker, fps=10, sensor_extra=METER))
    assert daemon.wait(60) == 0
    sub = subscribe("homeassistant/#")
    daemon = daemons(write_config(tmp_path, model, frames, broker, fps=10))  # the same name, now a plain number
    assert daemon.wait(60) == 0
    gone = {DISCOVERY.format("sensor", "number_rate"), DISCOVERY.format("sensor", "number_raw"),
            DISCOVERY.format("binary_sensor", "number_problem")}
    wait_until(lambda: gone <= {t for t, p, _ in sub.messages if p == b""}, 10)
    fresh = subscribe("homeassistant/#", client_id="fresh")  # gets what the broker still holds, retained
    wait_until(lambda: DISCOVERY.format("sensor", "number") in {t for t, _, _ in fresh.messages}, 10)
    assert not gone & {t for t, p, retain in fresh.messages if retain and p}
