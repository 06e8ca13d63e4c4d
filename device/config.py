"""The daemon's configuration: one TOML file read into typed, frozen dataclasses.

Every key is checked here, at start-up, so a typo fails loudly with the file, line and key instead of
being ignored for months (``digitcam check-config``). The broker password is read from a file or an
environment variable named in the config, never from the command line.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from device.errors import ConfigError
from device.source_spec import is_path as is_path_source

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # device and sensor names end up in MQTT topics
MODES = ("number", "meter")
RUNTIMES = ("auto", "litert", "tflite-runtime")


@dataclass(frozen=True)
class DeviceConfig:
    """Who this daemon is and where it keeps its state."""

    name: str = "digitcam"
    state_dir: str = ""  # default: $STATE_DIRECTORY (systemd) or ~/.local/state/digitcam/<name>
    model: str = ""  # default: the bundled model
    locator: str = ""  # default: the bundled locator, if any
    threads: int = 1
    runtime: str = "auto"
    spool_max: int = 10000
    flush_timeout_s: float = 5.0


@dataclass(frozen=True)
class CameraConfig:
    """Where frames come from: picamera2, a /dev/videoN index, a video file, an RTSP/HTTP URL or a folder."""

    source: str = "picamera2"
    width: int = 0  # 0: the source's own size
    height: int = 0
    fps: float = 0.0  # 0: as fast as frames come
    loop: bool = False  # files and folders: start again at the end
    retry_min_s: float = 0.5
    retry_max_s: float = 5.0
    read_timeout_s: float = 5.0  # live sources: no frame for this long is a fault


@dataclass(frozen=True)
class MqttConfig:
    host: str = ""  # empty: no broker (readings only printed / spooled)
    port: int = 1883
    username: str = ""
    password_file: str = ""
    password_env: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    tls_insecure: bool = False
    keepalive: int = 30
    topic_prefix: str = "digitcam"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    stats_interval_s: float = 60.0
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    password: str = field(default="", repr=False)  # filled from password_file / password_env, not a key


@dataclass(frozen=True)
class WebConfig:
    """The setup-and-watch page (device/web.py, docs/WEB.md): off unless enabled, local unless a token guards it."""

    enabled: bool = False
    bind: str = "127.0.0.1"  # any other address needs token_file
    port: int = 8090
    token_file: str = ""  # a file holding the page's token; refused if any user may read it
    fps: float = 4.0  # the live view's frames per second at most (encoded only while someone watches)
    token: str = field(default="", repr=False)  # read from token_file, not a key


@dataclass(frozen=True)
class SensorConfig:
    """One number in the frame: where it is, and how readings become a published value."""

    name: str = ""
    roi: tuple = ()  # (x, y, w, h) in the frame; empty: the whole frame
    locate: bool = False  # find the number with the locator model (inside roi, if one is set)
    locate_every: int = 5  # search every Nth frame; the tracked box serves the frames in between
    mode: str = "number"  # number | meter
    min_confidence: float = 0.5
    stable_reads: int = 3  # k of the last `window` reads must agree
    window: int = 5
    max_rate_per_hour: float = 0.0  # meter: 0 = no limit
    accept_after_s: float = 600.0  # meter: an implausible value stable this long is accepted, flagged
    unit: str = ""
    device_class: str = ""
    state_class: str = ""
    # meter: see device/meter.py and docs/CONFIG.md
    digits: int = 0  # wheels on the meter; 0: the length of the first accepted value
    decimals: int = 0  # 004711 with 3 decimals is 4.711
    step_confidence: float = 0.8  # meter: a wheel's new digit needs this mean confidence to be published
    max_step: int = 1  # counts of the lowest wheel accepted at once; larger rises wait confirm_s
    confirm_s: float = 7.0  # a carry-violating rise, a jump or a first value stable this long is accepted
    rate_window_s: float = 600.0
    raw_interval_s: float = 60.0  # the diagnostic raw entity; 0: none
    stale_after_s: float = 300.0  # no confident read this long: the problem sensor turns on
    expire_after_s: float = 3600.0  # Home Assistant's expire_after on the value; 0: never expires
    # learning the meter: see device/cropstore.py and docs/ADAPT.md
    collect: bool = False  # keep this sensor's crops, labelled by its accepted values, in <state_dir>/crops
    collect_max_mb: float = 20.0  # the crop store's bound
    model: str = ""  # a recognizer for this sensor only (an adapted model); "": [device] model


@dataclass(frozen=True)
class Config:
    device: DeviceConfig
    camera: CameraConfig
    mqtt: MqttConfig
    sensors: tuple
    path: Path
    web: WebConfig = WebConfig()

    @property
    def state_dir(self) -> Path:
        if self.device.state_dir:
            return Path(self.device.state_dir)
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path.home() / ".local" / "state" / "digitcam" / self.device.name


# Keys of the password pair and derived values are not settable in the file.
_NOT_KEYS = {"password", "token"}
_SECTIONS = {"device": DeviceConfig, "camera": CameraConfig, "mqtt": MqttConfig, "web": WebConfig}


def _line_of(text: str, table: str, key: str, index: int | None = None) -> int | None:
    """The line number of ``key`` inside ``[table]`` (or the index-th ``[[table]]``); None if not found."""
    current, seen = None, -1
    header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"']+)\s*\]\]?")
    for number, line in enumerate(text.splitlines(), start=1):
        match = header.match(line)
        if match:
            current = match.group(2)
            if match.group(1) == "[[" and current == table:
                seen += 1
            continue
        in_table = current == table and (index is None or seen == index)
        if in_table and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    if not key:
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*\[*\s*{re.escape(key)}\b", line):
            return number
    return None


class _Checker:
    """Turns TOML tables into dataclasses, naming the file, line and key of the first problem."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text

    def fail(self, message: str, table: str, key: str = "", index: int | None = None):
        line = _line_of(self.text, table, key, index)
        where = f"{self.path}:{line}" if line else str(self.path)
        dotted = ".".join(p for p in (table if index is None else f"{table}[{index}]", key) if p)
        raise ConfigError(f"{where}: {dotted}: {message}")

    def build(self, cls, values, table: str, index: int | None = None):
        if not isinstance(values, dict):
            self.fail(f"must be a table, not {type(values).__name__}", table, index=index)
        allowed = {f.name: f for f in fields(cls) if f.name not in _NOT_KEYS}
        kwargs = {}
        for key, value in values.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(allowed))})"
                self.fail(f"unknown key{hint}", table, key, index)
            kwargs[key] = self.convert(value, allowed[key], table, key, index)
        return cls(**kwargs)

    def convert(self, value, f, table, key, index):
        kind = type(f.default)
        if kind is bool:
            if not isinstance(value, bool):
                self.fail(f"must be true or false, not {value!r}", table, key, index)
            return value
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(f"must be an integer, not {value!r}", table, key, index)
            return value
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(f"must be a number, not {value!r}", table, key, index)
            return float(value)
        if kind is tuple:  # the roi
            if (not isinstance(value, list) or len(value) != 4
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
                self.fail(f"must be [x, y, width, height] in pixels, not {value!r}", table, key, index)
            if min(value[:2]) < 0 or min(value[2:]) < 1:
                self.fail(f"needs x, y >= 0 and width, height >= 1, not {value!r}", table, key, index)
            return tuple(value)
        if isinstance(value, int) and not isinstance(value, bool) and key == "source":
            return str(value)  # camera index 0 -> "0"
        if not isinstance(value, str):
            self.fail(f"must be a string, not {value!r}", table, key, index)
        return value


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


def _check_home_assistant(check: _Checker, s: SensorConfig, i: int) -> None:
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


def _check_meter(check: _Checker, s: SensorConfig, i: int) -> None:
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


def _check_ranges(check: _Checker, cfg: Config) -> None:
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


def _check_web(check: _Checker, w: WebConfig) -> WebConfig:
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


def _resolve(base: Path, value: str) -> str:
    """A relative path in the config is relative to the config file, not to the working directory."""
    if not value:
        return value
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else base / path)




def read_secret(path: Path, check: _Checker, table: str, key: str) -> str:
    """A secret from a file that no other user may read (group access is fine: root:digitcam 0640)."""
    try:
        mode = path.stat().st_mode
        if mode & stat.S_IRWXO:
            check.fail(f"{path} is accessible to all users (mode {stat.filemode(mode)}); chmod o-rwx it", table, key)
        return path.read_text().strip()
    except OSError as exc:
        check.fail(f"cannot read {path}: {exc.strerror or exc}", table, key)


def read_password(m: MqttConfig, check: _Checker) -> str:
    """The broker password from its file (not readable by others) or environment variable."""
    if m.password_file:
        return read_secret(Path(m.password_file), check, "mqtt", "password_file")
    if m.password_env:
        value = os.environ.get(m.password_env)
        if value is None:
            check.fail(f"environment variable {m.password_env} is not set", "mqtt", "password_env")
        return value
    return ""


def parse_config(text: str, path: Path) -> Config:
    """TOML text -> Config; any problem is a ConfigError naming file, line and key."""
    path = Path(path)
    check = _Checker(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for key in data:
        if key not in _SECTIONS and key != "sensor":
            close = difflib.get_close_matches(key, [*_SECTIONS, "sensor"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (known: camera, device, mqtt, sensor, web)"
            check.fail(f"unknown section{hint}", "", key)
    parts = {name: check.build(cls, data.get(name, {}), name) for name, cls in _SECTIONS.items()}
    sensor_tables = data.get("sensor", [])
    if not isinstance(sensor_tables, list):
        check.fail("write sensors as [[sensor]] tables", "sensor")
    sensors = tuple(check.build(SensorConfig, t, "sensor", i) for i, t in enumerate(sensor_tables))
    base = path.parent
    sensors = tuple(replace(s, model=_resolve(base, s.model)) for s in sensors)
    d, c, m = parts["device"], parts["camera"], parts["mqtt"]
    d = replace(d, **{k: _resolve(base, getattr(d, k)) for k in ("state_dir", "model", "locator")})
    if is_path_source(c.source):
        c = replace(c, source=_resolve(base, c.source))
    m = replace(m, **{k: _resolve(base, getattr(m, k)) for k in ("password_file", "ca_file", "cert_file", "key_file")})
    w = _check_web(check, replace(parts["web"], token_file=_resolve(base, parts["web"].token_file)))
    cfg = Config(device=d, camera=c, mqtt=m, sensors=sensors, path=path, web=w)
    _check_ranges(check, cfg)
    for key in ("ca_file", "cert_file", "key_file"):
        if getattr(m, key) and not Path(getattr(m, key)).is_file():
            check.fail(f"{getattr(m, key)} does not exist", "mqtt", key)
    if m.username and not (m.password_file or m.password_env):
        check.fail("a username needs password_file or password_env (never a password in the config)", "mqtt",
                   "username")
    password = read_password(m, check)
    return replace(cfg, mqtt=replace(m, password=password))


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_config(text, path)


def describe(cfg: Config) -> str:
    """One line saying what this config will do, for logs and check-config."""
    broker = (f"{'mqtts' if cfg.mqtt.tls else 'mqtt'}://{cfg.mqtt.host}:{cfg.mqtt.port}" if cfg.mqtt.host
              else "no broker")
    sensors = ", ".join(f"{s.name} ({'roi' if s.roi else 'locate' if s.locate else 'whole frame'}, {s.mode})"
                        for s in cfg.sensors)
    return f"device {cfg.device.name}: camera {cfg.camera.source}, {broker}, sensors {sensors}"


def check_main(args) -> int:
    """``digitcam check-config FILE``: exit 0 and one line if the config is valid, else ConfigError (exit 2)."""
    cfg = load_config(args.config)
    print(f"{cfg.path}: ok: {describe(cfg)}")
    return 0
