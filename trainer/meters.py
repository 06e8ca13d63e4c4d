"""Real meter digits (meter-digits/ of the data folder, see trainer.fetch): single crops, and strips of crops from one meter.

Labels follow the reading rule of a meter: it shows its last fully passed digit. A wheel caught
between D and D+1 at fraction f reads D for f <= 0.5 (class 10 rows with f 0.3-0.5 become D), reads
D+1 from f >= 0.8 (the archive's class already says so); f 0.6-0.7 is too ambiguous to teach and is
left out, as are unlabelled (NaN) crops.

The split is by meter, never by image: sources that are one meter or one collection under two names
are grouped (``GROUP_RULES``), and whole groups go to val or test (see ``split_groups``), so no
validation meter is ever seen in training.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from trainer import effects
from trainer.skips import skip
from trainer.fetch import METER_ARCHIVE, data_root, missing
from trainer.meter_archive import METER_FOLDER
from trainer.streams import cache_dir, passes

log = logging.getLogger(__name__)

ARCHIVE, FOLDER = METER_ARCHIVE, METER_FOLDER
# (source prefix, group): names that are one meter (or one contributor's mixed collection) go together.
GROUP_RULES = (
    ("images/collected/powermeter/ISKRA", "iskra-t3f"),
    ("images/collected/powermeter/emeter1", "emeter1"),
    ("images/collected/powermeter/unknown/iotson/emeter1", "emeter1"),
    ("images/neural-network-autotrain-digital-counter", "autotrain"),
    ("images/ziffer_raw", "autotrain"),
    ("images/jomjol", "jomjol"),
    ("images/collected/lcd", "lcd"),
    ("images/collected/watermeter/Unknown/iotson", "iotson-water"),
    ("images/collected/watermeter/Metrona", "metrona"),
)
# Mixed collections of many meters that may overlap others: always training data.
TRAIN_ONLY = ("images", "datasets/meterdigits")
HELD_OUT_SHARE = 0.15  # of usable images, for each of val and test
HELD_OUT_GROUPS = 4  # groups per held-out split (~15 % of the 23 groups)
MAX_HELD_OUT_GROUP_SHARE = 0.2  # a group this big is too much of the data to hold out
MIN_HELD_OUT_GROUP = 20
EVAL_ORDER_SEED = 0  # val/test order: fixed, so every run evaluates on the same crops
ROLLING_READS_CURRENT = ("0.3", "0.4", "0.5")
ROLLING_AMBIGUOUS = ("0.6", "0.7")
CROP_KINDS = ("clean", "rolling", "midroll", "all")  # what iter_meter_digits(kind=...) can keep to


@dataclass(frozen=True)
class MeterCrop:
    path: Path
    label: str  # one digit
    source: str
    rolling: bool  # caught between two digits (archive class 10), labelled by the reading rule
    midroll: bool = False  # f 0.6-0.7: half-way, read D or D+1 at random in training (docs/MODEL.md)

    def label_for(self, rng: np.random.Generator) -> str:
        """The label to train on: mid-roll wheels say D or D+1, half each, so the model learns 'unsure'."""
        if self.midroll and rng.random() < 0.5:
            return str((int(self.label) + 1) % 10)
        return self.label


def group_of(source: str) -> str:
    for prefix, group in GROUP_RULES:
        if source.startswith(prefix):
            return group
    return source


def archive_path() -> Path:
    return data_root() / ARCHIVE


def extracted_dir(archive: Path | None = None) -> Path:
    """The archive extracted once into the cache (never into the repository); returns its folder."""
    archive = archive or archive_path()
    target = cache_dir() / FOLDER
    if (target / "labels.csv").is_file():
        return target
    if not archive.is_file():
        raise missing("meter digits", archive, "meters")
    log.info("extracting %s into %s (once)", archive, cache_dir())
    cache_dir().mkdir(parents=True, exist_ok=True)
    # Extract beside the target and rename, so a second process never sees a half-extracted folder.
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".extract-") as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.rename(Path(tmp) / FOLDER, target)
        except OSError:  # another process finished first
            if not (target / "labels.csv").is_file():
                raise
    return target


def label_of(row: dict) -> tuple[str, bool] | None:
    """(digit label, rolling) by the reading rule, or None for crops left out (NaN, f 0.6-0.7)."""
    if not row.get("digit") or row.get("class") in ("", None):
        return None
    if row["class"] != "10":
        return row["class"], False
    if row["fraction"] in ROLLING_READS_CURRENT:
        return row["digit"], True
    return None


def is_midroll(row: dict) -> bool:
    """A wheel half-way between two digits (class 10, f 0.6-0.7): no reading rule can say which it shows."""
    return bool(row.get("digit")) and row.get("class") == "10" and row.get("fraction") in ROLLING_AMBIGUOUS


@lru_cache(maxsize=2)
def load_crops(folder: Path | None = None) -> tuple[MeterCrop, ...]:
    """Every usable crop of the archive, in file order; malformed rows are skipped with a counted warning."""
    folder = folder or extracted_dir()
    crops = []
    with open(folder / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            try:
                labelled = label_of(row)
            except (KeyError, TypeError) as exc:
                skip("meter-label", f"{row}: {exc}")
                continue
            midroll = labelled is None and is_midroll(row)
            if midroll:
                labelled = row["digit"], True
            if labelled is None:
                continue
            label, rolling = labelled
            if not (label.isdigit() and len(label) == 1):
                skip("meter-label", f"{row.get('path')}: digit {label!r}")
                continue
            crops.append(MeterCrop(folder / row["path"], label, row["source"], rolling, midroll))
    return tuple(crops)


def split_groups(crops: tuple[MeterCrop, ...]) -> dict[str, set[str]]:
    """Groups of each held-out split, chosen deterministically from the data itself.

    Candidates (groups of 20 images up to 20 % of the data, not mixed collections) are ordered by a
    hash of their name; for val, then test, the set of HELD_OUT_GROUPS candidates whose image count is
    closest to HELD_OUT_SHARE of the data is taken (the first such set in that order). The rest train.
    """
    counts: dict[str, int] = {}
    for c in crops:
        g = group_of(c.source)
        counts[g] = counts.get(g, 0) + 1
    total = sum(counts.values())
    candidates = sorted(
        (g for g, n in counts.items()
         if g not in TRAIN_ONLY and MIN_HELD_OUT_GROUP <= n <= MAX_HELD_OUT_GROUP_SHARE * total),
        key=lambda g: (zlib.crc32(g.encode()), g),
    )
    held: dict[str, set[str]] = {}
    for split in ("val", "test"):
        k = min(HELD_OUT_GROUPS, len(candidates))
        best = min(
            itertools.combinations(candidates, k),
            key=lambda combo: abs(sum(counts[g] for g in combo) - HELD_OUT_SHARE * total),
        )
        held[split] = set(best)
        candidates = [g for g in candidates if g not in best]
    return held


def crops_of_split(split: str, folder: Path | None = None) -> list[MeterCrop]:
    """The crops whose meter belongs to this split."""
    crops = load_crops(folder)
    held = split_groups(crops)
    if split == "train":
        out = {*held["val"], *held["test"]}
        return [c for c in crops if group_of(c.source) not in out]
    return [c for c in crops if group_of(c.source) in held[split]]


def read_crop(crop: MeterCrop) -> np.ndarray | None:
    """The crop as RGB uint8, or None (counted warning) when the file is missing or corrupt."""
    img = cv2.imread(str(crop.path), cv2.IMREAD_COLOR)
    if img is None or img.shape[0] < 4 or img.shape[1] < 4:
        skip("meter-image", str(crop.path))
        return None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def eval_order(crops: list[MeterCrop]) -> list[MeterCrop]:
    """The val/test crops in a fixed shuffled order (the same for every run and seed)."""
    return [crops[i] for i in np.random.default_rng(EVAL_ORDER_SEED).permutation(len(crops))]


def augment_single(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training variety for one real crop: shifted/rescaled framing, sometimes inverted, mild camera effects."""
    h, w = img.shape[:2]
    pad = [int(v) for v in rng.integers(-1, max(2, h // 8), 4)]  # negative: cut into the crop a little
    img = cv2.copyMakeBorder(img, max(0, pad[0]), max(0, pad[1]), max(0, pad[2]), max(0, pad[3]),
                             cv2.BORDER_REPLICATE)
    img = img[max(0, -pad[0]) : img.shape[0] - max(0, -pad[1]), max(0, -pad[2]) : img.shape[1] - max(0, -pad[3])]
    if rng.random() < 0.2:
        img = 255 - img
    return effects.camera(img, rng, rng.uniform(0.0, 0.5))


def _mode_of(split: str, kind: str | None) -> str:
    kind = kind or ("all" if split == "train" else "clean")
    if kind not in CROP_KINDS:
        raise ValueError(f"unknown meter crop kind {kind!r}: want {', '.join(CROP_KINDS)}")
    return kind


def kind_of(crop: MeterCrop) -> str:
    """'clean' (a digit at rest), 'rolling' (f 0.3-0.5, read as D) or 'midroll' (f 0.6-0.7)."""
    return "midroll" if crop.midroll else "rolling" if crop.rolling else "clean"


def iter_meter_digits(split: str, rng: np.random.Generator, kind: str | None = None, folder: Path | None = None):
    """The ``meters`` source: single real digit crops.

    train: endless, reshuffled each pass, augmented; ``kind`` defaults to 'all' (clean and rolling).
    val/test: one unaugmented pass in a fixed shuffled order, the same for every seed, so the first n
    (``fixed_set``) mix all of the split's meters instead of the first meter in the archive;
    ``kind`` defaults to 'clean' (digits 0-9); ``kind='rolling'`` gives only the wheels caught mid-roll,
    so evaluation can report them apart; ``kind='midroll'`` the half-way wheels (labelled D; read D or
    D+1, with a low confidence, is right for them).
    """
    kind = _mode_of(split, kind)
    crops = [c for c in crops_of_split(split, folder) if kind == "all" or kind_of(c) == kind]
    if not crops:
        return
    if split != "train":
        crops = eval_order(crops)
    for i in passes(len(crops), split, rng):
        img = read_crop(crops[i])
        if img is None:
            continue
        if split == "train":
            yield augment_single(img, rng), crops[i].label_for(rng)
        else:
            yield img, crops[i].label


def iter_midroll_digits(split: str, rng: np.random.Generator, folder: Path | None = None):
    """The ``meter-midroll`` source: only the half-way wheels (labelled D or D+1 at random in training), so a
    mix can give them more weight than their share of the archive."""
    return iter_meter_digits(split, rng, kind="midroll", folder=folder)


# ---- strips ---------------------------------------------------------------------------------------


def compose_strip(parts: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Crops side by side as on a real meter: one height (slightly jittered), small gaps or dividers."""
    height = int(np.median([p.shape[0] for p in parts]))
    divider = rng.random() < 0.4
    gap = int(rng.integers(1, 4)) if divider else int(rng.integers(0, 4))
    fill = np.median(np.concatenate([p[:, 0].reshape(-1, 3) for p in parts]), axis=0)
    if divider:
        fill = np.full(3, rng.uniform(0, 60) if rng.random() < 0.7 else rng.uniform(180, 255))
    resized = []
    for p in parts:
        ph = max(4, int(height * rng.uniform(0.95, 1.05)))
        pw = max(2, round(p.shape[1] * ph / p.shape[0]))
        resized.append(cv2.resize(p, (pw, ph), interpolation=cv2.INTER_AREA))
    margin = max(1, height // 10)
    out_h = height + 2 * margin + 2
    width = sum(p.shape[1] for p in resized) + gap * (len(resized) - 1) + 2 * margin
    strip = np.empty((out_h, width, 3), np.uint8)
    strip[:] = fill.astype(np.uint8)
    x = margin
    for p in resized:
        y = min(out_h - p.shape[0], max(0, margin + 1 + int(rng.integers(-1, 2))))
        strip[y : y + p.shape[0], x : x + p.shape[1]] = p[: out_h - y]
        x += p.shape[1] + gap
    if strip.shape[1] > 6 * strip.shape[0]:  # keep within the crops' 6:1
        extra = strip.shape[1] // 6 - strip.shape[0] + 1
        strip = cv2.copyMakeBorder(strip, extra // 2, extra - extra // 2, 0, 0, cv2.BORDER_REPLICATE)
    return strip


def iter_meter_strips(split: str, rng: np.random.Generator, limit: int | None = None, folder: Path | None = None):
    """The ``meter-strips`` source: 3-8 crops of ONE meter side by side, the rightmost maybe rolling.

    Endless for every split unless ``limit`` is given; val/test are deterministic from the seed and
    use only their own meters. Meters are drawn in proportion to the square root of their crop count,
    so small meters are seen too.
    """
    by_source: dict[str, tuple[list[MeterCrop], list[MeterCrop]]] = {}
    for c in crops_of_split(split, folder):
        clean, rolling = by_source.setdefault(c.source, ([], []))
        if split == "train" or not c.midroll:  # held-out strips keep to the readable rule
            (rolling if c.rolling else clean).append(c)
    sources = sorted(s for s, (clean, _) in by_source.items() if len(clean) >= 3)
    if not sources:
        return
    weights = np.sqrt([len(by_source[s][0]) for s in sources])
    weights /= weights.sum()
    made = 0
    while limit is None or made < limit:
        clean, rolling = by_source[sources[int(rng.choice(len(sources), p=weights))]]
        n = int(rng.integers(3, 9))
        picks = [clean[int(i)] for i in rng.integers(0, len(clean), n)]
        if rolling and rng.random() < 0.3:
            picks[-1] = rolling[int(rng.integers(len(rolling)))]
        parts = [read_crop(p) for p in picks]
        if any(p is None for p in parts):
            continue
        strip = compose_strip(parts, rng)
        strip = effects.camera(strip, rng, rng.uniform(0.0, 0.5) if split == "train" else 0.2)
        made += 1
        yield strip, "".join(p.label_for(rng) if split == "train" else p.label for p in picks)
