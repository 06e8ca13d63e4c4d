"""Home Assistant discovery payloads, built as plain data."""

import json

from device.config import SensorConfig
from device.discovery import discovery_messages, rate_config, sensor_config, with_removals
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


WATER = SensorConfig(name="water", mode="meter", unit="m³", device_class="water", digits=8, decimals=3)


def by_topic(messages):
    return {topic: (json.loads(payload) if payload else payload) for topic, payload, _ in messages}


def test_meter_value_is_the_numeric_reading_with_expire_after():
    data = json.loads(sensor_config(TOPICS, WATER, MODEL)[1])
    assert data["value_template"] == "{{ value_json.reading }}"
    assert data["expire_after"] == 3600 and data["state_class"] == "total_increasing"
    assert data["suggested_display_precision"] == 3
    assert "'value': value_json.value" in data["json_attributes_template"]  # the digit string stays visible
    never = json.loads(sensor_config(TOPICS, SensorConfig(name="gas", mode="meter", expire_after_s=0), None)[1])
    assert "expire_after" not in never


def test_meter_has_rate_raw_and_problem_entities():
    msgs = by_topic(discovery_messages(TOPICS, [WATER], MODEL))
    rate = msgs["homeassistant/sensor/cellar/water_rate/config"]
    assert (rate["unit_of_measurement"], rate["device_class"], rate["state_class"]) == (
        "m³/h", "volume_flow_rate", "measurement")
    assert rate["state_topic"] == "digitcam/cellar/water/state" and "rate_per_hour" in rate["value_template"]
    raw = msgs["homeassistant/sensor/cellar/water_raw/config"]
    assert raw["entity_category"] == "diagnostic" and raw["state_topic"] == "digitcam/cellar/water/raw"
    problem = msgs["homeassistant/binary_sensor/cellar/water_problem/config"]
    assert problem["device_class"] == "problem" and problem["state_topic"] == "digitcam/cellar/water/problem"
    assert [a["topic"] for a in problem["availability"]] == ["digitcam/cellar/availability"]  # camera off: ON
    assert len({m["unique_id"] for m in msgs.values()}) == len(msgs) == 5


def test_rate_units_follow_the_meter_unit():
    def rate_of(unit, device_class):
        cfg = SensorConfig(name="m", mode="meter", unit=unit, device_class=device_class)
        return json.loads(rate_config(TOPICS, cfg, None)[1])

    litres = rate_of("L", "water")
    assert litres["unit_of_measurement"] == "L/min" and "rate_per_minute" in litres["value_template"]
    power = rate_of("kWh", "energy")
    assert (power["unit_of_measurement"], power["device_class"]) == ("kW", "power")
    ccf = rate_of("CCF", "gas")
    assert ccf["unit_of_measurement"] == "CCF/h" and "device_class" not in ccf


def test_no_raw_entity_when_raw_interval_is_zero_and_numbers_have_no_meter_entities():
    quiet = SensorConfig(name="w", mode="meter", raw_interval_s=0)
    topics = [t for t, _, _ in discovery_messages(TOPICS, [quiet, SensorConfig(name="house")])]
    assert not any("_raw" in t for t in topics)
    assert not any(t.startswith("homeassistant/sensor/cellar/house_") for t in topics)


def test_entities_of_a_removed_sensor_get_an_empty_retained_config(tmp_path):
    ledger = tmp_path / "discovery.json"
    first = with_removals(discovery_messages(TOPICS, [WATER, SensorConfig(name="house")]), ledger)
    assert all(payload for _, payload, _ in first)  # nothing announced before: nothing removed
    second = with_removals(discovery_messages(TOPICS, [SensorConfig(name="house")]), ledger)
    removed = {t for t, p, retain in second if p == "" and retain}
    assert removed == {
        "homeassistant/sensor/cellar/water/config", "homeassistant/camera/cellar/water_snapshot/config",
        "homeassistant/sensor/cellar/water_rate/config", "homeassistant/sensor/cellar/water_raw/config",
        "homeassistant/binary_sensor/cellar/water_problem/config",
    }
    third = with_removals(discovery_messages(TOPICS, [SensorConfig(name="house")]), ledger)
    assert all(payload for _, payload, _ in third)  # said once; the ledger now lists only what exists
