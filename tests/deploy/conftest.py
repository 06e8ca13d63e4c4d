"""Deployment fixtures: the real ansible-playbook against localhost, into a temporary root prefix.

Service and user management are switched off (digitcam_manage_service: false), so nothing outside the
prefix is touched: no system user, no systemd. The wheel is the real one built from this repository
and installed with --no-deps (no package index needed); models are small fake files with manifests,
because the playbook only moves and checksums them.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
ROLE_DIR = ANSIBLE_DIR / "roles" / "digitcam"
PLAYBOOK = ANSIBLE_DIR / "deploy.yml"
UNIT_FILE = REPO / "systemd" / "digitcam.service"
RECAP = re.compile(r"^localhost\s*:\s*(.*)$", re.MULTILINE)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (scripts/setup.sh --dev installs it)", pytrace=False)
    return path


def ansible_env(tmp: Path) -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
               ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-tmp"))
    env.pop("PYTHONPATH", None)
    return env


def write_model(directory: Path, version: str, payload: bytes, manifest_sha256: str | None = None) -> Path:
    """A model file and its manifest; ``manifest_sha256`` lets a test make the two disagree."""
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / "digitcam.tflite"
    model.write_bytes(payload)
    manifest = {"schema": 1, "name": "digitcam", "version": version, "file": model.name,
                "sha256": manifest_sha256 or hashlib.sha256(payload).hexdigest()}
    model.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    return model


@dataclass
class PlaybookRun:
    returncode: int
    output: str

    @property
    def recap(self) -> dict:
        match = RECAP.search(self.output)
        assert match, f"no PLAY RECAP in ansible-playbook output:\n{self.output[-3000:]}"
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


class Deployment:
    """One temporary device: a root prefix plus the variables that keep the play inside it."""

    def __init__(self, tmp: Path, wheel: Path, model: Path):
        self.tmp = tmp
        self.root = tmp / "root"
        self.inventory = tmp / "inventory.ini"
        self.first_run: PlaybookRun | None = None
        # The test's own Python runs the modules: ansible on the PATH may belong to another one.
        shebang = Path(require_tool("ansible-playbook")).read_text().splitlines()[0]
        python = shebang.removeprefix("#!").split()[-1]
        self.inventory.write_text(
            f"[digitcam]\nlocalhost ansible_connection=local ansible_python_interpreter={python}\n")
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        self.vars = {
            "digitcam_root_prefix": str(self.root),
            "digitcam_manage_packages": False,
            "digitcam_manage_service": False,
            "digitcam_install_dependencies": False,
            "digitcam_user": user, "digitcam_group": group,
            "digitcam_admin_user": user, "digitcam_admin_group": group,
            "digitcam_python": python,
            "digitcam_wheel": str(wheel),
            "digitcam_model": str(model),
            "digitcam_device_name": "cellar-meter",
            "digitcam_mqtt_host": "broker.local",
            "digitcam_mqtt_username": "digitcam",
            "digitcam_mqtt_password": 'pa"ss word',
            "digitcam_camera": {"source": "/dev/video0", "width": 640, "height": 480, "fps": 2},
            "digitcam_sensors": [{"name": "water", "roi": [100, 200, 300, 80], "mode": "meter", "unit": "m³"}],
            "ansible_become": False,
        }

    def run(self, *args: str, env: dict | None = None, **overrides) -> PlaybookRun:
        """``ansible-playbook`` with the device's vars and ``overrides``; ``env`` adds environment variables."""
        extra = self.tmp / "vars.json"
        extra.write_text(json.dumps({**self.vars, **overrides}))
        proc = subprocess.run(
            [require_tool("ansible-playbook"), "-i", str(self.inventory), str(PLAYBOOK), "-e", f"@{extra}", *args],
            capture_output=True, text=True, env={**ansible_env(self.tmp), **(env or {})}, timeout=300)
        return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)

    def assert_rerun_changes_nothing(self) -> None:
        """The same play again, on the device as the last run left it: it succeeds and changes nothing."""
        again = self.run()
        assert again.returncode == 0, again.output[-4000:]
        assert again.recap["changed"] == 0, again.output[-4000:]

    def path(self, device_path: str) -> Path:
        return self.root / device_path.lstrip("/")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The digitcam wheel built from this checkout, the way docs/DEPLOY.md tells users to build it."""
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    wheels = list(out.glob("digitcam-*.whl"))
    assert proc.returncode == 0 and len(wheels) == 1, f"wheel build failed:\n{proc.stdout}\n{proc.stderr}"
    return wheels[0]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, wheel):
    """A device deployed once with model 1.0.0; tests of the deployed state share it."""
    tmp = tmp_path_factory.mktemp("device")
    model = write_model(tmp / "models-1.0.0", "1.0.0", b"fake tflite model, version 1.0.0")
    device = Deployment(tmp, wheel, model)
    first = device.run()
    assert first.returncode == 0, first.output[-4000:]
    device.first_run = first
    return device
