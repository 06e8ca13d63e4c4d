"""What a config may say: names, ranges, the Home Assistant combinations, and a token for a page others reach.

Each check raises the ``ConfigError`` of ``Checker.fail`` (``device/config_check.py``) for the first value
out of range, so ``digitcam check-config`` names the file, line and key; ``device/config.py`` runs them
after the tables are read.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from device.config_check import Checker, read_secret

if TYPE_CHECKING:
    from device.config import Config, SensorConfig, WebConfig

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # device and sensor names end up in MQTT topics
MODES = ("number", "meter")
RUNTIMES = ("auto", "litert", "tflite-runtime")


# Home Assistant's sensor device classes, and the units it accepts for those a meter can be
# (homeassistant/components/sensor/const.py DEVICE_CLASS_UNITS); HA rejects other units for them.
HA_DEVICE_CLASSES = (
    "apparent_power", "aqi", "area", "atmospheric_pressure", "battery", "blood_glucose_concentration",
    "carbon_dioxide", "carbon_monoxide", "conductivity", "current", "data_rate", "data_size", "date", "distance",
    "duration", "energy", "energy_distance", "energy_storage", "enum", "frequency", "gas", "humidity",
    "illuminance", "irradiance", "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide",
    "ozone", "ph", "pm1", "pm10", "pm25", "power", "power_factor", "precipitation", "precipitation_intensity",
    "pressure", "reactive_energy", "reactive_power", "signal_strength", "sound_pressure", "speed",
    "sulphur_dioxide", "temperature", "timestamp", "volatile_organic_compounds",
    "volatile_organic_compounds_parts", "voltage", "volume", "volume_flow_rate", "volume_storage", "water",
    "weight", "wind_direction", "wind_speed",
)
METER_UNITS = {
    "water": ("L", "gal", "m³", "ft³", "CCF"),
    "gas": ("m³", "ft³", "CCF"),
    "energy": ("Wh", "kWh", "MWh", "GWh", "TWh", "J", "kJ", "MJ", "GJ"),
    "volume": ("L", "mL", "gal", "fl. oz.", "m³", "ft³", "CCF"),
}
STATE_CLASSES = ("measurement", "total", "total_increasing")
METER_STATE_CLASSES = ("total", "total_increasing")


def _check_home_assistant(check: Checker, s: SensorConfig, i: int) -> None:
    """Refuse a unit / device_class / state_class combination Home Assistant would reject or misuse."""
    if s.device_class and s.device_class not in HA_DEVICE_CLASSES:
        close = difflib.get_close_matches(s.device_class, HA_DEVICE_CLASSES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        check.fail(f"{s.device_class!r} is not a Home Assistant sensor device class{hint}", "sensor", "device_class", i)
    if s.state_class and s.state_class not in STATE_CLASSES:
        check.fail(f"{s.state_class!r} is not one of {', '.join(STATE_CLASSES)}", "sensor", "state_class", i)
    if s.mode == "meter" and s.state_class and s.state_class not in METER_STATE_CLASSES:
        check.fail(f"a meter is {' or '.join(METER_STATE_CLASSES)}, not {s.state_class!r}", "sensor", "state_class", i)
    units = METER_UNITS.get(s.device_class)
    if units is not None:
        if s.mode != "meter" and s.state_class == "measurement":
            check.fail(f"device_class {s.device_class} is total or total_increasing, not measurement", "sensor",
                       "state_class", i)
        if s.unit not in units:
            check.fail(f"{s.unit!r} is not a unit of device_class {s.device_class}: use one of {', '.join(units)}",
                       "sensor", "unit", i)


def _check_meter(check: Checker, s: SensorConfig, i: int) -> None:
    """The meter keys: wheel count, decimals, steps and times."""
    if not 0 <= s.digits <= 8:
        check.fail(f"must be 0 (the length the meter shows) to 8, not {s.digits}", "sensor", "digits", i)
    if not 0 <= s.decimals <= 7 or (s.digits and s.decimals >= s.digits):
        check.fail(f"must be 0..{(s.digits or 8) - 1} (fewer than digits), not {s.decimals}", "sensor", "decimals", i)
    if not 0.0 <= s.step_confidence <= 1.0:
        check.fail(f"must be between 0 and 1, not {s.step_confidence}", "sensor", "step_confidence", i)
    if s.max_step < 1:
        check.fail(f"must be >= 1, not {s.max_step}", "sensor", "max_step", i)
    for key in ("confirm_s", "raw_interval_s", "expire_after_s"):
        if getattr(s, key) < 0:
            check.fail(f"must be >= 0, not {getattr(s, key)}", "sensor", key, i)
    for key in ("rate_window_s", "stale_after_s"):
        if getattr(s, key) <= 0:
            check.fail(f"must be > 0, not {getattr(s, key)}", "sensor", key, i)


def check_ranges(check: Checker, cfg: Config) -> None:
    d, c, m = cfg.device, cfg.camera, cfg.mqtt
    if not NAME_PATTERN.match(d.name):
        check.fail(f"{d.name!r} must be 1-64 letters, digits, '_' or '-' (it is part of MQTT topics)", "device", "name")
    if d.runtime not in RUNTIMES:
        check.fail(f"{d.runtime!r} is not one of {', '.join(RUNTIMES)}", "device", "runtime")
    for key, value, low in (("threads", d.threads, 1), ("spool_max", d.spool_max, 1)):
        if value < low:
            check.fail(f"must be >= {low}, not {value}", "device", key)
    if d.flush_timeout_s < 0:
        check.fail("must be >= 0", "device", "flush_timeout_s")
    if not c.source:
        check.fail("must name a camera, file, URL or folder", "camera", "source")
    for key in ("width", "height", "fps"):
        if getattr(c, key) < 0:
            check.fail(f"must be >= 0, not {getattr(c, key)}", "camera", key)
    if c.retry_min_s <= 0 or c.retry_max_s < c.retry_min_s:
        check.fail("want 0 < retry_min_s <= retry_max_s", "camera", "retry_max_s")
    if c.read_timeout_s <= 0:
        check.fail("must be > 0", "camera", "read_timeout_s")
    if not 0 < m.port < 65536:
        check.fail(f"must be 1..65535, not {m.port}", "mqtt", "port")
    if m.keepalive < 5:
        check.fail(f"must be >= 5 seconds, not {m.keepalive}", "mqtt", "keepalive")
    if m.stats_interval_s <= 0:
        check.fail("must be > 0", "mqtt", "stats_interval_s")
    if m.reconnect_min_s < 1 or m.reconnect_max_s < m.reconnect_min_s:
        check.fail("want 1 <= reconnect_min_s <= reconnect_max_s", "mqtt", "reconnect_max_s")
    for key in ("topic_prefix", "discovery_prefix"):
        value = getattr(m, key)
        if not value or any(ch in value for ch in "#+") or value.startswith("/") or value.endswith("/"):
            check.fail(f"{value!r} is not a usable topic prefix", "mqtt", key)
    if m.password_file and m.password_env:
        check.fail("set password_file or password_env, not both", "mqtt", "password_env")
    if not cfg.sensors:
        check.fail("at least one [[sensor]] table is needed", "sensor")
    names = set()
    for i, s in enumerate(cfg.sensors):
        if not NAME_PATTERN.match(s.name):
            check.fail(f"{s.name!r} must be 1-64 letters, digits, '_' or '-'", "sensor", "name", i)
        if s.name in names:
            check.fail(f"{s.name!r} is used twice", "sensor", "name", i)
        names.add(s.name)
        if s.mode not in MODES:
            check.fail(f"{s.mode!r} is not one of {', '.join(MODES)}", "sensor", "mode", i)
        if not 0.0 <= s.min_confidence <= 1.0:
            check.fail(f"must be between 0 and 1, not {s.min_confidence}", "sensor", "min_confidence", i)
        if s.locate_every < 1:
            check.fail(f"must be >= 1, not {s.locate_every}", "sensor", "locate_every", i)
        if s.window < 1 or not 1 <= s.stable_reads <= s.window:
            check.fail(f"want 1 <= stable_reads <= window, not {s.stable_reads} of {s.window}", "sensor",
                       "stable_reads", i)
        if s.max_rate_per_hour < 0 or s.accept_after_s < 0:
            check.fail("must be >= 0", "sensor", "max_rate_per_hour" if s.max_rate_per_hour < 0 else "accept_after_s", i)
        _check_meter(check, s, i)
        _check_home_assistant(check, s, i)
        if not 0.1 <= s.collect_max_mb <= 100_000:
            check.fail(f"must be 0.1 to 100000 (MB), not {s.collect_max_mb}", "sensor", "collect_max_mb", i)


def is_local_bind(bind: str) -> bool:
    """Whether only this machine can reach an address: a loopback IP or ``localhost``."""
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def check_web(check: Checker, w: WebConfig) -> WebConfig:
    """The [web] keys; a page reachable from other machines must have a token (it can change the config)."""
    if not 0 < w.port < 65536:
        check.fail(f"must be 1..65535, not {w.port}", "web", "port")
    if not 0 < w.fps <= 30:
        check.fail(f"must be > 0 and <= 30, not {w.fps}", "web", "fps")
    if not w.bind:
        check.fail("must be an address like 127.0.0.1 (this machine only) or 0.0.0.0", "web", "bind")
    if w.enabled and not w.token_file and not is_local_bind(w.bind):
        check.fail(f"{w.bind!r} is reachable from other machines: set web.token_file to a file only root and "
                   "digitcam can read", "web", "bind")
    token = read_secret(Path(w.token_file), check, "web", "token_file") if w.enabled and w.token_file else ""
    if w.token_file and w.enabled and len(token) < 16:
        check.fail(f"{w.token_file} holds a token of {len(token)} characters; use at least 16", "web", "token_file")
    return replace(w, token=token)
