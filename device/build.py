"""The composition root: the daemon's parts built from a config, once at start and again on reload.

``build_parts`` gives a ``Parts`` record (recognizer, locator, sensors, discovery messages, source);
``Reloader`` re-reads the config file and builds the parts that a reload may change. ``device/daemon.py``
wires them into the loop; nothing else constructs models, sources or the publisher from a config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from device.bundled import default_model
from device.config import Config, describe, load_config
from device.meter import attach_store
from device.reader import build_sensors
from device.sources import build_source

log = logging.getLogger("device.service")

METER_STATE = "meters.json"  # in the state directory: each meter sensor's last accepted value
DISCOVERY_LEDGER = "discovery.json"  # the discovery topics announced last, to remove those of dropped sensors


@dataclass(frozen=True)
class Parts:
    """What a config makes. ``discovery`` None: leave the publisher's as it is; ``source`` None: keep the
    running source (a reload that did not change ``[camera]``)."""

    recognizer: object
    sensors: list
    locator: object | None = None
    discovery: list | None = None
    source: object | None = None
    sensor_recognizers: dict = field(default_factory=dict)  # per-sensor model path -> Recognizer


def build_recognizer(cfg: Config):
    from device.recognize import Recognizer

    return Recognizer(cfg.device.model or default_model(), threads=cfg.device.threads, runtime=cfg.device.runtime)


def build_locator(cfg: Config):
    """The locator model when a sensor asks for ``locate = true`` (whole frame, with a warning, if none
    exists) or the web page is on (it fits a loosely drawn ROI to the number, ``device/roi_fit.py``)."""
    if not any(s.locate for s in cfg.sensors) and not cfg.web.enabled:
        return None
    from device.locate import default_locator

    locator = default_locator(Path(cfg.device.locator) if cfg.device.locator else None,
                              threads=cfg.device.threads, runtime=cfg.device.runtime)
    if locator is None and any(s.locate for s in cfg.sensors):
        log.warning("no locator model installed: sensors with locate = true read the whole frame")
    return locator


def topics_for(cfg: Config):
    from device.mqtt import Topics

    return Topics(cfg.mqtt.topic_prefix, cfg.device.name)


def discovery_for(cfg: Config, recognizer) -> list:
    from device.discovery import discovery_messages, with_removals

    if not (cfg.mqtt.discovery and cfg.mqtt.host):
        return []
    messages = discovery_messages(topics_for(cfg), cfg.sensors, recognizer.describe(), cfg.mqtt.discovery_prefix)
    return with_removals(messages, cfg.state_dir / DISCOVERY_LEDGER)  # removed sensors leave HA too


def build_parts(cfg: Config, previous_sensors=(), source=None, new_source: bool = True) -> Parts:
    """The parts for ``cfg``: ``source`` if given, else one built from ``[camera]`` unless ``new_source`` is
    false. The model is loaded before the source is built, so a bad model fails before any device."""
    recognizer = build_recognizer(cfg)
    from device.sensormodels import build_recognizers

    own = build_recognizers(cfg)  # per-sensor models, also before the source
    if source is None and new_source:
        source = build_source(cfg.camera)
    sensors = build_sensors(cfg.sensors, previous_sensors)
    attach_store(sensors, cfg.state_dir / METER_STATE)  # a meter's first reading is checked against its last value
    return Parts(recognizer=recognizer, sensors=sensors,
                 locator=build_locator(cfg), discovery=discovery_for(cfg, recognizer), source=source,
                 sensor_recognizers=own)


def build_publisher(cfg: Config, discovery):
    """The MQTT publisher (not started), or None without an ``[mqtt] host``."""
    if not cfg.mqtt.host:
        return None
    from device.mqtt import Publisher
    from device.spool import Spool

    return Publisher(cfg.mqtt, topics_for(cfg), Spool(cfg.state_dir / "spool", cfg.device.spool_max),
                     discovery=discovery)


class Reloader:
    """The service's reload: the config file again -> new parts; [mqtt], device name and state_dir need a restart."""

    def __init__(self, config_path: Path, running: Config):
        self.config_path = config_path
        self.config = running

    def __call__(self, previous_sensors) -> Parts:
        cfg = load_config(self.config_path)
        old = self.config
        if cfg.device.name != old.device.name or cfg.mqtt != old.mqtt or cfg.state_dir != old.state_dir:
            log.warning("changes to [mqtt], device name or state_dir take effect after a restart")
        parts = build_parts(cfg, previous_sensors, new_source=cfg.camera != old.camera)
        self.config = cfg
        log.info("config %s: %s", self.config_path, describe(cfg))
        return parts
