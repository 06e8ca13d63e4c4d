"""A stand-in ``systemctl`` for the roll-back tests: just enough of it for Ansible's systemd module.

It keeps one unit's state in ``$FAKE_SYSTEMD_DIR/state.json`` and logs every call to ``calls.log``.
``start``/``restart`` play the daemon starting: it reads the deployed ``$DIGITCAM_CONFIG`` and opens every
model it names (the device model and each sensor's, through the role's symlinks). The unit then stays
active, unless a model is missing or its bytes begin with ``sick`` (a model the daemon dies on after its
first frames): then systemd restarts it until the start limit and leaves it failed, as the real unit does
(``Restart=on-failure``, ``StartLimitBurst``). Nothing outside the test's directory is touched.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path

STATE_DIR = Path(os.environ["FAKE_SYSTEMD_DIR"])
STATE = STATE_DIR / "state.json"


def models_named(config: Path) -> list[Path]:
    data = tomllib.loads(config.read_text())
    return [Path(p) for p in [data["device"]["model"], *(s.get("model") for s in data.get("sensor", []))] if p]


def start() -> dict:
    models = models_named(Path(os.environ["DIGITCAM_CONFIG"]))
    sick = [str(m) for m in models if not m.is_file() or m.read_bytes().startswith(b"sick")]
    loaded = [m.read_bytes().decode(errors="replace") for m in models if m.is_file()]
    with open(STATE_DIR / "loads.log", "a") as log:
        log.write(json.dumps(loaded) + "\n")
    return {"active": not sick, "restarts": 5 if sick else 0}


def main(args: list[str]) -> int:
    with open(STATE_DIR / "calls.log", "a") as log:
        log.write(" ".join(args) + "\n")
    state = json.loads(STATE.read_text()) if STATE.exists() else {"active": True, "restarts": 0}
    verb = args[0] if args else ""
    if verb in ("start", "restart"):
        STATE.write_text(json.dumps(start()))
    elif verb == "show":
        print(f"Id=digitcam.service\nLoadState=loaded\nActiveState={'active' if state['active'] else 'failed'}\n"
              f"SubState={'running' if state['active'] else 'failed'}\nNRestarts={state['restarts']}")
    elif verb == "is-enabled":
        print("enabled")
    elif verb not in ("daemon-reload", "enable"):
        print(f"fake systemctl: {verb!r} is not faked", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
