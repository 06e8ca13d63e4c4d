"""Home Assistant MQTT discovery: pure functions from the config to (topic, payload, retain) messages.

No broker and no client here, so the payloads are tested as plain data. Each sensor becomes a ``sensor``
entity (the value; confidence, digits, flags and time as attributes) and a ``camera`` entity showing its
last annotated snapshot, both under one device and both unavailable when the daemon or camera is.

A ``meter`` sensor's value entity is the numeric ``reading`` (``decimals`` applied) with ``expire_after``,
and it has three more: its ``rate`` (volume flow or power where Home Assistant has a class for it), a
diagnostic ``raw`` sensor (the latest per-frame reading) and a ``problem`` binary sensor (a held value,
the camera offline, or no confident read lately). Entities of sensors no longer configured are removed
with an empty retained config (``removals``), so Home Assistant does not keep dead ones.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from device import __version__
from device.mqtt import Topics

log = logging.getLogger(__name__)

# A meter's unit -> (rate unit, HA device class or None, the state field holding the rate).
RATE_UNITS = {
    "m³": ("m³/h", "volume_flow_rate", "rate_per_hour"),
    "L": ("L/min", "volume_flow_rate", "rate_per_minute"),
    "gal": ("gal/min", "volume_flow_rate", "rate_per_minute"),
    "ft³": ("ft³/min", "volume_flow_rate", "rate_per_minute"),
    "Wh": ("W", "power", "rate_per_hour"),
    "kWh": ("kW", "power", "rate_per_hour"),
    "MWh": ("MW", "power", "rate_per_hour"),
    "GWh": ("GW", "power", "rate_per_hour"),
}

def attributes_template(*fields: str) -> str:
    """A Jinja template making the named fields of the state JSON the entity's attributes."""
    return "{{ {" + ", ".join(f"'{f}': value_json.{f}" for f in fields) + "} | tojson }}"


ATTRIBUTES_TEMPLATE = attributes_template("confidence", "digits", "flags", "timestamp", "frame", "model")
METER_ATTRIBUTES_TEMPLATE = attributes_template("value", "confidence", "digits", "flags", "timestamp", "frame", "model")
RAW_ATTRIBUTES_TEMPLATE = attributes_template("confidence", "digits")


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


def availability(topics: Topics, camera: bool = True) -> dict:
    """Both the daemon (last will) and, for what the camera sees, the camera must be up."""
    return {
        "availability": [{"topic": topics.availability}] + ([{"topic": topics.camera}] if camera else []),
        "availability_mode": "all",
        "payload_available": "online",
        "payload_not_available": "offline",
    }


def raw_topic(topics: Topics, sensor: str) -> str:
    return f"{topics.base}/{sensor}/raw"


def problem_topic(topics: Topics, sensor: str) -> str:
    return f"{topics.base}/{sensor}/problem"


def _entity(topics: Topics, model, object_suffix: str, name: str, **payload) -> dict:
    """The keys every entity of this daemon has: name, unique id, device, availability."""
    return {
        "name": name,
        "unique_id": f"digitcam_{topics.device}_{object_suffix}",
        "device": device_block(topics.device, model),
        **availability(topics),
        **payload,
    }


def sensor_config(topics: Topics, sensor, model: dict | None, discovery_prefix: str = "homeassistant") -> tuple:
    """(topic, payload, retain) of the HA ``sensor`` entity for one configured sensor."""
    payload = _entity(topics, model, sensor.name, sensor.name, state_topic=topics.state(sensor.name),
                      value_template="{{ value_json.value }}", json_attributes_topic=topics.state(sensor.name),
                      json_attributes_template=ATTRIBUTES_TEMPLATE,
                      icon="mdi:counter" if sensor.mode == "meter" else "mdi:numeric", qos=1)
    for key in ("unit", "device_class", "state_class"):
        value = getattr(sensor, key)
        if value:
            payload["unit_of_measurement" if key == "unit" else key] = value
    if sensor.mode == "meter":
        payload["value_template"] = "{{ value_json.reading }}"  # the number; value_json.value is the digit string
        payload.setdefault("state_class", "total_increasing")
        payload["json_attributes_template"] = METER_ATTRIBUTES_TEMPLATE
        if sensor.expire_after_s:
            payload["expire_after"] = int(round(sensor.expire_after_s))
        if sensor.decimals:
            payload["suggested_display_precision"] = sensor.decimals
    topic = f"{discovery_prefix}/sensor/{topics.device}/{sensor.name}/config"
    return topic, json.dumps(payload, sort_keys=True), True


def rate_config(topics: Topics, sensor, model: dict | None, discovery_prefix: str = "homeassistant") -> tuple:
    """(topic, payload, retain) of a meter's rate entity, read from the same state messages."""
    unit, device_class, field = RATE_UNITS.get(sensor.unit, (f"{sensor.unit}/h".lstrip("/"), None, "rate_per_hour"))
    payload = _entity(topics, model, f"{sensor.name}_rate", f"{sensor.name} rate",
                      state_topic=topics.state(sensor.name), value_template=f"{{{{ value_json.{field} }}}}",
                      unit_of_measurement=unit, state_class="measurement", icon="mdi:speedometer", qos=1)
    if device_class:
        payload["device_class"] = device_class
    topic = f"{discovery_prefix}/sensor/{topics.device}/{sensor.name}_rate/config"
    return topic, json.dumps(payload, sort_keys=True), True


def raw_config(topics: Topics, sensor, model: dict | None, discovery_prefix: str = "homeassistant") -> tuple:
    """(topic, payload, retain) of the diagnostic entity showing the latest per-frame reading."""
    payload = _entity(topics, model, f"{sensor.name}_raw", f"{sensor.name} raw", entity_category="diagnostic",
                      state_topic=raw_topic(topics, sensor.name), value_template="{{ value_json.value }}",
                      json_attributes_topic=raw_topic(topics, sensor.name),
                      json_attributes_template=RAW_ATTRIBUTES_TEMPLATE, icon="mdi:eye", qos=0)
    topic = f"{discovery_prefix}/sensor/{topics.device}/{sensor.name}_raw/config"
    return topic, json.dumps(payload, sort_keys=True), True


def problem_config(topics: Topics, sensor, model: dict | None, discovery_prefix: str = "homeassistant") -> tuple:
    """(topic, payload, retain) of the binary sensor that is on while the value cannot be trusted.

    Only the daemon's availability applies: a camera that is offline is a problem to show, not hide.
    """
    payload = _entity(topics, model, f"{sensor.name}_problem", f"{sensor.name} problem", device_class="problem",
                      entity_category="diagnostic", state_topic=problem_topic(topics, sensor.name),
                      value_template="{{ value_json.state }}", payload_on="ON", payload_off="OFF",
                      json_attributes_topic=problem_topic(topics, sensor.name),
                      json_attributes_template=attributes_template("reason"), qos=1)
    payload.update(availability(topics, camera=False))
    topic = f"{discovery_prefix}/binary_sensor/{topics.device}/{sensor.name}_problem/config"
    return topic, json.dumps(payload, sort_keys=True), True


def snapshot_config(topics: Topics, sensor, model: dict | None, discovery_prefix: str = "homeassistant") -> tuple:
    """(topic, payload, retain) of the HA ``camera`` entity showing the sensor's annotated snapshot."""
    payload = _entity(topics, model, f"{sensor.name}_snapshot", f"{sensor.name} snapshot",
                      topic=topics.snapshot(sensor.name))
    topic = f"{discovery_prefix}/camera/{topics.device}/{sensor.name}_snapshot/config"
    return topic, json.dumps(payload, sort_keys=True), True


def discovery_messages(topics: Topics, sensors, model: dict | None = None,
                       discovery_prefix: str = "homeassistant") -> list[tuple]:
    """Every discovery message for this daemon, in a stable order."""
    out = []
    for sensor in sensors:
        out.append(sensor_config(topics, sensor, model, discovery_prefix))
        out.append(snapshot_config(topics, sensor, model, discovery_prefix))
        if sensor.mode == "meter":
            out.append(rate_config(topics, sensor, model, discovery_prefix))
            out.append(problem_config(topics, sensor, model, discovery_prefix))
            if sensor.raw_interval_s:
                out.append(raw_config(topics, sensor, model, discovery_prefix))
    return out


def removals(messages, previous_topics) -> list[tuple]:
    """Empty retained configs for the discovery topics published before but not now: HA deletes those entities."""
    current = {topic for topic, _, _ in messages}
    return [(topic, "", True) for topic in sorted(set(previous_topics) - current)]


def with_removals(messages, ledger: Path) -> list[tuple]:
    """``messages`` plus the removals of entities this daemon announced earlier (kept in ``ledger``, a JSON
    list of topics in the state directory); the ledger then holds the current topics."""
    try:
        previous = json.loads(Path(ledger).read_text(encoding="utf-8"))
        previous = [t for t in previous if isinstance(t, str)] if isinstance(previous, list) else []
    except FileNotFoundError:
        previous = []
    except (OSError, ValueError) as exc:
        log.warning("discovery ledger %s is unreadable (%s); removed sensors may stay in Home Assistant", ledger, exc)
        previous = []
    out = list(messages) + removals(messages, previous)
    try:
        Path(ledger).parent.mkdir(parents=True, exist_ok=True)
        Path(ledger).write_text(json.dumps(sorted({t for t, _, _ in messages})), encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write discovery ledger %s (%s)", ledger, exc)
    return out
