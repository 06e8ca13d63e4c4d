"""Per-sensor models (an adapted model, docs/ADAPT.md) rolled out by the real ansible-playbook into a
temporary root prefix: versioned and checksummed beside the default model, named in the sensor's table,
and rolled back when digitcam does not stay healthy on one.

The roll-back tests turn service management on with a stand-in ``systemctl`` first on the PATH
(tests/deploy/fake_systemctl.py): the role's real restart, health check and roll-back tasks run, and the
stand-in "starts the daemon" by opening the models the deployed config names. ``--tags config,model`` keeps
the play away from the system user (tag install), as everywhere in these tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.conftest import Deployment, write_model

REPO = Path(__file__).resolve().parents[2]
FAKE_SYSTEMCTL = Path(__file__).with_name("fake_systemctl.py")
SENSORS = [{"name": "water", "roi": [100, 200, 300, 80], "mode": "meter"}]


def adapted(directory: Path, version: str) -> Path:
    """The committed recognizer as an adapted model of another name and version (what ``digitcam adapt`` writes)."""
    directory.mkdir(parents=True)
    model = directory / "water-adapted.tflite"
    model.write_bytes((REPO / "models" / "digitcam.tflite").read_bytes())
    manifest = json.loads((REPO / "models" / "digitcam.json").read_text())
    manifest.update(name="water-adapted", version=version, file=model.name)
    model.with_suffix(".json").write_text(json.dumps(manifest))
    return model


@pytest.fixture(scope="module")
def device(tmp_path_factory, wheel):
    """A device deployed once with default model 1.0.0 and water's own model adapted-1."""
    tmp = tmp_path_factory.mktemp("sensor-models")
    dev = Deployment(tmp, wheel, write_model(tmp / "default", "1.0.0", b"fake default model 1.0.0"))
    dev.vars.update(digitcam_sensors=SENSORS, digitcam_sensor_models={"water": str(adapted(tmp / "a1", "adapted-1"))})
    dev.first_run = dev.run()
    assert dev.first_run.returncode == 0, dev.first_run.output[-4000:]
    return dev


@pytest.fixture(scope="module")
def systemd(device):
    """Service management on, through the stand-in systemctl; returns (env, state dir)."""
    state = device.tmp / "systemd"
    bin_dir = state / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_SYSTEMCTL} "$@"\n')
    (bin_dir / "systemctl").chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SYSTEMD_DIR": str(state),
           "DIGITCAM_CONFIG": str(device.path("/etc/digitcam/digitcam.toml"))}
    return env, state


def run_managed(device, systemd, *args, **overrides):
    env, state = systemd
    for log in ("calls.log", "loads.log"):
        (state / log).unlink(missing_ok=True)
    return device.run("--tags", "config,model", *args, env=env, digitcam_manage_service=True,
                      digitcam_health_wait_sec=1, **overrides)


def loads(systemd) -> list[list[str]]:
    """The model contents each fake daemon start opened, in order."""
    path = systemd[1] / "loads.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sensor_tables(device) -> dict:
    config = tomllib.loads(device.path("/etc/digitcam/digitcam.toml").read_text())
    return {s["name"]: s for s in config["sensor"]}


def test_the_sensor_model_lands_versioned_beside_the_default_and_its_sensor_reads_it(device):
    from device.recognize import Recognizer

    models = device.path("/var/lib/digitcam/models")
    own = models / "sensors" / "water"
    assert os.readlink(models / "current") == "1.0.0"
    assert os.readlink(own / "current") == "adapted-1"
    assert (own / "adapted-1" / "digitcam.tflite").read_bytes() == (REPO / "models" / "digitcam.tflite").read_bytes()
    assert json.loads((own / "adapted-1" / "digitcam.json").read_text())["version"] == "adapted-1"
    assert sensor_tables(device)["water"]["model"] == str(own / "current" / "digitcam.tflite")
    # the daemon's own loader accepts what the role laid out: manifest beside it, checksum, through the link
    assert Recognizer(own / "current" / "digitcam.tflite").describe()["version"] == "adapted-1"
    check = subprocess.run([str(device.path("/opt/digitcam/venv/bin/digitcam")), "check-config",
                            str(device.path("/etc/digitcam/digitcam.toml"))], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_a_second_run_changes_nothing(device):
    device.assert_rerun_changes_nothing()


def test_a_sensor_model_whose_checksum_does_not_match_is_refused_and_the_previous_stays(device, tmp_path):
    own = device.path("/var/lib/digitcam/models/sensors/water")
    bad = write_model(tmp_path, "adapted-bad", b"an adapted model damaged on its way", manifest_sha256="cd" * 32)
    run = device.run("--tags", "model", digitcam_sensor_models={"water": str(bad)})
    assert run.returncode != 0
    assert "model checksum mismatch on localhost (sensor water)" in run.output
    assert "the previous model stays in use" in run.output
    assert os.readlink(own / "current") == "adapted-1"
    assert not (own / "adapted-bad").exists()
    assert os.readlink(device.path("/var/lib/digitcam/models/current")) == "1.0.0"


def test_a_model_for_a_sensor_that_does_not_exist_is_refused(device, tmp_path):
    stray = write_model(tmp_path, "x-1", b"a model for nobody")
    run = device.run("--tags", "model", digitcam_sensor_models={"water": device.vars["digitcam_sensor_models"]["water"],
                                                                 "gas": str(stray)})
    assert run.returncode != 0
    assert "not a sensor: gas" in run.output
    assert not device.path("/var/lib/digitcam/models/sensors/gas").exists()


def test_a_dry_run_shows_a_new_sensor_and_version_without_making_them(device, tmp_path):
    models = device.path("/var/lib/digitcam/models")
    config_before = device.path("/etc/digitcam/digitcam.toml").read_text()
    sensors = [*SENSORS, {"name": "gas", "roi": [10, 20, 200, 60], "mode": "meter"}]
    own = {"water": str(write_model(tmp_path / "w", "adapted-dry", b"looked at only")),
           "gas": str(write_model(tmp_path / "g", "gas-dry", b"looked at only, gas"))}
    dry = device.run("--tags", "config,model", "--check", "--diff", digitcam_sensors=sensors, digitcam_sensor_models=own)
    assert dry.returncode == 0, dry.output[-4000:]
    assert f'+model = "{models}/sensors/gas/current/digitcam.tflite"' in dry.output
    assert device.path("/etc/digitcam/digitcam.toml").read_text() == config_before
    assert os.readlink(models / "sensors" / "water" / "current") == "adapted-1"
    assert not (models / "sensors" / "gas").exists() and not (models / "sensors" / "water" / "adapted-dry").exists()


def test_a_new_sensor_model_becomes_current_with_one_restart_and_the_old_one_stays(device, systemd, tmp_path):
    own = device.path("/var/lib/digitcam/models/sensors/water")
    new = write_model(tmp_path, "adapted-2", b"fake adapted model 2")
    run = run_managed(device, systemd, digitcam_sensor_models={"water": str(new)})
    assert run.returncode == 0, run.output[-4000:]
    device.vars["digitcam_sensor_models"] = {"water": str(new)}
    assert os.readlink(own / "current") == "adapted-2"
    assert (own / "adapted-1" / "digitcam.tflite").is_file()  # kept for a roll-back
    assert loads(systemd) == [["fake default model 1.0.0", "fake adapted model 2"]]  # one restart, on the new model


def test_a_sensor_model_digitcam_is_not_healthy_on_is_rolled_back(device, systemd, tmp_path):
    own = device.path("/var/lib/digitcam/models/sensors/water")
    previous = os.readlink(own / "current")
    sick = write_model(tmp_path, "adapted-sick", b"sick: the daemon dies on this model")
    run = run_managed(device, systemd, digitcam_sensor_models={"water": str(sick)})
    assert run.returncode != 0
    assert "model adapted-sick failed on localhost (sensor water)" in run.output
    assert f"rolled back to {previous}" in run.output
    assert os.readlink(own / "current") == previous
    previous_bytes = (own / previous / "digitcam.tflite").read_bytes().decode()
    assert loads(systemd)[-1] == ["fake default model 1.0.0", previous_bytes]  # restarted on the previous one


def test_a_first_sensor_model_that_fails_leaves_the_sensor_on_the_default_model(device, systemd, tmp_path):
    sensors = [*SENSORS, {"name": "gas", "roi": [10, 20, 200, 60], "mode": "meter"}]
    sick = write_model(tmp_path, "gas-1", b"sick: the first model of the gas meter")
    models = {**device.vars["digitcam_sensor_models"], "gas": str(sick)}
    run = run_managed(device, systemd, digitcam_sensors=sensors, digitcam_sensor_models=models)
    assert run.returncode != 0
    assert "model gas-1 failed on localhost (sensor gas)" in run.output
    assert "rolled back to ../../current" in run.output
    gas = device.path("/var/lib/digitcam/models/sensors/gas")
    assert os.readlink(gas / "current") == "../../current"
    assert sensor_tables(device)["gas"]["model"] == str(gas / "current" / "digitcam.tflite")
    assert (gas / "current" / "digitcam.tflite").read_bytes() == b"fake default model 1.0.0"
    assert loads(systemd)[-1][-1] == "fake default model 1.0.0"  # the daemon came back, gas on the default
