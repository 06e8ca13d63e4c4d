"""Where the real training data lives, and ``digitcam data fetch``, which puts it there from its origins.

The trainer reads each data set from one folder (``data_root``): ``$DIGITCAM_DATA`` when set, else the
team's ``../shared/data`` beside the project when it exists, else ``~/.cache/digitcam/data`` (under
``$DIGITCAM_CACHE``), which is where ``fetch`` writes by default. Inside it the layout is the one the
trainer has always read: ``meter-digits/meter_digits_dev.tar.gz``, ``mnist/mnist.npz``,
``svhn/{train,test}/digitStruct.mat`` + PNGs.

``DATASETS`` is the registry: each data set's files at their origins with their pinned sha256, how
they are installed, and their licence. Each file is fetched, resumed and verified by
``trainer.download`` (``DEST/.downloads/NAME.part`` first; ``--allow-unpinned`` for files with no pin
yet, printing the sha256 to pin); the meter digits are converted by ``trainer.meter_archive``.
See docs/DATA.md.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from device.errors import DigitcamError
from trainer.download import FetchError, Remote, fetch_file
from trainer.meter_archive import convert_meters
from trainer.streams import cache_dir

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# the meter digits inside the data folder (trainer.meters reads them)
METER_ARCHIVE = "meter-digits/meter_digits_dev.tar.gz"


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
