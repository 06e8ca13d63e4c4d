"""The meter digits as the trainer reads them, made from the upstream repository's tree.

Upstream names each crop by its reading (``images/<meter>/.../D.F_name.jpg``); ``convert_meters`` turns
that tree into the trainer's archive: ``METER_FOLDER/labels.csv`` (path, digit, fraction, class,
source) and ``METER_FOLDER/images/``, identical files kept once. ``trainer.fetch`` installs the result
in the data folder; ``trainer.meters`` reads it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import tarfile
import tempfile
from pathlib import Path

from trainer.download import FetchError

log = logging.getLogger(__name__)

# the folder the trainer's meter archive unpacks to
METER_FOLDER = "meter_digits_dev"
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

