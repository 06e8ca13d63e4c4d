"""The crop store: a sensor collects its own training crops, labelled by the values it accepted.

A meter is one camera on one set of wheels for years; the daemon's own accepted readings say what each
crop showed. With ``collect = true`` a sensor keeps the recognizer's prepared input crops (uint8 32x128,
``device.contract.prepare_crop``) in ``<state_dir>/crops/<sensor>/``, for ``digitcam adapt``:

* **Labels only from accepted values.** ``Collector`` (frame thread, cheap) holds the crops seen while
  value A was accepted. They are labelled A only when the next accepted value B follows A as a normal
  step (no hold, no doubt flag) and A itself was accepted that way: the values before and after agree.
  The crops of the last ``window + stable_reads`` frames before B (the wheel was turning) and any crop
  that already read B's digits where A and B differ are left out. In ``number`` mode a crop is labelled
  once its value stayed accepted ``2 * window`` frames longer. Everything else is dropped, except crops
  below ``min_confidence``, which are kept unlabelled for review (``digitcam crops label``).
* **Files.** One PNG per crop, its facts in its name
  (``<ms>-<seq>-<kind>-<label>-r<raw read>-c<confidence %>.png``, kind ``auto``/``human``/``review``),
  written to a temporary name, fsynced and renamed: a SIGKILL leaves only whole files (and a ``.tmp``
  that the next open removes). A human label is a rename, and outranks the pseudo-label.
* **Bounded and balanced.** Over ``collect_max_mb`` the store drops from the fullest bucket of the
  lowest wheel's digit the oldest crop of its most frequent value (most redundant, oldest first); review
  crops keep at most a fifth of the budget, oldest dropped first; human labels go last.
* **Off the frame thread.** ``CropCollection`` hands crops to one writer thread through a bounded queue;
  a full queue drops the crop and counts it, so a slow SD card never delays a frame.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.contract import Reading, prepare_crop
from device.errors import DigitcamError

log = logging.getLogger(__name__)

CROPS_DIR = "crops"  # in the state directory, one folder per sensor
AUTO, HUMAN, REVIEW = "auto", "human", "review"
KINDS = (AUTO, HUMAN, REVIEW)
REVIEW_SHARE = 0.2  # of collect_max_mb, for unlabelled low-confidence crops
SAMPLE_EVERY_S = 1.0  # a confident crop at most this often per sensor (frames a second apart look alike)
MAX_PENDING = 600  # crops held in memory per sensor until their label is known (~2.4 MB)
QUEUE = 256
OK_FLAGS = {"wrapped", "refresh"}  # flags of a normal step; any other flag is a doubt
NAME = re.compile(r"^(?P<ms>\d{13})-(?P<seq>\d{6})-(?P<kind>auto|human|review)-(?P<label>\d{1,8}|x)"
                  r"-r(?P<raw>\d{0,8}|x)-c(?P<conf>\d{3})\.png$")


class CropError(DigitcamError):
    """A crop store or crop name that cannot be used; the message names it."""


@dataclass(frozen=True)
class Crop:
    """One stored crop, as its file name says."""

    path: Path
    at: float  # wall time (s) it was seen
    kind: str
    label: str | None  # None: unlabelled (review)
    raw: str | None  # what the model read in that frame
    confidence: float
    size: int = 0

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sensor(self) -> str:
        return self.path.parent.name


def crop_name(at: float, seq: int, kind: str, label: str | None, raw: str | None, confidence: float) -> str:
    conf = int(round(min(max(confidence, 0.0), 1.0) * 100))
    return f"{int(at * 1000):013d}-{seq % 10 ** 6:06d}-{kind}-{label or 'x'}-r{raw if raw else 'x'}-c{conf:03d}.png"


def parse_name(path: Path, size: int = 0) -> Crop | None:
    """The Crop a file name describes, or None for a file that is not one of ours."""
    m = NAME.match(path.name)
    if m is None:
        return None
    label = None if m["label"] == "x" else m["label"]
    raw = None if m["raw"] in ("x", "") else m["raw"]
    return Crop(path, int(m["ms"]) / 1000.0, m["kind"], label, raw, int(m["conf"]) / 100.0, size)


def scan(folder: Path) -> list[Crop]:
    """Every crop under ``folder`` (a store, one sensor's folder, or crops fetched from many Pis), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CropError(f"{folder} is not a folder of crops")
    out = []
    for path in folder.rglob("*.png"):
        try:
            crop = parse_name(path, path.stat().st_size)
        except OSError:
            continue
        if crop is not None:
            out.append(crop)
    return sorted(out, key=lambda c: (c.at, c.name))


def read_crop(crop: Crop | Path) -> np.ndarray:
    """The stored crop as the model's uint8 input [32, 128]; a damaged file is a one-line CropError."""
    import cv2

    path = crop.path if isinstance(crop, Crop) else Path(crop)
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CropError(f"{path} is not a readable PNG")
    return image


def relabel_file(crop: Crop, label: str | None) -> Crop:
    """Rename a crop's file to carry a person's label (kind ``human``), or none (kind ``review``)."""
    kind = HUMAN if label is not None else REVIEW
    m = NAME.match(crop.name)
    new = crop.path.with_name(f"{m['ms']}-{m['seq']}-{kind}-{label or 'x'}-r{m['raw']}-c{m['conf']}.png")
    os.replace(crop.path, new)
    return Crop(new, crop.at, kind, label, crop.raw, crop.confidence, crop.size)


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


# ---- the frame thread's side -----------------------------------------------------------------------


@dataclass
class _Pending:
    frame: int
    at: float
    image: np.ndarray
    reading: Reading


def _ok(decision) -> bool:
    """Whether an acceptance was a normal step: no hold, no doubt (wrap and refresh are normal)."""
    return decision is not None and not (set(decision.flags) - OK_FLAGS)


class Collector:
    """One sensor's labelling rule (see the module doc). ``observe`` every frame; it returns the crops whose
    label is now known, as ``(image, label or None, kind, at, reading)``, for the writer."""

    def __init__(self, mode: str = "meter", window: int = 5, stable_reads: int = 3, min_confidence: float = 0.5,
                 sample_every_s: float = SAMPLE_EVERY_S, max_pending: int = MAX_PENDING):
        self.mode, self.window, self.stable_reads = mode, window, stable_reads
        self.min_confidence, self.sample_every_s, self.max_pending = min_confidence, sample_every_s, max_pending
        self.value: str | None = None  # the accepted value the pending crops were seen under
        self.ok = False  # whether that value was accepted as a normal step
        self.pending: list[_Pending] = []
        self._sampled_at = float("-inf")

    def observe(self, frame_no: int, at: float, reading: Reading, value: str | None, decision,
                image_of) -> list[tuple]:
        """One frame: ``value`` is the smoother's accepted value after this reading, ``decision`` what
        its update returned; ``image_of()`` makes the prepared crop (called only when it is kept)."""
        out: list[tuple] = []
        if value != self.value:
            out += self._resolve(value, frame_no) if (self.ok and _ok(decision) and self.value is not None) \
                else self._review(self.pending)
            self.pending = []
            self.value, self.ok = value, _ok(decision)
        elif self.mode == "number" and self.ok and self.value is not None:
            ripe = [p for p in self.pending if p.frame <= frame_no - 2 * self.window]
            if ripe:
                self.pending = self.pending[len(ripe):]
                out += [(p.image, self.value, AUTO, p.at, p.reading) for p in ripe]
        unsure = reading.value is None or reading.confidence < self.min_confidence
        if unsure or at - self._sampled_at >= self.sample_every_s:
            if not unsure:
                self._sampled_at = at
            self.pending.append(_Pending(frame_no, at, image_of(), reading))
            if len(self.pending) > self.max_pending:  # thin the older half: keep coverage, bound memory
                half = len(self.pending) // 2
                self.pending = self.pending[:half:2] + self.pending[half:]
        return out

    def _resolve(self, new: str, frame_no: int) -> list[tuple]:
        """The crops seen under the old value, now confirmed by a normal step to ``new``."""
        old = self.value
        tail = frame_no - (self.window + self.stable_reads)
        changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b] if len(old) == len(new) else None
        out, left = [], []
        for p in self.pending:
            if p.frame > tail or self._reads_new(p.reading, new, changed):
                left.append(p)
            else:
                out.append((p.image, old, AUTO, p.at, p.reading))
        return out + self._review(left)

    def _reads_new(self, reading: Reading, new: str, changed) -> bool:
        """Whether this crop already showed the next value where the two differ (the wheel had turned)."""
        if reading.value is None or not changed or len(reading.digits) != len(new):
            return reading.value == new
        return any(reading.digits[i].digit == new[i] for i in changed)

    def _review(self, pending) -> list[tuple]:
        return [(p.image, None, REVIEW, p.at, p.reading) for p in pending
                if p.reading.value is None or p.reading.confidence < self.min_confidence]


def view_box(reader, sensor, reading: Reading, frame_shape):
    """The box whose crop the recognizer read: a fixed ROI's box, or the winning locator view of a located one."""
    box = reading.box
    locator = getattr(reader, "locator", None)
    if box is None or locator is None or not sensor.config.locate or getattr(sensor, "view", None) is None:
        return box
    views = locator.view_boxes(box, frame_shape)
    return views[sensor.view] if sensor.view < len(views) else box


class CropCollection:
    """The daemon's crop collecting: a Collector per collecting sensor and one writer thread for all stores."""

    def __init__(self, state_dir: Path, clock=time.time):
        self.root = Path(state_dir) / CROPS_DIR
        self.clock = clock
        self.collectors: dict[str, Collector] = {}
        self.stores: dict[str, CropStore] = {}
        self.dropped = 0  # crops lost to a full queue
        self.failed = 0  # crops that could not be written
        self._warned = False
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE)
        self._thread: threading.Thread | None = None  # started by the first collecting sensor

    def observe(self, sensor, reading: Reading, decision, frame, frame_no: int, view_box=None) -> None:
        """One sensor's frame (called only for ``collect = true`` sensors): label, and queue what is known."""
        cfg = sensor.config
        limit = int(float(getattr(cfg, "collect_max_mb", 20.0)) * 1024 * 1024)
        collector = self.collectors.get(cfg.name)
        if collector is None:
            collector = self.collectors[cfg.name] = Collector(cfg.mode, cfg.window, cfg.stable_reads,
                                                              cfg.min_confidence)
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_loop, name="digitcam-crops", daemon=True)
                self._thread.start()
            self._put((cfg.name, limit, None))  # the writer opens (scans) the store: its counts show at once
        box = view_box or reading.box
        if box is None:
            return
        from device.boxes import crop as cut

        value = getattr(sensor.smoother, "value", None)
        ready = collector.observe(frame_no, self.clock(), reading, value, decision,
                                  lambda: prepare_crop(cut(frame, box)))
        for item in ready:
            self._put((cfg.name, limit, item))

    def _put(self, job) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1

    def observe_frame(self, sensors, readings, decisions, frame, frame_no: int, reader) -> None:
        """The service's hook: every ``collect = true`` sensor's reading of this frame, with the crop it read."""
        for sensor, reading, decision in zip(sensors, readings, decisions):
            if getattr(sensor.config, "collect", False):
                self.observe(sensor, reading, decision, frame, frame_no, view_box(reader, sensor, reading, frame.shape))

    def report(self) -> dict:
        """The stats topic's ``crops``: per sensor its counts and bytes, plus crops lost."""
        return {"sensors": {name: store.counts() for name, store in list(self.stores.items())},
                "pending": {name: len(c.pending) for name, c in self.collectors.items()},
                "queued": self._queue.qsize(), "dropped": self.dropped, "failed": self.failed}

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the writer has written everything queued so far; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (at most ``timeout_s``) and stop the writer. Pending crops are not labelled yet
        and are dropped."""
        if self._thread is None:
            return
        try:
            self._queue.put((None, 0, None), timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _write_loop(self) -> None:
        while True:
            name, limit, item = self._queue.get()
            if name is None:
                self._queue.task_done()
                return
            try:
                store = self.stores.get(name)
                if store is None:
                    store = self.stores[name] = CropStore(self.root / name, limit)
                store.max_bytes = limit
                if item is None:
                    store.enforce()  # a smaller collect_max_mb applies to what is stored already
                    continue
                image, label, kind, at, reading = item
                store.add(image, label, kind, at, reading.value, float(reading.confidence))
            except (OSError, CropError) as exc:
                self.failed += 1
                if not self._warned:
                    self._warned = True
                    log.warning("cannot write crops to %s (%s); collecting goes on, failures are counted",
                                self.root, exc)
            finally:
                self._queue.task_done()


# ---- digitcam crops list | label | export ---------------------------------------------------------------


def crops_root(where: Path) -> Path:
    """A config file means its state directory's crops; anything else is a folder of crops."""
    where = Path(where)
    if where.suffix == ".toml" or where.is_file():
        from device.config import load_config

        return load_config(where).state_dir / CROPS_DIR
    return where


def _find(root: Path, name: str) -> Crop:
    hits = [c for c in scan(root) if c.name == name or str(c.path.relative_to(root)) == name]
    if not hits:
        raise CropError(f"no crop {name} under {root} (digitcam crops list shows the names)")
    if len(hits) > 1:
        raise CropError(f"crop {name} is in several sensors' folders; name it as SENSOR/{name}")
    return hits[0]


def check_label(text: str) -> str | None:
    """A person's label: 1-8 digits, or 'none' to send the crop back to review."""
    if text.lower() in ("none", "-", "x"):
        return None
    if not text.isdigit() or not 1 <= len(text) <= 8:
        raise CropError(f"a label is 1-8 digits (or 'none'), not {text[:20]!r}")
    return text


def export(root: Path, out: Path, sensor: str | None = None) -> int:
    """Copy every labelled crop to ``out/<sensor>/`` (same names) and write ``out/labels.csv`` (path,label)."""
    import csv
    import shutil

    crops = [c for c in scan(root) if c.label is not None and (sensor is None or c.sensor == sensor)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for c in crops:
            target = out / c.sensor / c.name
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(c.path, target)
            writer.writerow([f"{c.sensor}/{c.name}", c.label])
    return len(crops)


def main(args) -> int:
    """``digitcam crops``: look at, label and export what the sensors collected."""
    import json

    root = crops_root(args.where)
    if args.crops_command == "list":
        crops = [c for c in scan(root) if (args.kind is None or c.kind == args.kind)
                 and (args.sensor is None or c.sensor == args.sensor)]
        for c in crops:
            if args.json:
                print(json.dumps({"sensor": c.sensor, "name": c.name, "kind": c.kind, "label": c.label,
                                  "raw": c.raw, "confidence": c.confidence, "at": c.at, "bytes": c.size}))
            else:
                print(f"{c.sensor}/{c.name}  {c.kind:6s}  label {c.label or '-':8s}  read {c.raw or '-':8s} "
                      f"({c.confidence:.2f})")
        kinds = Counter(c.kind for c in crops)
        print(f"{len(crops)} crop(s) in {root}: " + ", ".join(f"{kinds.get(k, 0)} {k}" for k in KINDS)
              + f", {sum(c.size for c in crops) / 1e6:.2f} MB", file=sys.stderr if args.json else sys.stdout)
        return 0
    if args.crops_command == "label":
        label = check_label(args.label)
        crop = _find(root, args.name)
        new = relabel_file(crop, label)
        print(f"{crop.sensor}/{new.name}: {new.kind} {new.label or '-'} (was {crop.kind} {crop.label or '-'})")
        return 0
    n = export(root, args.output, args.sensor)
    print(f"exported {n} labelled crop(s) to {args.output} (labels.csv: digitcam eval {args.output}/labels.csv)")
    return 0
