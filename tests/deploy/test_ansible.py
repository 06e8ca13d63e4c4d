"""The Ansible deployment, run for real against localhost into a temporary root prefix.

The tests that share the ``deployed`` device keep its desired state (``device.vars``) in step with
what they deploy, so they pass in any order.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tomllib

from tests.deploy.conftest import ANSIBLE_DIR, PLAYBOOK, REPO, UNIT_FILE, ansible_env, require_tool, write_model


def mode_of(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_playbook_passes_the_syntax_check(tmp_path):
    proc = subprocess.run(
        [require_tool("ansible-playbook"), "--syntax-check", "-i", str(ANSIBLE_DIR / "inventory.example.yml"),
         str(PLAYBOOK)], capture_output=True, text=True, env=ansible_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile_passes(tmp_path):
    proc = subprocess.run(
        [require_tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor", "ansible/"],
        cwd=REPO, capture_output=True, text=True, env=ansible_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_first_run_lays_out_the_files_with_their_content_and_modes(deployed):
    assert deployed.first_run.recap["changed"] > 0
    config_dir = deployed.path("/etc/digitcam")
    assert mode_of(config_dir) == 0o755

    password = config_dir / "mqtt-password"
    assert password.read_text() == 'pa"ss word'
    assert mode_of(password) == 0o640  # root-owned, readable by the service's group only
    assert 'pa"ss word' not in deployed.first_run.output

    config_file = config_dir / "digitcam.toml"
    assert mode_of(config_file) == 0o640
    config = tomllib.loads(config_file.read_text())
    assert config["device"] == {
        "name": "cellar-meter",
        "state_dir": str(deployed.path("/var/lib/digitcam")),
        "model": str(deployed.path("/var/lib/digitcam/models/current/digitcam.tflite")),
    }
    assert config["camera"] == {"source": "/dev/video0", "width": 640, "height": 480, "fps": 2}
    assert config["mqtt"] == {"host": "broker.local", "port": 1883, "tls": False, "username": "digitcam",
                              "password_file": str(password)}
    assert config["sensor"] == [{"name": "water", "roi": [100, 200, 300, 80], "mode": "meter", "unit": "m³"}]

    unit = deployed.path("/etc/systemd/system/digitcam.service")
    assert mode_of(unit) == 0o644
    # The same unit as systemd/digitcam.service except for the test's user and the prefix.
    expected = UNIT_FILE.read_text().replace("/opt/", f"{deployed.root}/opt/").replace(
        "/etc/digitcam/", f"{deployed.root}/etc/digitcam/")
    expected = expected.replace("User=digitcam", f"User={deployed.vars['digitcam_user']}").replace(
        "Group=digitcam", f"Group={deployed.vars['digitcam_group']}")
    assert unit.read_text() == expected

    models = deployed.path("/var/lib/digitcam/models")
    assert os.readlink(models / "current") == "1.0.0"
    assert (models / "current" / "digitcam.tflite").read_bytes() == b"fake tflite model, version 1.0.0"
    assert mode_of(models / "1.0.0" / "digitcam.tflite") == 0o640
    assert mode_of(deployed.path("/var/lib/digitcam")) == 0o750


def test_installed_digitcam_accepts_the_rendered_config(deployed):
    """The role's template and the daemon's config schema agree: the real check-config says ok."""
    digitcam = deployed.path("/opt/digitcam/venv/bin/digitcam")
    config_file = deployed.path("/etc/digitcam/digitcam.toml")
    proc = subprocess.run([str(digitcam), "check-config", str(config_file)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ok: device cellar-meter" in proc.stdout


def test_second_run_changes_nothing(deployed):
    deployed.assert_rerun_changes_nothing()


def test_check_diff_shows_config_and_model_changes_without_making_them(deployed, tmp_path):
    config_file = deployed.path("/etc/digitcam/digitcam.toml")
    models = deployed.path("/var/lib/digitcam/models")
    config_before, current_before = config_file.read_text(), os.readlink(models / "current")
    new_model = write_model(tmp_path, "3.0.0-dry", b"a model that is only looked at")
    dry = deployed.run("--tags", "config,model", "--check", "--diff", digitcam_mqtt_host="new-broker.local",
                       digitcam_model=str(new_model))
    assert dry.returncode == 0, dry.output[-4000:]
    assert '+host = "new-broker.local"' in dry.output
    assert "changed: [localhost]" in dry.output.split("Point the current model link at")[1].split("TASK")[0]
    assert "Install the uploaded digitcam wheel" not in dry.output  # the tags leave the package alone
    assert 'pa"ss word' not in dry.output
    assert config_file.read_text() == config_before
    assert os.readlink(models / "current") == current_before
    assert not (models / "3.0.0-dry").exists()


def test_a_config_the_daemon_rejects_never_lands(deployed):
    config_file = deployed.path("/etc/digitcam/digitcam.toml")
    before = config_file.read_text()
    bad_sensor = {"name": "water", "roi": [100, 200, 300, 80], "mode": "meters"}
    run = deployed.run("--tags", "config", digitcam_sensors=[bad_sensor])
    assert run.returncode != 0
    assert "'meters' is not one of number, meter" in run.output
    assert config_file.read_text() == before


def test_a_username_without_a_vault_password_is_refused(deployed):
    run = deployed.run("--tags", "config", digitcam_mqtt_password="")
    assert run.returncode != 0
    assert "a digitcam_mqtt_username needs digitcam_mqtt_password" in run.output


def test_model_whose_checksum_does_not_match_its_manifest_is_refused(deployed, tmp_path):
    models = deployed.path("/var/lib/digitcam/models")
    previous = os.readlink(models / "current")
    bad = write_model(tmp_path, "9.9.9-bad", b"a model damaged on its way", manifest_sha256="ab" * 32)
    run = deployed.run("--tags", "model", digitcam_model=str(bad))
    assert run.returncode != 0
    assert "model checksum mismatch on localhost" in run.output
    assert "the previous model stays in use" in run.output
    assert os.readlink(models / "current") == previous
    assert not (models / "9.9.9-bad").exists()


def test_new_model_version_lands_beside_the_old_one_and_becomes_current(deployed, tmp_path):
    models = deployed.path("/var/lib/digitcam/models")
    previous = os.readlink(models / "current")
    new = write_model(tmp_path, "2.0.0", b"fake tflite model, version 2.0.0")
    run = deployed.run("--tags", "model", digitcam_model=str(new))
    assert run.returncode == 0, run.output[-4000:]
    deployed.vars["digitcam_model"] = str(new)  # the device's desired state from now on
    assert os.readlink(models / "current") == "2.0.0"
    assert (models / "current" / "digitcam.json").is_file()
    assert (models / previous / "digitcam.tflite").is_file()  # kept for a roll-back


def test_an_installed_version_is_never_overwritten_with_other_content(deployed, tmp_path):
    models = deployed.path("/var/lib/digitcam/models")
    current = os.readlink(models / "current")
    installed = (models / current / "digitcam.tflite").read_bytes()
    impostor = write_model(tmp_path, current, b"different bytes under the same version")
    run = deployed.run("--tags", "model", digitcam_model=str(impostor))
    assert run.returncode != 0
    assert f"model version {current} is already installed on localhost" in run.output
    assert (models / current / "digitcam.tflite").read_bytes() == installed


def test_fetch_pulls_the_collected_crops_and_only_when_asked(deployed, tmp_path):
    import numpy as np

    from device.crop_files import AUTO, REVIEW, read_crop, scan
    from device.crop_folder import CropStore

    store = CropStore(deployed.path("/var/lib/digitcam/crops/water"), max_bytes=10 ** 7)
    rng = np.random.default_rng(0)
    made = [store.add(rng.integers(0, 255, (32, 128), dtype=np.uint8), "004711", AUTO, at=100.0 + i) for i in range(3)]
    made.append(store.add(rng.integers(0, 255, (32, 128), dtype=np.uint8), None, REVIEW, at=200.0, raw="0047", confidence=0.3))
    pulled = tmp_path / "pulled"
    plain = deployed.run("--tags", "config", digitcam_crops_fetch_dir=str(pulled))
    assert plain.returncode == 0, plain.output[-4000:]
    assert not pulled.exists()  # never without --tags fetch
    run = deployed.run("--tags", "fetch", digitcam_crops_fetch_dir=str(pulled))
    assert run.returncode == 0, run.output[-4000:]
    got = scan(pulled)
    assert sorted(c.name for c in got) == sorted(c.name for c in made)
    assert all(c.sensor == "water" and c.path.parent.parent.name == "localhost" for c in got)
    assert all(np.array_equal(read_crop(c), read_crop(store.crops[c.name])) for c in got)
    again = deployed.run("--tags", "fetch", digitcam_crops_fetch_dir=str(pulled))
    assert again.returncode == 0 and again.recap["changed"] == 0, again.output[-4000:]
