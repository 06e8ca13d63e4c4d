"""A training run directory's ``state.json``: what the recognizer and the locator trainers checkpoint beside
``last.keras`` each epoch (epoch, losses, seconds) and what resume and export read back."""

from __future__ import annotations

import json
from pathlib import Path

STATE_FILE = "state.json"


def read_state(run: Path) -> dict:
    """The run's state, or ``{}`` for a run that has not finished an epoch yet."""
    path = Path(run) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(run: Path, state: dict, indent: int = 2) -> None:
    (Path(run) / STATE_FILE).write_text(json.dumps(state, indent=indent))
