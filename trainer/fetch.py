"""Where the real training data lives, and ``digitcam data fetch``, which puts it there from its origins.

The trainer reads each data set from one folder (``data_root``): ``$DIGITCAM_DATA`` when set, else the
team's ``../shared/data`` beside the project when it exists, else ``~/.cache/digitcam/data`` (under
``$DIGITCAM_CACHE``), which is where ``fetch`` writes by default. Inside it the layout is the one the
trainer has always read: ``meter-digits/meter_digits_dev.tar.gz``, ``mnist/mnist.npz``,
``svhn/{train,test}/digitStruct.mat`` + PNGs.

A download goes to ``DEST/.downloads/NAME.part`` first, so an interrupted one resumes with an HTTP
range request; it is checked against its pinned sha256 before anything is installed, and a corrupt one
is deleted. Files without a pinned sha256 (ones that could not be hashed where this was written) are
fetched only with ``--allow-unpinned``, which prints the sha256 to pin. See docs/DATA.md.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import logging
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from device.errors import DigitcamError
from trainer.streams import cache_dir

log = logging.getLogger(__name__)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# the meter digits inside the data folder, and the folder their archive unpacks to (trainer.meters reads them)
METER_ARCHIVE = "meter-digits/meter_digits_dev.tar.gz"
METER_FOLDER = "meter_digits_dev"
CHUNK = 1 << 16
TIMEOUT_S = 30


class FetchError(DigitcamError):
    """A download failed, did not match its pin, or its content is not in the expected layout."""


def data_root() -> Path:
    """The data folder the trainer reads: $DIGITCAM_DATA, else ../shared/data if present, else the fetch cache."""
    env = os.environ.get("DIGITCAM_DATA")
    if env:
        return Path(env)
    return SHARED if SHARED.is_dir() else default_dest()


def default_dest() -> Path:
    """Where ``fetch`` installs without --dest: $DIGITCAM_DATA, else ``<cache>/data``."""
    env = os.environ.get("DIGITCAM_DATA")
    return Path(env) if env else cache_dir() / "data"


class DataMissing(DigitcamError, FileNotFoundError):
    """A data set is not in the data folder (a DigitcamError, so the CLI says it in one line)."""


def missing(what: str, path: Path, dataset: str) -> DataMissing:
    """The one error for absent data: where it was looked for and the command that brings it."""
    return DataMissing(f"{what} not found at {path}: run `digitcam data fetch {dataset}` "
                             f"(or set DIGITCAM_DATA to a folder that has {Path(*path.parts[-2:])})")


# ---- the pinned origins -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """One file at its origin: what it is called locally and the sha256 it must have (None: not pinned yet)."""

    url: str
    name: str
    sha256: str | None


@dataclass(frozen=True)
class Dataset:
    name: str
    files: tuple[Remote, ...]
    install: Callable[[dict[str, Path], Path], Path]  # downloaded files by name, dest -> what it installed
    licence: str


METERS_REPO = "haverland/Tenth-of-step-of-a-meter-digit"
METERS_COMMIT = "69bb445fbd64c91f1776bb9f43b7a1ca87b64dbe"


def install_meters(files: dict[str, Path], dest: Path) -> Path:
    """The upstream repository's tree -> the trainer's archive (labels.csv + images/), see ``convert_meters``."""

    target = dest / METER_ARCHIVE
    convert_meters(files["meters.tar.gz"], target)
    return target


def install_mnist(files: dict[str, Path], dest: Path) -> Path:
    """mnist.npz is already the trainer's layout; refuse one without the four arrays."""
    import numpy as np

    src = files["mnist.npz"]
    with np.load(src) as data:
        absent = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if absent:
            raise FetchError(f"{src} is not MNIST: it lacks {', '.join(sorted(absent))}")
    target = dest / "mnist" / "mnist.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return target


def install_svhn(files: dict[str, Path], dest: Path) -> Path:
    """Format 1 archives unpack to train/ and test/ (digitStruct.mat + PNGs), the layout trainer.svhn reads."""
    target = dest / "svhn"
    for name, path in sorted(files.items()):
        with tarfile.open(path) as tar:
            tar.extractall(target, filter="data")
        split = name.split(".")[0]
        if not (target / split / "digitStruct.mat").is_file():
            raise FetchError(f"{path} has no {split}/digitStruct.mat: not SVHN format 1")
    return target


DATASETS = {
    "meters": Dataset(
        "meters",
        (Remote(f"https://codeload.github.com/{METERS_REPO}/tar.gz/{METERS_COMMIT}", "meters.tar.gz", None),),
        install_meters,
        "Apache-2.0, Frank Haverland and contributors",
    ),
    "mnist": Dataset(
        "mnist",
        # The copy Keras's mnist.load_data() reads; the pin is the one Keras itself checks.
        (Remote("https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz", "mnist.npz",
                "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),),
        install_mnist,
        "CC BY-SA 3.0, Yann LeCun, Corinna Cortes, Christopher J. C. Burges",
    ),
    "svhn": Dataset(
        "svhn",
        (Remote("http://ufldl.stanford.edu/housenumbers/train.tar.gz", "train.tar.gz", None),
         Remote("http://ufldl.stanford.edu/housenumbers/test.tar.gz", "test.tar.gz", None)),
        install_svhn,
        "non-commercial use only, Netzer et al. 2011",
    ),
}


# ---- downloading ------------------------------------------------------------------------------------


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


def fetch(name: str, dest: Path | None = None, allow_unpinned: bool = False, mirror: str | None = None,
          datasets: dict[str, Dataset] | None = None, progress_stream=None, keep_downloads: bool = False) -> Path:
    """Download, verify and install one data set into ``dest``; returns what the trainer will read."""
    datasets = datasets or DATASETS
    if name not in datasets:
        raise FetchError(f"unknown data set {name!r}: want one of {', '.join(datasets)}")
    dataset, dest = datasets[name], Path(dest or default_dest())
    downloads = dest / ".downloads"
    files = {r.name: fetch_file(r, downloads, allow_unpinned, mirror, progress_stream) for r in dataset.files}
    installed = dataset.install(files, dest)
    if not keep_downloads:
        for path in files.values():
            path.unlink()
    return installed


# ---- the meter digits: the upstream tree -> labels.csv + images/ -------------------------------------

LABEL = re.compile(r"^(\d)(?:\.(\d+))?$")  # D.F, or D alone (an LCD digit: D.0)
FLOAT_NOISE = 8  # decimals of a float printed unrounded upstream (2.3000000000000003 = 2.3)
UNREADABLE = ("NaN", "nan", "10")
# trailing folders that sort one meter's crops (by label or by date), not a meter of their own
SORTING_FOLDER = re.compile(r"^(\d+|\d\.\d|NaN|nan)$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def meter_row(path: str) -> dict | None:
    """A labels.csv row for an upstream file ``images/.../D.F_name.jpg`` (None: not a labelled crop).

    The label is the file name's first ``_`` field: ``D.F`` (digit D rolled F/10 towards D+1), ``D``
    (D.0) or NaN/10 (unreadable); a float printed unrounded (``2.3000000000000003``) is its tenth; class follows the archive rule (f <= 0.2: D, f >= 0.8: D+1, else 10).
    The source is the folder, less trailing folders that only sort one meter's crops.
    """
    parts = path.split("/")
    token = parts[-1].rsplit(".", 1)[0].split("_", 1)[0]
    folders = parts[:-1]
    while len(folders) > 1 and SORTING_FOLDER.match(folders[-1]):
        folders.pop()
    source = "/".join(folders)
    if token in UNREADABLE:
        return {"digit": "", "fraction": "", "class": "10", "source": source}
    m = LABEL.match(token)
    if not m or len(m.group(2) or "0") not in (1, *range(FLOAT_NOISE, 20)):
        return None
    tenths = round(float(token) * 10)
    digit, tenth = tenths // 10, tenths % 10
    if digit > 9:
        return None
    cls = digit if tenth <= 2 else (digit + 1) % 10 if tenth >= 8 else 10
    return {"digit": str(digit), "fraction": f"0.{tenth}", "class": str(cls), "source": source}


def convert_meters(upstream: Path, target: Path) -> int:
    """Write the trainer's meter archive from the upstream repository tarball; returns the crops kept.

    Only ``images/`` is read (``datasets/`` holds resized copies of it). Identical files are kept once
    (the first by path); content seen with two different classes is dropped, as are unparsable names.
    """

    kept: dict[str, tuple[str, dict, bytes]] = {}
    conflicting: set[str] = set()
    unparsed = 0
    with tarfile.open(upstream) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for member in members:
            rel = member.name.split("/", 1)[1] if "/" in member.name else member.name  # drop <repo>-<commit>/
            if not rel.startswith("images/") or not rel.lower().endswith(IMAGE_SUFFIXES):
                continue
            row = meter_row(rel)
            if row is None:
                unparsed += 1
                continue
            data = tar.extractfile(member).read()
            digest = hashlib.sha256(data).hexdigest()
            if digest in kept:
                if kept[digest][1]["class"] != row["class"]:
                    conflicting.add(digest)
                continue
            kept[digest] = (rel.rsplit("/", 1)[1], row, data)
    for digest in conflicting:
        del kept[digest]
    if not kept:
        raise FetchError(f"{upstream} holds no labelled meter crops under images/: not the meter-digit repository")
    target.parent.mkdir(parents=True, exist_ok=True)
    labels = io.StringIO()
    writer = csv.DictWriter(labels, fieldnames=["path", "digit", "fraction", "class", "source"], lineterminator="\n")
    writer.writeheader()
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False) as tmp:
        with tarfile.open(fileobj=tmp, mode="w:gz") as out:
            for digest, (name, row, data) in kept.items():
                path = f"images/{digest[:12]}_{name}"
                writer.writerow({"path": path, **row})
                _add(out, f"{METER_FOLDER}/{path}", data)
            _add(out, f"{METER_FOLDER}/labels.csv", labels.getvalue().encode())
    os.replace(tmp.name, target)
    log.info("meter digits: %d crops (%d duplicates with conflicting labels dropped, %d names not labels)",
             len(kept), len(conflicting), unparsed)
    return len(kept)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# ---- the command ------------------------------------------------------------------------------------


def main(args) -> int:
    """``digitcam data fetch NAME... [--dest DIR]``: each data set, verified, into the trainer's folder."""
    dest = Path(args.dest) if args.dest else default_dest()
    for name in args.datasets:
        installed = fetch(name, dest, allow_unpinned=args.allow_unpinned, mirror=args.mirror)
        print(f"{name}: {installed} ({DATASETS[name].licence})", flush=True)
    if dest.resolve() != data_root().resolve():
        print(f"the trainer reads {data_root()}: set DIGITCAM_DATA={dest} to train on this copy", flush=True)
    return 0
