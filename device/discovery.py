"""Home Assistant MQTT discovery: pure functions from the config to (topic, payload, retain) messages.

No broker and no client here, so the payloads are tested as plain data. Each sensor becomes a ``sensor``
entity (the value; confidence, digits, flags and time as attributes) and a ``camera`` entity showing its
last annotated snapshot, both under one device and both unavailable when the daemon or camera is.
"""

from __future__ import annotations

import json

from device import __version__
from device.mqtt import Topics

ATTRIBUTES_TEMPLATE = (
    "{{ {'confidence': value_json.confidence, 'digits': value_json.digits, 'flags': value_json.flags,"
    " 'timestamp': value_json.timestamp, 'frame': value_json.frame, 'model': value_json.model} | tojson }}"
)


def device_block(device: str, model: dict | None = None) -> dict:
    """The HA device all entities of this daemon belong to."""
    block = {
        "identifiers": [f"digitcam_{device}"],
        "name": device,
        "manufacturer": "digitcam",
        "sw_version": __version__,
    }
    if model:
        block["model"] = f"{model.get('name', 'digitcam')} {model.get('version', '')}".strip()
    return block


def availability(topics: Topics) -> dict:
    """Both the daemon (last will) and the camera must be up for a value to be current."""
    return {
        "availability": [{"topic": topics.availability}, {"topic": topics.camera}],
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
    }


def sensor_config(topics: Topics, sensor, model: dict | None, discovery_prefix: str = "homeassistant") -> tuple:
    """(topic, payload, retain) of the HA ``sensor`` entity for one configured sensor."""
    object_id = f"{topics.device}_{sensor.name}"
    payload = {
        "name": sensor.name,
        "unique_id": f"digitcam_{object_id}",
        "state_topic": topics.state(sensor.name),
        "value_template": "{{ value_json.value }}",
        "json_attributes_topic": topics.state(sensor.name),
        "json_attributes_template": ATTRIBUTES_TEMPLATE,
        "icon": "mdi:counter" if sensor.mode == "meter" else "mdi:numeric",
        "qos": 1,
        "device": device_block(topics.device, model),
        **availability(topics),
    }
    for key in ("unit", "device_class", "state_class"):
        value = getattr(sensor, key)
        if value:
            payload["unit_of_measurement" if key == "unit" else key] = value
    if sensor.mode == "meter" and not sensor.state_class:
        payload["state_class"] = "total_increasing"
    topic = f"{discovery_prefix}/sensor/{topics.device}/{sensor.name}/config"
    return topic, json.dumps(payload, sort_keys=True), True


def snapshot_config(topics: Topics, sensor, model: dict | None, discovery_prefix: str = "homeassistant") -> tuple:
    """(topic, payload, retain) of the HA ``camera`` entity showing the sensor's annotated snapshot."""
    object_id = f"{topics.device}_{sensor.name}_snapshot"
    payload = {
        "name": f"{sensor.name} snapshot",
        "unique_id": f"digitcam_{object_id}",
        "topic": topics.snapshot(sensor.name),
        "device": device_block(topics.device, model),
        **availability(topics),
    }
    topic = f"{discovery_prefix}/camera/{topics.device}/{sensor.name}_snapshot/config"
    return topic, json.dumps(payload, sort_keys=True), True


def discovery_messages(topics: Topics, sensors, model: dict | None = None,
                       discovery_prefix: str = "homeassistant") -> list[tuple]:
    """Every discovery message for this daemon, in a stable order."""
    out = []
    for sensor in sensors:
        out.append(sensor_config(topics, sensor, model, discovery_prefix))
        out.append(snapshot_config(topics, sensor, model, discovery_prefix))
    return out
