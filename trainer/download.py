"""Downloading one pinned file: resumable, verified against its sha256, with a progress line.

A download goes to ``DOWNLOADS/NAME.part`` first, so an interrupted one resumes with an HTTP range
request; it is checked against its pinned sha256 before it takes its final name, and a corrupt one is
deleted. Files without a pinned sha256 (ones that could not be hashed where this was written) are
fetched only with ``allow_unpinned``, which logs the sha256 to pin. Which files exist and where they
are installed is ``trainer.fetch``'s registry; this module knows nothing of data sets.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from device.errors import DigitcamError

log = logging.getLogger(__name__)

CHUNK = 1 << 16
TIMEOUT_S = 30


class FetchError(DigitcamError):
    """A download failed, did not match its pin, or its content is not in the expected layout."""


@dataclass(frozen=True)
class Remote:
    """One file at its origin: what it is called locally and the sha256 it must have (None: not pinned yet)."""

    url: str
    name: str
    sha256: str | None


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, every 10 % otherwise)."""

    def __init__(self, name: str, total: int | None, done: int, stream=None):
        self.name, self.total, self.done = name, total, done
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.last_decile = -1
        self.started = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        decile = int(10 * self.done / self.total) if self.total else -1
        if self.tty or decile > self.last_decile:
            self.last_decile = decile
            self.stream.write(("\r" if self.tty else "") + self.line() + ("" if self.tty else "\n"))
            self.stream.flush()

    def line(self) -> str:
        mb = self.done / 1e6
        if not self.total:
            return f"{self.name}: {mb:.1f} MB"
        share = self.done / self.total
        bar = "#" * int(30 * share)
        return f"{self.name}: [{bar:<30}] {share:4.0%} {mb:.1f}/{self.total / 1e6:.1f} MB"

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def download(url: str, part: Path, progress_stream=None) -> None:
    """Fetch url into ``part``, resuming from its current size with a range request when the server allows."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "digitcam-fetch"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already complete
            return
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"cannot reach {_host(url)} ({reason}): `digitcam data fetch` needs the network; "
                         f"elsewhere, copy the files in by hand (docs/DATA.md)") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        progress = Progress(part.name.removesuffix(".part"), total, have, progress_stream)
        try:
            with open(part, "ab" if resumed else "wb") as out:
                while block := response.read(CHUNK):
                    out.write(block)
                    progress.update(len(block))
        except (http.client.IncompleteRead, ConnectionError, socket.timeout) as exc:
            raise FetchError(f"{url}: download interrupted at {part.stat().st_size} bytes ({type(exc).__name__}); "
                             "run the same command again to resume") from None
        finally:
            progress.close()
    size = part.stat().st_size
    if total is not None and size < total:
        raise FetchError(f"{url}: download stopped at {size} of {total} bytes; run the same command again to resume")


def fetch_file(remote: Remote, downloads: Path, allow_unpinned: bool = False, mirror: str | None = None,
               progress_stream=None) -> Path:
    """One verified file in ``downloads`` (downloaded, resumed or already there); a corrupt download is deleted."""
    if remote.sha256 is None and not allow_unpinned:
        raise FetchError(f"{remote.url} has no pinned sha256 yet: pass --allow-unpinned to fetch it unverified "
                         "(it prints the sha256 to pin in trainer/fetch.py)")
    final = downloads / remote.name
    if final.is_file() and remote.sha256 and sha256_of(final) == remote.sha256:
        return final
    downloads.mkdir(parents=True, exist_ok=True)
    part = downloads / (remote.name + ".part")
    url = mirror.rstrip("/") + "/" + remote.name if mirror else remote.url
    download(url, part, progress_stream)
    digest = sha256_of(part)
    if remote.sha256 is None:
        log.warning("%s is not pinned: its sha256 is %s (pin it in trainer/fetch.py)", remote.name, digest)
    elif digest != remote.sha256:
        part.unlink()
        raise FetchError(f"{url}: sha256 {digest} is not the pinned {remote.sha256}: the download is corrupt "
                         "or the file changed at its origin; deleted it, run again to retry")
    os.replace(part, final)
    return final
