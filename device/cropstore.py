"""The crop store: a sensor collects its own training crops, labelled by the values it accepted.

A meter is one camera on one set of wheels for years; the daemon's own accepted readings say what each
crop showed. With ``collect = true`` a sensor keeps the recognizer's prepared input crops (uint8, at the input
size of the model that reads the sensor, ``device.contract.prepare_crop``) in ``<state_dir>/crops/<sensor>/``, for ``digitcam adapt``:

* **Labels only from accepted values** (``device/crop_labels.py``): a crop is labelled with the value
  accepted while it was seen only when the values before and after agree; crops below ``min_confidence``
  are kept unlabelled for review (``digitcam crops label``).
* **Files** (``device/crop_files.py``): one PNG per crop, its facts in its name; a human label is a rename.
* **Bounded and balanced** (``device/crop_folder.py``): over ``collect_max_mb`` the most redundant crop goes.
* **Off the frame thread** (here): ``CropCollection`` hands crops to one writer thread through a bounded
  queue; a full queue drops the crop and counts it, so a slow SD card never delays a frame.

This module is the daemon's collection and ``digitcam crops list | label | export``.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from device.contract import InputSpec, Reading, prepare_crop
from device.crop_files import KINDS, Crop, CropError, check_label, relabel_file, scan
from device.crop_folder import CropStore
from device.crop_labels import Collector

log = logging.getLogger(__name__)

CROPS_DIR = "crops"  # in the state directory, one folder per sensor
QUEUE = 256


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

    def observe(self, sensor, reading: Reading, decision, frame, frame_no: int, view_box=None,
                spec: InputSpec = InputSpec()) -> None:
        """One sensor's frame (called only for ``collect = true`` sensors): label, and queue what is known;
        the crop is prepared as ``spec``, the input of the model that reads this sensor."""
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
                                  lambda: prepare_crop(cut(frame, box), spec))
        for item in ready:
            self._put((cfg.name, limit, item))

    def _put(self, job) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1

    def observe_frame(self, sensors, readings, decisions, frame, frame_no: int, reader, own_models=None) -> None:
        """The service's hook: every ``collect = true`` sensor's reading of this frame, with the crop it read
        (``own_models``: the SensorReaders whose recognizer reads a sensor with its own model)."""
        for sensor, reading, decision in zip(sensors, readings, decisions):
            if getattr(sensor.config, "collect", False):
                read_by = own_models.reader_for(sensor, reader) if own_models is not None else reader
                self.observe(sensor, reading, decision, frame, frame_no, view_box(reader, sensor, reading, frame.shape),
                             getattr(read_by.recognizer, "spec", InputSpec()))

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
