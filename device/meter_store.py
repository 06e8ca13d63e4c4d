"""Where a meter's accepted value survives a restart: one small JSON file in the state directory.

The first reading after a restart is checked against the value kept here (``device/meter.py``), so a
misread at start-up is not published as the meter's new value; ``set_value`` writes it exactly.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("device.meter")  # the meter's log lines keep one logger name


class MeterStore:
    """The last accepted value of each meter sensor, in one JSON file written atomically.

    A file that cannot be read is logged and treated as empty (the meters then confirm their first
    value again); one that cannot be written is logged once and the values are kept in memory.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._data: dict = {}
        self._warned = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._data = data if isinstance(data, dict) else {}
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("meter state %s is unreadable (%s); meters confirm their first value again", self.path, exc)

    def get(self, name: str) -> dict | None:
        entry = self._data.get(name)
        if isinstance(entry, dict) and isinstance(entry.get("value"), str) and entry["value"].isdigit():
            return entry
        return None

    def put(self, name: str, value: str, at: float, source: str) -> None:
        self._data[name] = {"value": value, "at": round(at, 3), "source": source}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self._data, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot write meter state %s (%s); keeping it in memory", self.path, exc)
                self._warned = True
