"""The daemon config: typed values, unknown keys named with their line, passwords never in the file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from device.config import load_config, parse_config
from device.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[device]
name = "meter1"
state_dir = "state"

[camera]
source = "frames"
fps = 2

[mqtt]
host = "127.0.0.1"
port = 1884

[[sensor]]
name = "water"
roi = [10, 20, 300, 80]
mode = "meter"
max_rate_per_hour = 50

[[sensor]]
name = "house"
locate = true
"""


def write(tmp_path, text, name="digitcam.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_config_is_typed_and_paths_are_relative_to_the_file(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.device.name == "meter1"
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.camera.source == str(tmp_path / "frames")
    assert cfg.camera.fps == 2.0 and isinstance(cfg.camera.fps, float)
    assert [s.name for s in cfg.sensors] == ["water", "house"]
    assert cfg.sensors[0].roi == (10, 20, 300, 80)
    assert cfg.sensors[0].max_rate_per_hour == 50.0
    assert cfg.sensors[1].locate and cfg.sensors[1].mode == "number" and cfg.sensors[1].roi == ()
    assert cfg.mqtt.port == 1884 and cfg.mqtt.password == ""


def test_camera_index_and_device_paths_are_kept(tmp_path):
    for source, want in (("0", "0"), ("/dev/video0", "/dev/video0"), ("rtsp://cam/stream", "rtsp://cam/stream")):
        cfg = parse_config(GOOD.replace('source = "frames"', f'source = "{source}"'), tmp_path / "x.toml")
        assert cfg.camera.source == want
    cfg = parse_config(GOOD.replace('source = "frames"', "source = 2"), tmp_path / "x.toml")
    assert cfg.camera.source == "2"


@pytest.mark.parametrize("old,new,key,line", [
    ('fps = 2', 'fsp = 2', "camera.fsp", 8),
    ('mode = "meter"', 'mode = "meter"\nconfidence = 0.5', "sensor[0].confidence", 18),
    ('locate = true', 'locate = true\nroi_x = 3', "sensor[1].roi_x", 23),
    ('[mqtt]', '[mqtt]\npassword = "hunter2"', "mqtt.password", 11),
])
def test_unknown_key_is_named_with_its_line(tmp_path, old, new, key, line):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:{line}: {key}: unknown key" in str(err.value)


def test_unknown_key_suggests_the_close_one(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean 'fps'"):
        parse_config(GOOD.replace("fps = 2", "fsp = 2"), tmp_path / "x.toml")


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"x.toml:\d+: sensors: unknown section \(did you mean 'sensor'\?\)"):
        parse_config(GOOD + "\n[sensors]\n", tmp_path / "x.toml")


@pytest.mark.parametrize("old,new,message", [
    ("port = 1884", 'port = "1884"', r"mqtt.port: must be an integer"),
    ("port = 1884", "port = 70000", r"mqtt.port: must be 1..65535"),
    ("fps = 2", "fps = true", r"camera.fps: must be a number"),
    ('roi = [10, 20, 300, 80]', 'roi = [10, 20, 300]', r"sensor\[0\].roi: must be \[x, y, width, height\]"),
    ('roi = [10, 20, 300, 80]', 'roi = [10, 20, 0, 80]', r"sensor\[0\].roi: needs x, y >= 0"),
    ('mode = "meter"', 'mode = "odometer"', r"sensor\[0\].mode: 'odometer' is not one of number, meter"),
    ('name = "meter1"', 'name = "my meter"', r"device.name: 'my meter' must be"),
    ('name = "house"', 'name = "water"', r"sensor\[1\].name: 'water' is used twice"),
    ('mode = "meter"', 'stable_reads = 6\nwindow = 5', r"sensor\[0\].stable_reads: want 1 <= stable_reads <= window"),
    ('locate = true', 'locate = true\nlocate_every = 0', r"sensor\[1\].locate_every: must be >= 1, not 0"),
])
def test_bad_values_name_the_key(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(GOOD.replace(old, new), tmp_path / "x.toml")


def test_no_sensor_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"sensor: at least one \[\[sensor\]\]"):
        parse_config(GOOD.split("[[sensor]]")[0], tmp_path / "x.toml")
    with pytest.raises(ConfigError, match=r"not valid TOML"):
        parse_config("[device\nname=", tmp_path / "x.toml")
    with pytest.raises(ConfigError, match=r"cannot read config .*missing.toml"):
        load_config(tmp_path / "missing.toml")


def test_password_from_file_must_be_private(tmp_path):
    secret = tmp_path / "mqtt.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    text = GOOD.replace('port = 1884', 'port = 1884\nusername = "cam"\npassword_file = "mqtt.pass"')
    with pytest.raises(ConfigError, match=r"mqtt.password_file: .*mqtt.pass is accessible to all users"):
        parse_config(text, tmp_path / "x.toml")
    secret.chmod(0o640)
    cfg = parse_config(text, tmp_path / "x.toml")
    assert cfg.mqtt.password == "s3cret"
    assert "s3cret" not in repr(cfg)


def test_password_from_environment(tmp_path, monkeypatch):
    text = GOOD.replace('port = 1884', 'port = 1884\nusername = "cam"\npassword_env = "DIGITCAM_TEST_PW"')
    monkeypatch.delenv("DIGITCAM_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match=r"mqtt.password_env: environment variable DIGITCAM_TEST_PW is not set"):
        parse_config(text, tmp_path / "x.toml")
    monkeypatch.setenv("DIGITCAM_TEST_PW", "pw")
    assert parse_config(text, tmp_path / "x.toml").mqtt.password == "pw"
    with pytest.raises(ConfigError, match=r"mqtt.username: a username needs password_file or password_env"):
        parse_config(GOOD.replace('port = 1884', 'port = 1884\nusername = "cam"'), tmp_path / "x.toml")


def test_tls_files_must_exist(tmp_path):
    text = GOOD.replace('port = 1884', 'port = 1884\ntls = true\nca_file = "ca.pem"')
    with pytest.raises(ConfigError, match=r"mqtt.ca_file: .*ca.pem does not exist"):
        parse_config(text, tmp_path / "x.toml")
    (tmp_path / "ca.pem").write_text("x")
    assert parse_config(text, tmp_path / "x.toml").mqtt.tls


def run_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_check_config_cli_exit_codes(tmp_path):
    good = write(tmp_path, GOOD)
    done = run_cli("check-config", str(good))
    assert done.returncode == 0, done.stderr
    assert "ok: device meter1" in done.stdout
    bad = write(tmp_path, GOOD.replace("fps = 2", "fsp = 2"), "bad.toml")
    done = run_cli("check-config", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == \
        f"digitcam: error: {bad}:8: camera.fsp: unknown key (did you mean 'fps'?)"


def test_bundled_configs_are_valid():
    example = load_config(REPO / "digitcam.example.toml")
    assert [s.name for s in example.sensors] == ["water", "house_number"]
    sample = load_config(REPO / "samples" / "digitcam.toml")
    assert Path(sample.camera.source).is_dir()
