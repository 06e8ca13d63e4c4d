"""Saving an ROI drawn on the web page into the daemon's own config file, and nothing else.

The file is re-read at each save and edited minimally (only that sensor's ``roi`` line; every other byte,
comments included, stays, proved by parsing both), checked like ``check-config``, the old file kept as
``<name>.bak``, the new one written atomically. A file the daemon may not write gives the TOML to paste.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from device.errors import ConfigError, WebError

log = logging.getLogger("device.web")  # the page's log lines keep the logger name docs/OPERATIONS.md shows


_HEADER = re.compile(r"^\s*\[")
_SENSOR_HEADER = re.compile(r"^\s*\[\[\s*sensor\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_\-\"']+)\s*=")


def _sensor_index(text: str, sensor: str) -> int:
    data = tomllib.loads(text)
    tables = data.get("sensor", [])
    for i, table in enumerate(tables if isinstance(tables, list) else []):
        if isinstance(table, dict) and table.get("name") == sensor:
            return i
    raise WebError(404, f"sensor {sensor!r} is not in the config file")


def set_roi_in_text(text: str, sensor: str, roi) -> str:
    """The config text with only sensor ``sensor``'s ``roi`` line changed (or added after its name):
    comments, order and every other byte stay. Checked by parsing both and comparing."""
    index = _sensor_index(text, sensor)
    lines = text.splitlines(keepends=True)
    value = f"[{', '.join(str(int(v)) for v in roi)}]"
    start, seen = None, -1
    for number, line in enumerate(lines):
        if _SENSOR_HEADER.match(line):
            seen += 1
            if seen == index:
                start = number
                break
    if start is None:
        raise WebError(409, "the sensors are not written as [[sensor]] tables; edit the file by hand")
    end = next((n for n in range(start + 1, len(lines)) if _HEADER.match(lines[n])), len(lines))
    name_line = None
    for number in range(start + 1, end):
        match = _KEY.match(lines[number])
        if not match:
            continue
        key = match.group(2).strip("\"'")
        if key == "name" and name_line is None:
            name_line = number
        if key == "roi":
            last = number  # an array may go on over several lines: up to the line with its closing bracket
            while "]" not in _code(lines[last]) and last + 1 < end:
                last += 1
            tail = _code(lines[last])
            comment = lines[last][len(tail):].rstrip("\r\n")
            newline = "\n" if lines[last].endswith("\n") else ""
            rest = tail[tail.rindex("]") + 1:] if "]" in tail else ""  # the spaces before a comment stay
            rest = rest if comment else rest.rstrip()
            lines[number:last + 1] = [f"{match.group(1)}roi = {value}{rest}{comment}{newline}"]
            break
    else:
        at = name_line if name_line is not None else start
        indent = _KEY.match(lines[at]).group(1) if name_line is not None else ""
        if not lines[at].endswith("\n"):
            lines[at] += "\n"
        lines.insert(at + 1, f"{indent}roi = {value}\n")
    edited = "".join(lines)
    before, after = tomllib.loads(text), tomllib.loads(edited)
    before["sensor"][index]["roi"] = [int(v) for v in roi]
    if before != after:
        raise WebError(409, "the config file could not be edited safely; edit it by hand")
    return edited


def _code(line: str) -> str:
    """A line without its trailing comment (a '#' outside a string)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line.rstrip("\r\n")


def snippet(sensor: str, roi) -> str:
    return f"[[sensor]]\nname = \"{sensor}\"\nroi = [{', '.join(str(int(v)) for v in roi)}]\n"


def _write_atomically(path: Path, data: bytes, like: os.stat_result) -> None:
    """Temp file in the same folder, fsynced, the old file's mode (and owner, as root), renamed over, folder fsynced."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), like.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.fchown(f.fileno(), like.st_uid, like.st_gid)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_roi(config_path: Path, sensor: str, roi, frame_size=None) -> dict:
    """Write ``roi`` for ``sensor`` into the config file: re-read now, edited minimally, checked like
    ``check-config``, the old file kept as ``<name>.bak``, written atomically. A file the daemon may not
    write (``ProtectSystem=strict``) gives the TOML to paste instead (``saved: false``)."""
    from device.config import parse_config

    roi = check_roi(roi, frame_size)
    try:
        old = config_path.read_bytes()
        text = old.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebError(500, f"cannot read {config_path}: {getattr(exc, 'strerror', None) or exc}") from None
    edited = set_roi_in_text(text, sensor, roi)
    try:
        parse_config(edited, config_path)
    except ConfigError as exc:
        raise WebError(422, str(exc)) from None
    answer = {"sensor": sensor, "roi": roi, "path": str(config_path), "snippet": snippet(sensor, roi)}
    backup = config_path.with_name(config_path.name + ".bak")
    if not (os.access(config_path, os.W_OK) and os.access(config_path.parent, os.W_OK)):
        return {**answer, "saved": False, "error": f"{config_path} is read-only for the daemon"}
    try:
        like = config_path.stat()
        _write_atomically(backup, old, like)
        _write_atomically(config_path, edited.encode("utf-8"), like)
    except OSError as exc:
        return {**answer, "saved": False, "error": f"cannot write {config_path}: {exc.strerror or exc}"}
    log.warning("web: sensor %s: roi set to %s in %s (old file kept as %s)", sensor, roi, config_path, backup.name)
    return {**answer, "saved": True, "backup": str(backup)}


def check_roi(roi, frame_size=None) -> list[int]:
    """``[x, y, w, h]``: whole pixels, inside the frame when its size is known."""
    if (not isinstance(roi, list) or len(roi) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)):
        raise WebError(400, "roi must be [x, y, width, height] in whole pixels")
    x, y, w, h = roi
    if x < 0 or y < 0 or w < 2 or h < 2:
        raise WebError(400, f"roi needs x, y >= 0 and width, height >= 2, not {roi}")
    if frame_size is not None and (x + w > frame_size[0] or y + h > frame_size[1]):
        raise WebError(400, f"roi {roi} does not fit the {frame_size[0]}x{frame_size[1]} frame")
    return [x, y, w, h]
