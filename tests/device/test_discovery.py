"""Home Assistant discovery payloads, built as plain data."""

import json

from device.config import SensorConfig
from device.discovery import discovery_messages, sensor_config
from device.mqtt import Topics

TOPICS = Topics("digitcam", "cellar")
MODEL = {"name": "digitcam-crnn", "version": "1.2", "sha256": "abc"}


def test_sensor_entity_reads_value_and_attributes_from_the_state_topic():
    topic, payload, retain = sensor_config(TOPICS, SensorConfig(name="water", unit="m³"), MODEL)
    data = json.loads(payload)
    assert topic == "homeassistant/sensor/cellar/water/config" and retain is True
    assert data["state_topic"] == data["json_attributes_topic"] == "digitcam/cellar/water/state"
    assert data["value_template"] == "{{ value_json.value }}"
    assert "value_json.confidence" in data["json_attributes_template"]
    assert data["unique_id"] == "digitcam_cellar_water"
    assert data["unit_of_measurement"] == "m³"
    assert data["device"]["identifiers"] == ["digitcam_cellar"]
    assert data["device"]["model"] == "digitcam-crnn 1.2"
    assert {a["topic"] for a in data["availability"]} == {"digitcam/cellar/availability", "digitcam/cellar/camera"}
    assert data["availability_mode"] == "all"


def test_meter_is_total_increasing_and_number_is_not():
    meter = json.loads(sensor_config(TOPICS, SensorConfig(name="gas", mode="meter"), None)[1])
    house = json.loads(sensor_config(TOPICS, SensorConfig(name="house"), None)[1])
    assert meter["state_class"] == "total_increasing"
    assert "state_class" not in house and "unit_of_measurement" not in house


def test_every_sensor_gets_a_value_and_a_snapshot_entity_with_a_custom_prefix():
    msgs = discovery_messages(TOPICS, [SensorConfig(name="a"), SensorConfig(name="b")], MODEL, "ha")
    assert [t for t, _, _ in msgs] == [
        "ha/sensor/cellar/a/config", "ha/camera/cellar/a_snapshot/config",
        "ha/sensor/cellar/b/config", "ha/camera/cellar/b_snapshot/config",
    ]
    camera = json.loads(msgs[1][1])
    assert camera["topic"] == "digitcam/cellar/a/snapshot"
    assert len({json.loads(p)["unique_id"] for _, p, _ in msgs}) == 4


def test_topics():
    assert TOPICS.command_name("digitcam/cellar/cmd/snapshot") == "snapshot"
    assert TOPICS.command_name("digitcam/cellar/cmd/result") is None
    assert TOPICS.command_name("digitcam/other/cmd/read") is None
    assert TOPICS.state("water") == "digitcam/cellar/water/state"
