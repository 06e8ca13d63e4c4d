"""A bounded, durable FIFO of messages not yet acknowledged by the broker.

One small JSON file per message in ``<state_dir>/spool``, named by a sequence number, so order survives
a restart. Each file is written to a temporary name, fsynced, renamed and the directory fsynced: a power
cut leaves either the whole message or none. A file that cannot be parsed is moved to ``corrupt/`` with
a warning. When the disk is full or read-only the spool keeps messages in memory and says so once;
nothing is lost while the process lives.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".json"


@dataclass(frozen=True)
class Message:
    seq: int
    topic: str
    payload: str
    retain: bool


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Messages in arrival order; ``append`` from any thread, ``remove`` once the broker has them."""

    def __init__(self, directory: str | Path | None, max_items: int = 10000):
        self.directory = Path(directory) if directory is not None else None
        self.max_items = max_items
        self._lock = threading.Lock()
        self._items: OrderedDict[int, Message] = OrderedDict()
        self._on_disk: set[int] = set()
        self._next = 1
        self.dropped = 0
        self.in_memory = self.directory is None
        if self.directory is not None:
            self._load()

    def _load(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            names = sorted(p for p in self.directory.iterdir() if p.suffix == SUFFIX and p.stem.isdigit())
        except OSError as exc:
            self._degrade(f"cannot use spool directory {self.directory}: {exc.strerror or exc}")
            return
        for path in names:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                msg = Message(int(path.stem), str(data["topic"]), str(data["payload"]), bool(data["retain"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self._move_aside(path, exc)
                continue
            self._items[msg.seq] = msg
            self._on_disk.add(msg.seq)
        for p in self.directory.glob("*.tmp"):  # a write cut short by a crash
            p.unlink(missing_ok=True)
        if self._items:
            self._next = max(self._items) + 1
            log.info("spool %s: %d undelivered message(s) from an earlier run", self.directory, len(self._items))

    def _move_aside(self, path: Path, exc: Exception) -> None:
        target = self.directory / "corrupt" / path.name
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            log.warning("spool file %s is corrupt (%s); moved to %s", path, exc.__class__.__name__, target)
        except OSError as err:
            log.warning("spool file %s is corrupt (%s) and cannot be moved aside: %s", path,
                        exc.__class__.__name__, err.strerror or err)

    def _degrade(self, why: str) -> None:
        if not self.in_memory:
            log.warning("%s; spooling in memory until restart (undelivered readings are lost on a crash)", why)
        self.in_memory = True

    def _write(self, msg: Message) -> bool:
        path = self.directory / f"{msg.seq:012d}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        data = json.dumps({"topic": msg.topic, "payload": msg.payload, "retain": msg.retain}).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:  # a short write (disk full, file size limit) is not success: write on or fail
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(self.directory)
            return True
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            self._degrade(f"cannot write spool file {path}: {exc.strerror or exc}")
            return False

    def append(self, topic: str, payload: str, retain: bool = True) -> Message:
        """Add a message at the end; when full, the oldest message is dropped with a warning."""
        with self._lock:
            msg = Message(self._next, topic, payload, retain)
            self._next += 1
            if len(self._items) >= self.max_items:
                old, _ = self._items.popitem(last=False)
                self._unlink(old)
                self.dropped += 1
                log.warning("spool full (%d messages): dropped the oldest, #%d", self.max_items, old)
            self._items[msg.seq] = msg
            if not self.in_memory and self._write(msg):
                self._on_disk.add(msg.seq)
            return msg

    def _unlink(self, seq: int) -> None:
        if seq in self._on_disk:
            self._on_disk.discard(seq)
            try:
                (self.directory / f"{seq:012d}{SUFFIX}").unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove delivered spool file #%d: %s", seq, exc.strerror or exc)

    def remove(self, seq: int) -> None:
        """The broker has this message: forget it."""
        with self._lock:
            if self._items.pop(seq, None) is not None:
                self._unlink(seq)

    def pending(self, after: int = 0, limit: int | None = None) -> list[Message]:
        """Messages with a sequence number above ``after``, oldest first."""
        with self._lock:
            out = []
            for msg in self._items.values():
                if limit is not None and len(out) >= limit:
                    break
                if msg.seq > after:
                    out.append(msg)
            return out

    def __len__(self) -> int:
        return len(self._items)
