"""The systemd unit: it is the role's template rendered with the defaults, systemd accepts it without a
warning, it has the settings the daemon relies on, and its security exposure is the one docs/DEPLOY.md states."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO, ROLE_DIR, UNIT_FILE, ansible_env, require_tool

DEPLOY_DOC = REPO / "docs" / "DEPLOY.md"
EXEC_START = "/opt/digitcam/venv/bin/digitcam"


def parse_unit(text: str) -> dict:
    """{section: {key: [values]}}: unit files repeat keys (DeviceAllow=, SystemCallFilter=)."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), defaultdict(list))
        else:
            key, _, value = line.partition("=")
            current[key].append(value)
    return sections


@pytest.fixture
def runnable_unit(tmp_path) -> Path:
    """The repository's unit with ExecStart pointing at an executable that exists here, as verify requires."""
    binary = tmp_path / "bin" / "digitcam"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    unit = tmp_path / "digitcam.service"
    text = UNIT_FILE.read_text()
    assert f"ExecStart={EXEC_START} " in text
    unit.write_text(text.replace(f"ExecStart={EXEC_START} ", f"ExecStart={binary} "))
    return unit


def test_repo_unit_is_the_role_template_rendered_with_defaults(tmp_path):
    out = tmp_path / "digitcam.service"
    playbook = tmp_path / "render.yml"
    playbook.write_text(f"""
- name: Render the unit with the role defaults
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: ["{ROLE_DIR}/defaults/main.yml", "{ROLE_DIR}/vars/main.yml"]
  tasks:
    - name: Render
      ansible.builtin.template: {{src: "{ROLE_DIR}/templates/digitcam.service.j2", dest: "{out}", mode: "0644"}}
""")
    proc = subprocess.run([require_tool("ansible-playbook"), "-i", "localhost,", str(playbook)],
                          capture_output=True, text=True, env=ansible_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_text() == UNIT_FILE.read_text(), (
        "systemd/digitcam.service differs from the role template rendered with its defaults; render it again")


def test_systemd_verify_accepts_the_unit_without_any_warning(runnable_unit):
    proc = subprocess.run([require_tool("systemd-analyze"), "verify", "--man=no", str(runnable_unit)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_systemd_verify_reports_a_misspelled_key(runnable_unit):
    """verify exits 0 on unknown keys, so the test above relies on stderr; show that stderr catches one."""
    runnable_unit.write_text(runnable_unit.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    proc = subprocess.run([require_tool("systemd-analyze"), "verify", "--man=no", str(runnable_unit)],
                          capture_output=True, text=True, timeout=60)
    assert "Unknown key 'WatchdogSecs'" in proc.stderr


def test_unit_runs_the_daemon_as_a_notify_service_with_a_watchdog():
    unit = parse_unit(UNIT_FILE.read_text())
    service = unit["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert service["ExecStart"] == [f"{EXEC_START} run --config /etc/digitcam/digitcam.toml"]
    assert int(service["WatchdogSec"][0]) > 0
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]  # the daemon's exit code for a config error
    assert int(unit["Unit"]["StartLimitBurst"][0]) > 0 and int(unit["Unit"]["StartLimitIntervalSec"][0]) > 0
    assert service["User"] == ["digitcam"] and service["SupplementaryGroups"] == ["video"]
    assert service["StateDirectory"] == ["digitcam"] and service["ConfigurationDirectory"] == ["digitcam"]


def test_unit_is_hardened_but_keeps_the_camera_devices():
    service = parse_unit(UNIT_FILE.read_text())["Service"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectKernelLogs", "ProtectControlGroups", "LockPersonality", "MemoryDenyWriteExecute",
                "RestrictNamespaces", "RestrictSUIDSGID", "RestrictRealtime"):
        assert service[key] == ["yes"], key
    assert service["ProtectSystem"] == ["strict"]
    assert service["CapabilityBoundingSet"] == [""]
    assert set(service["RestrictAddressFamilies"][0].split()) <= {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert "@system-service" in service["SystemCallFilter"]
    assert "PrivateDevices" not in service  # it would hide /dev/video*, /dev/media*, /dev/dma_heap
    assert service["DevicePolicy"] == ["closed"]
    allowed = {entry.split()[0] for entry in service["DeviceAllow"]}
    assert allowed == {"char-video4linux", "char-media", "char-dma_heap"}


def test_security_exposure_is_low_and_recorded_in_the_docs(runnable_unit):
    proc = subprocess.run([require_tool("systemd-analyze"), "security", "--offline=yes", "--no-pager",
                           str(runnable_unit)], capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for digitcam\.service: (\d+\.\d)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr
    exposure = float(match.group(1))
    assert exposure <= 2.5, f"exposure {exposure} (the unit lost some of its hardening)"
    documented = re.search(r"exposure level[^*]*\*\*(\d+\.\d)\*\*", DEPLOY_DOC.read_text())
    assert documented, "docs/DEPLOY.md must state the exposure as **N.N**"
    assert float(documented.group(1)) == exposure, f"docs/DEPLOY.md says {documented.group(1)}, systemd says {exposure}"
