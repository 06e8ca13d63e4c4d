"""One sensor's folder of crops, bounded and balanced: written atomically, the most redundant dropped first.

Over ``collect_max_mb`` the store drops from the fullest bucket of the lowest wheel's digit the oldest crop
of its most frequent value (most redundant, oldest first); review crops keep at most a fifth of the budget,
oldest dropped first; human labels go last. A write is a temporary file, fsynced and renamed: a SIGKILL
leaves only whole files (and a ``.tmp`` that the next open removes).
"""

from __future__ import annotations

import os
import threading
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from device.crop_files import AUTO, HUMAN, KINDS, REVIEW, Crop, CropError, crop_name, relabel_file, scan

REVIEW_SHARE = 0.2  # of collect_max_mb, for unlabelled low-confidence crops


def balance_key(label: str | None) -> str:
    """Crops are balanced by the lowest wheel's digit: on a meter it is the one that shows every digit."""
    return label[-1] if label else "x"


class CropStore:
    """One sensor's folder of crops, bounded to ``max_bytes``. Used from one thread (the writer)."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.folder.mkdir(parents=True, exist_ok=True)
        for tmp in self.folder.glob("*.tmp"):  # a write that a crash cut short
            tmp.unlink(missing_ok=True)
        self.crops: dict[str, Crop] = {c.name: c for c in scan(self.folder) if c.path.parent == self.folder}
        self.bytes = sum(c.size for c in self.crops.values())
        self._seq = len(self.crops)
        self._lock = threading.Lock()

    # ---- what the stats and the command line see ----------------------------------------------------

    def counts(self) -> dict:
        with self._lock:
            kinds = Counter(c.kind for c in self.crops.values())
            digits = Counter(balance_key(c.label) for c in self.crops.values() if c.label is not None)
            return {"crops": len(self.crops), **{k: kinds.get(k, 0) for k in KINDS},
                    "bytes": self.bytes, "max_bytes": self.max_bytes, "by_digit": dict(sorted(digits.items()))}

    # ---- writes ------------------------------------------------------------------------------------

    def add(self, image: np.ndarray, label: str | None, kind: str, at: float, raw: str | None = None,
            confidence: float = 0.0) -> Crop:
        """Write one crop atomically (temp file, fsync, rename), then drop crops until under the bound."""
        import cv2

        if kind not in KINDS:
            raise CropError(f"unknown crop kind {kind!r}")
        ok, png = cv2.imencode(".png", np.ascontiguousarray(image))
        if not ok:
            raise CropError("the crop could not be encoded as PNG")
        self._seq += 1
        path = self.folder / crop_name(at, self._seq, kind, label, raw, confidence)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(png.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        crop = Crop(path, at, kind, label, raw, confidence, len(png))
        with self._lock:
            self.crops[crop.name] = crop
            self.bytes += crop.size
        self.enforce()
        return crop

    def relabel(self, name: str, label: str | None) -> Crop:
        """A person's label for a crop (``None``: back to review): renamed, so it survives everything."""
        crop = self.crops.get(name)
        if crop is None:
            raise CropError(f"no crop {name} in {self.folder}")
        moved = relabel_file(crop, label)
        with self._lock:
            del self.crops[name]
            self.crops[moved.name] = moved
        return moved

    def enforce(self) -> int:
        """Drop crops until the store fits its bound; returns how many were dropped."""
        dropped = 0
        review_cap = int(self.max_bytes * REVIEW_SHARE)
        while True:
            victim = None
            review = [c for c in self.crops.values() if c.kind == REVIEW]
            if review and sum(c.size for c in review) > review_cap:
                victim = min(review, key=lambda c: (c.at, c.name))
            elif self.bytes > self.max_bytes:
                victim = self._most_redundant()
            if victim is None:
                return dropped
            victim.path.unlink(missing_ok=True)
            with self._lock:
                del self.crops[victim.name]
                self.bytes -= victim.size
            dropped += 1

    def _most_redundant(self) -> Crop | None:
        """The oldest crop of the most frequent value in the fullest digit bucket; review, then human last."""
        for kinds in ((REVIEW,), (AUTO,), (HUMAN,)):
            pool = [c for c in self.crops.values() if c.kind in kinds]
            if not pool:
                continue
            buckets: dict = defaultdict(list)
            for c in pool:
                buckets[balance_key(c.label)].append(c)
            fullest = max(buckets.values(), key=len)
            values = Counter(c.label for c in fullest)
            top = max(values.values())
            return min((c for c in fullest if values[c.label] == top), key=lambda c: (c.at, c.name))
        return None
