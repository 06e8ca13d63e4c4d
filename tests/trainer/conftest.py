"""Fixtures for the trainer tests: a tiny SVHN format-1 folder written the way MATLAB v7.3 writes it."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

# (file name, [(digit label as SVHN stores it: 10 = '0', left, top, width, height), ...]) for each record.
SVHN_RECORDS = [
    ("1.png", [(1, 20, 10, 14, 28), (10, 36, 10, 14, 28)]),  # "10": two digits -> bbox fields hold references
    ("2.png", [(7, 30, 12, 16, 30)]),  # one digit -> bbox fields hold the values themselves
    ("3.png", [(4, 10, 8, 14, 26), (2, 26, 8, 14, 26), (9, 42, 8, 14, 26)]),
    ("4.png", [(5, 25, 10, 15, 28)]),  # its PNG is corrupt: skipped when read
    ("5.png", None),  # a record whose bbox lacks the label field: skipped when loaded
]


def _draw_png(path: Path, boxes) -> None:
    img = np.full((50, 80, 3), 200, np.uint8)
    for label, left, top, width, height in boxes:
        cv2.putText(img, str(label % 10), (left, top + height), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
    cv2.imwrite(str(path), img)


def write_digit_struct(folder: Path, records) -> Path:
    """digitStruct.mat as MATLAB v7.3 stores it: HDF5, names and bbox groups behind object references."""
    path = folder / "digitStruct.mat"
    ref = h5py.ref_dtype
    with h5py.File(path, "w") as f:
        store = f.create_group("#refs#")
        top = f.create_group("digitStruct")
        names = top.create_dataset("name", (len(records), 1), dtype=ref)
        bboxes = top.create_dataset("bbox", (len(records), 1), dtype=ref)
        for i, (name, boxes) in enumerate(records):
            names[i, 0] = store.create_dataset(f"n{i}", data=np.array([[ord(c)] for c in name], np.uint16)).ref
            group = store.create_group(f"b{i}")
            fields = ("label", "left", "top", "width", "height") if boxes is not None else ("left", "top")
            rows = boxes if boxes is not None else [(0, 1, 1, 1, 1)]
            for k, field in enumerate(("label", "left", "top", "width", "height")):
                if field not in fields:
                    continue
                values = [float(r[k]) for r in rows]
                if len(values) == 1:
                    group.create_dataset(field, data=np.array([[values[0]]]))
                else:
                    refs = [store.create_dataset(f"b{i}{field}{j}", data=np.array([[v]])).ref for j, v in enumerate(values)]
                    group.create_dataset(field, data=np.array(refs, dtype=ref).reshape(-1, 1))
            bboxes[i, 0] = group.ref
    return path


@pytest.fixture(scope="session")
def svhn_dir(tmp_path_factory) -> Path:
    """An official-layout SVHN folder (train/ and test/) with one corrupt PNG and one malformed record."""
    root = tmp_path_factory.mktemp("svhn")
    for split in ("train", "test"):
        folder = root / split
        folder.mkdir()
        for name, boxes in SVHN_RECORDS:
            if name == "4.png":
                (folder / name).write_bytes(b"not a png at all")
            elif boxes is not None:
                _draw_png(folder / name, boxes)
        write_digit_struct(folder, SVHN_RECORDS)
    return root
