"""The ``device`` extra's requirements as pip would pick them on a given machine, one a line, markers resolved.

    python3 scripts/device_requirements.py armv7l

32-bit Raspberry Pi OS on a Pi 4 or 5 boots a 64-bit kernel: ``uname -m`` (and so pip's ``platform_machine``)
says ``aarch64`` there although the userland is 32-bit armhf, and the wheel's markers would ask for
ai-edge-litert and opencv-python-headless, which have no 32-bit ARM wheels. scripts/setup.sh installs the
wheel with ``--no-deps`` there and these requirements, resolved for ``armv7l``, beside it; pyproject.toml
stays the one list. Needs Python 3.11 (tomllib) and pip (its vendored ``packaging``), as on bookworm.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from pip._vendor.packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements(machine: str, pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    picked = []
    for line in project["dependencies"] + project["optional-dependencies"]["device"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"platform_machine": machine, "extra": "device"}):
            requirement.marker = None
            if str(requirement) not in picked:
                picked.append(str(requirement))
    return picked


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: device_requirements.py MACHINE (e.g. armv7l)")
    print("\n".join(requirements(sys.argv[1])))
