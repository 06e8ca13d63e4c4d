"""Reading the config's TOML tables into dataclasses, and its secrets from files: errors name file, line, key.

``Checker`` turns a table into one of ``device/config.py``'s dataclasses, refusing an unknown key (with
the closest known one) or a value of the wrong type; every refusal is a ``ConfigError`` that says where in
the file it is. Secrets (the broker password, the web page's token) come from a file no other user may read
or from an environment variable, never from the config itself.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import ConfigError

if TYPE_CHECKING:
    from device.config import MqttConfig

# Keys of the password pair and derived values are not settable in the file.
NOT_KEYS = {"password", "token"}


def _line_of(text: str, table: str, key: str, index: int | None = None) -> int | None:
    """The line number of ``key`` inside ``[table]`` (or the index-th ``[[table]]``); None if not found."""
    current, seen = None, -1
    header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"']+)\s*\]\]?")
    for number, line in enumerate(text.splitlines(), start=1):
        match = header.match(line)
        if match:
            current = match.group(2)
            if match.group(1) == "[[" and current == table:
                seen += 1
            continue
        in_table = current == table and (index is None or seen == index)
        if in_table and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    if not key:
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*\[*\s*{re.escape(key)}\b", line):
            return number
    return None


class Checker:
    """Turns TOML tables into dataclasses, naming the file, line and key of the first problem."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text

    def fail(self, message: str, table: str, key: str = "", index: int | None = None):
        line = _line_of(self.text, table, key, index)
        where = f"{self.path}:{line}" if line else str(self.path)
        dotted = ".".join(p for p in (table if index is None else f"{table}[{index}]", key) if p)
        raise ConfigError(f"{where}: {dotted}: {message}")

    def build(self, cls, values, table: str, index: int | None = None):
        if not isinstance(values, dict):
            self.fail(f"must be a table, not {type(values).__name__}", table, index=index)
        allowed = {f.name: f for f in fields(cls) if f.name not in NOT_KEYS}
        kwargs = {}
        for key, value in values.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(allowed))})"
                self.fail(f"unknown key{hint}", table, key, index)
            kwargs[key] = self.convert(value, allowed[key], table, key, index)
        return cls(**kwargs)

    def convert(self, value, f, table, key, index):
        kind = type(f.default)
        if kind is bool:
            if not isinstance(value, bool):
                self.fail(f"must be true or false, not {value!r}", table, key, index)
            return value
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(f"must be an integer, not {value!r}", table, key, index)
            return value
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(f"must be a number, not {value!r}", table, key, index)
            return float(value)
        if kind is tuple:  # the roi
            if (not isinstance(value, list) or len(value) != 4
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
                self.fail(f"must be [x, y, width, height] in pixels, not {value!r}", table, key, index)
            if min(value[:2]) < 0 or min(value[2:]) < 1:
                self.fail(f"needs x, y >= 0 and width, height >= 1, not {value!r}", table, key, index)
            return tuple(value)
        if isinstance(value, int) and not isinstance(value, bool) and key == "source":
            return str(value)  # camera index 0 -> "0"
        if not isinstance(value, str):
            self.fail(f"must be a string, not {value!r}", table, key, index)
        return value


def read_secret(path: Path, check: Checker, table: str, key: str) -> str:
    """A secret from a file that no other user may read (group access is fine: root:digitcam 0640)."""
    try:
        mode = path.stat().st_mode
        if mode & stat.S_IRWXO:
            check.fail(f"{path} is accessible to all users (mode {stat.filemode(mode)}); chmod o-rwx it", table, key)
        return path.read_text().strip()
    except OSError as exc:
        check.fail(f"cannot read {path}: {exc.strerror or exc}", table, key)


def read_password(m: MqttConfig, check: Checker) -> str:
    """The broker password from its file (not readable by others) or environment variable."""
    if m.password_file:
        return read_secret(Path(m.password_file), check, "mqtt", "password_file")
    if m.password_env:
        value = os.environ.get(m.password_env)
        if value is None:
            check.fail(f"environment variable {m.password_env} is not set", "mqtt", "password_env")
        return value
    return ""
