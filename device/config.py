"""The daemon's configuration: one TOML file read into typed, frozen dataclasses.

Every key is checked at start-up (types and unknown keys: ``device/config_check.py``; ranges and
combinations: ``device/config_rules.py``), so a typo fails loudly with the file, line and key instead of
being ignored for months (``digitcam check-config``). The broker password is read from a file or an
environment variable named in the config, never from the command line.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from device.config_check import Checker, read_password
from device.config_rules import check_ranges, check_web
from device.errors import ConfigError
from device.source_spec import is_path as is_path_source


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


_SECTIONS = {"device": DeviceConfig, "camera": CameraConfig, "mqtt": MqttConfig, "web": WebConfig}


def _resolve(base: Path, value: str) -> str:
    """A relative path in the config is relative to the config file, not to the working directory."""
    if not value:
        return value
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else base / path)


def parse_config(text: str, path: Path) -> Config:
    """TOML text -> Config; any problem is a ConfigError naming file, line and key."""
    path = Path(path)
    check = Checker(path, text)
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
    w = check_web(check, replace(parts["web"], token_file=_resolve(base, parts["web"].token_file)))
    cfg = Config(device=d, camera=c, mqtt=m, sensors=sensors, path=path, web=w)
    check_ranges(check, cfg)
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
