"""scripts/setup.sh on 32-bit armv7 (armv7l), where numpy and OpenCV must come from apt, not PyPI.

The script runs for real from a copy of scripts/ in a temp dir, with stand-ins on PATH for what it calls
(uname says the machine; apt-get, dpkg, python and the venv's pip only record their arguments), so the
test sees the exact commands a Pi would run without installing anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
"""
FAKE_PYTHON = RECORDER + """if [ "$1 $2" = "-m venv" ] && [ "$3" != "--help" ]; then
  for last; do :; done
  mkdir -p "$last/bin"
  for tool in pip python; do printf '#!/bin/sh\\necho "venv-%s $*" >> "{log}"\\n' "$tool" > "$last/bin/$tool"; done
  chmod +x "$last/bin/pip" "$last/bin/python"
fi
"""


def run_setup(tmp_path: Path, machine: str, *args: str, userland: str = "") -> tuple[subprocess.CompletedProcess, list[str]]:
    """``userland``: what ``dpkg --print-architecture`` says (nothing: dpkg knows no packages at all)."""
    root, bin_dir, log = tmp_path / "clone", tmp_path / "bin", tmp_path / "calls.log"
    shutil.copytree(REPO / "scripts", root / "scripts")
    bin_dir.mkdir()
    dpkg = f'#!/bin/sh\n[ "$1" = --print-architecture ] && [ -n "{userland}" ] && echo {userland} && exit 0\nexit 1\n'
    fakes = {"uname": f"#!/bin/sh\necho {machine}\n", "dpkg": dpkg,
             "apt-get": RECORDER.format(log=log), "python3": FAKE_PYTHON.format(log=log)}
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON": str(bin_dir / "python3")}
    done = subprocess.run(["bash", str(root / "scripts" / "setup.sh"), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)
    return done, (log.read_text().splitlines() if log.exists() else [])


@pytest.mark.skipif(os.geteuid() != 0 and shutil.which("sudo") is not None, reason="setup.sh would call sudo")
def test_armv7l_takes_numpy_and_opencv_from_apt_into_a_system_site_packages_venv(tmp_path):
    done, calls = run_setup(tmp_path, "armv7l")
    assert done.returncode == 0, done.stderr
    installs = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert any("python3-numpy python3-opencv" in c for c in installs), calls
    assert "python3 -m venv --system-site-packages .venv" in calls
    assert "venv-pip install -q -e .[device]" in calls  # the extra's armv7l markers pick tflite-runtime


@pytest.mark.skipif(os.geteuid() != 0 and shutil.which("sudo") is not None, reason="setup.sh would call sudo")
def test_other_machines_get_everything_from_pypi(tmp_path):
    done, calls = run_setup(tmp_path, "aarch64")
    assert done.returncode == 0, done.stderr
    assert "python3 -m venv .venv" in calls
    assert not any("python3-numpy" in c for c in calls)


def test_dev_setup_on_armv7l_says_why_it_cannot(tmp_path):
    done, calls = run_setup(tmp_path, "armv7l", "--dev")
    assert done.returncode == 2
    assert done.stderr.strip() == ("setup: --dev needs TensorFlow, which has no 32-bit armv7 (armv7l) wheels: "
                                   "develop on x86-64 or aarch64")
    assert calls == []


@pytest.mark.skipif(os.geteuid() != 0 and shutil.which("sudo") is not None, reason="setup.sh would call sudo")
def test_32_bit_pi_os_on_a_64_bit_kernel_installs_the_armv7l_requirements(tmp_path):
    """A Pi 4/5 on 32-bit Raspberry Pi OS: uname says aarch64, dpkg says armhf; pip must not see the aarch64 markers."""
    done, calls = run_setup(tmp_path, "aarch64", userland="armhf")
    assert done.returncode == 0, done.stderr
    assert any("python3-numpy python3-opencv" in c for c in calls if c.startswith("apt-get")), calls
    assert "python3 -m venv --system-site-packages .venv" in calls
    assert "venv-pip install -q --no-deps -e ." in calls
    assert "venv-python scripts/device_requirements.py armv7l" in calls
    assert "venv-pip install -q -e .[device]" not in calls


def test_the_armv7l_requirements_are_the_extras_armv7l_markers():
    import sys

    done = subprocess.run([sys.executable, str(REPO / "scripts" / "device_requirements.py"), "armv7l"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["numpy", "tflite-runtime==2.14.*", "numpy<2", "paho-mqtt>=2.0"]
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "device_requirements.py"), "aarch64"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["numpy", "ai-edge-litert", "opencv-python-headless", "paho-mqtt>=2.0"]
