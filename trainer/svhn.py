"""SVHN format 1 (house numbers from Street View), for users who have a copy: digitStruct.mat + PNGs.

``digitStruct.mat`` is MATLAB v7.3, i.e. HDF5: ``digitStruct/name[i]`` references a uint16 string and
``digitStruct/bbox[i]`` a group with fields height/left/top/width/label, each holding the value itself
when the image has one digit and references to scalars when it has several. Label 10 means digit 0.

Crops follow Goodfellow et al. 2013: the union of the digit boxes expanded by 30 %, then (train only)
a random sub-crop. Records without a usable box and unreadable images are skipped with a counted warning.

Which records go to which split: with ``train/`` and ``test/`` subfolders (the official layout; an
``extra/`` folder joins train), test is ``test/`` and val is the 1 in 20 train records picked by a hash
of the file name; a single folder is split by that hash alone (1/20 val, 1/20 test, the rest train).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np

from device.contract import MAX_DIGITS
from trainer.skips import skip
from trainer.streams import passes

log = logging.getLogger(__name__)

FIELDS = ("height", "left", "top", "width", "label")
EXPAND = 0.3
VAL_BUCKET, TEST_BUCKET, BUCKETS = 0, 1, 20


@dataclass(frozen=True)
class SvhnRecord:
    path: Path
    label: str
    box: tuple[float, float, float, float]  # union of the digit boxes: x0, y0, x1, y1


def _values(f: h5py.File, dataset: h5py.Dataset) -> list[float]:
    """A bbox field: the value itself (one digit) or references to one scalar per digit."""
    if h5py.check_dtype(ref=dataset.dtype) is not None:
        return [float(np.asarray(f[ref]).reshape(-1)[0]) for ref in np.asarray(dataset).reshape(-1)]
    return [float(v) for v in np.asarray(dataset).reshape(-1)]


def read_digit_struct(mat_path: Path) -> list[SvhnRecord]:
    """All usable records of one digitStruct.mat; malformed ones are skipped with a counted warning."""
    folder = mat_path.parent
    records = []
    with h5py.File(mat_path, "r") as f:
        names, boxes = f["digitStruct/name"], f["digitStruct/bbox"]
        for i in range(names.shape[0]):
            try:
                name = "".join(chr(int(c)) for c in np.asarray(f[names[i, 0]]).reshape(-1))
                group = f[boxes[i, 0]]
                fields = {k: _values(f, group[k]) for k in FIELDS}
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                skip("svhn-record", f"{mat_path} record {i}: {exc}")
                continue
            n = len(fields["label"])
            if n == 0 or n > MAX_DIGITS or any(len(v) != n for v in fields.values()):
                skip("svhn-record", f"{name}: {n} labels, boxes {[len(v) for v in fields.values()]}")
                continue
            if min(fields["width"]) <= 0 or min(fields["height"]) <= 0:
                skip("svhn-record", f"{name}: empty box")
                continue
            label = "".join(str(int(v) % 10) for v in fields["label"])
            x0 = min(fields["left"])
            y0 = min(fields["top"])
            x1 = max(lft + w for lft, w in zip(fields["left"], fields["width"]))
            y1 = max(t + h for t, h in zip(fields["top"], fields["height"]))
            records.append(SvhnRecord(folder / name, label, (x0, y0, x1, y1)))
    return records


def _bucket(record: SvhnRecord) -> int:
    return zlib.crc32(record.path.name.encode()) % BUCKETS


def records_of_split(svhn_dir: Path, split: str) -> list[SvhnRecord]:
    """The records of a split, by the folder layout described in the module docstring."""
    svhn_dir = Path(svhn_dir)
    official = (svhn_dir / "train" / "digitStruct.mat").is_file()
    if official:
        if split == "test":
            return read_digit_struct(svhn_dir / "test" / "digitStruct.mat")
        train = read_digit_struct(svhn_dir / "train" / "digitStruct.mat")
        if split == "train" and (svhn_dir / "extra" / "digitStruct.mat").is_file():
            train += read_digit_struct(svhn_dir / "extra" / "digitStruct.mat")
        keep = (lambda b: b == VAL_BUCKET) if split == "val" else (lambda b: b != VAL_BUCKET)
        return [r for r in train if keep(_bucket(r))]
    mat = svhn_dir / "digitStruct.mat"
    if not mat.is_file():
        raise FileNotFoundError(f"no digitStruct.mat in {svhn_dir} (nor in {svhn_dir}/train): not SVHN format 1")
    records = read_digit_struct(mat)
    wanted = {"val": {VAL_BUCKET}, "test": {TEST_BUCKET}}.get(split)
    if wanted is None:
        return [r for r in records if _bucket(r) not in (VAL_BUCKET, TEST_BUCKET)]
    return [r for r in records if _bucket(r) in wanted]


def goodfellow_crop(image: np.ndarray, box, rng: np.random.Generator | None) -> np.ndarray:
    """The digits' union box expanded by 30 %, then a random sub-crop of up to 10 % per side when rng is given."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * (1 + EXPAND), (y1 - y0) * (1 + EXPAND)
    ex0, ey0, ex1, ey1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if rng is not None:
        cut = rng.uniform(0, 0.1, 4) * np.array([w, h, w, h]) * (EXPAND / (1 + EXPAND)) * 2
        ex0, ey0, ex1, ey1 = ex0 + cut[0], ey0 + cut[1], ex1 - cut[2], ey1 - cut[3]
    H, W = image.shape[:2]
    ix0, iy0 = int(max(0, np.floor(ex0))), int(max(0, np.floor(ey0)))
    ix1, iy1 = int(min(W, np.ceil(ex1))), int(min(H, np.ceil(ey1)))
    return image[iy0:iy1, ix0:ix1]


def iter_svhn(split: str, rng: np.random.Generator, svhn_dir: Path | str | None = None):
    """The ``svhn`` source: train endless and shuffled with random sub-crops; val/test one pass, centred."""
    if svhn_dir is None:
        raise ValueError("the svhn source needs svhn_dir= (a folder with digitStruct.mat and PNGs)")
    records = records_of_split(Path(svhn_dir), split)
    if not records:
        return
    for i in passes(len(records), split, rng):
        rec = records[i]
        img = cv2.imread(str(rec.path), cv2.IMREAD_COLOR)
        if img is None:
            skip("svhn-image", str(rec.path))
            continue
        crop = goodfellow_crop(img, rec.box, rng if split == "train" else None)
        if crop.shape[0] < 4 or crop.shape[1] < 4:
            skip("svhn-record", f"{rec.path.name}: box outside the image")
            continue
        yield cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), rec.label
