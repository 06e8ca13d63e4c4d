"""The crop store: bounds and balance, labels only from accepted readings, human labels, crash safety."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from device.contract import DigitReading, Reading
from device.crop_files import AUTO, HUMAN, REVIEW, CropError, read_crop, scan
from device.crop_folder import CropStore
from device.crop_labels import Collector
from device.cropstore import CropCollection
from device.meter import Meter

REPO = Path(__file__).resolve().parents[2]
UNSURE = 0.2


def image(seed: int) -> np.ndarray:
    """A crop-sized noise image: PNG cannot shrink it much, so sizes are realistic and distinct."""
    return np.random.default_rng(seed).integers(0, 255, (32, 128), dtype=np.uint8)


def r(value, unsure=(), confidence=0.95):
    if value is None:
        return Reading(value=None, confidence=0.0)
    digits = [DigitReading(d, UNSURE if i in unsure else confidence) for i, d in enumerate(value)]
    return Reading(value=value, confidence=min(d.confidence for d in digits), digits=digits, box=(0, 0, 10, 10))


# ---- the store on disk ----------------------------------------------------------------------------------


def test_the_store_stays_under_its_bound_and_keeps_every_digit_when_one_value_dominates(tmp_path):
    one = len(__import__("cv2").imencode(".png", image(0))[1])
    store = CropStore(tmp_path / "s", max_bytes=60 * one)
    # a meter idle on ...0 most of the day, a few crops of every other digit
    labels = ["000120"] * 300 + [f"00012{d}" for d in range(1, 10) for _ in range(5)]
    for i, label in enumerate(labels):
        store.add(image(i), label, AUTO, at=1000.0 + i)
    assert store.bytes <= store.max_bytes
    assert store.bytes == sum(p.stat().st_size for p in (tmp_path / "s").glob("*.png"))
    by_digit = Counter(c.label[-1] for c in store.crops.values())
    assert set(by_digit) == set("0123456789")  # the rare digits were never dropped for the common one
    assert all(by_digit[d] == 5 for d in "123456789")  # only the fullest digit's crops were dropped
    assert 5 <= by_digit["0"] <= 60 - 45
    kept_zero = sorted(c.at for c in store.crops.values() if c.label == "000120")
    assert kept_zero[0] > 1000.0 + 250  # of the redundant value, the oldest went first


def test_review_crops_keep_a_fifth_of_the_budget_oldest_dropped(tmp_path):
    store = CropStore(tmp_path / "s", max_bytes=100_000)
    for i in range(200):
        store.add(image(i), None, REVIEW, at=float(i), raw="12", confidence=0.3)
    review = [c for c in store.crops.values() if c.kind == REVIEW]
    assert sum(c.size for c in review) <= 20_000
    assert min(c.at for c in review) > 150  # the newest kept


def test_the_store_survives_a_restart_and_a_human_label_outranks_the_pseudo_label(tmp_path):
    store = CropStore(tmp_path / "s", max_bytes=10 ** 7)
    auto = store.add(image(1), "004711", AUTO, at=10.0, raw="004711", confidence=0.9)
    doubt = store.add(image(2), None, REVIEW, at=11.0, raw="00471", confidence=0.31)
    store.relabel(auto.name, "004712")
    store.relabel(doubt.name, "004713")
    again = CropStore(tmp_path / "s", max_bytes=10 ** 7)
    crops = sorted(again.crops.values(), key=lambda c: c.at)
    assert [(c.kind, c.label, c.raw) for c in crops] == [(HUMAN, "004712", "004711"), (HUMAN, "004713", "00471")]
    assert np.array_equal(read_crop(crops[1]), image(2))  # the exact pixels the model was given
    assert again.counts()["human"] == 2
    with pytest.raises(CropError, match="no crop"):
        again.relabel("nonexistent.png", "1")


def test_human_labels_are_dropped_last(tmp_path):
    store = CropStore(tmp_path / "s", max_bytes=10 ** 7)
    h = store.add(image(0), "000001", AUTO, at=0.0)
    store.relabel(h.name, "000001")
    for i in range(1, 40):
        store.add(image(i), "000001", AUTO, at=float(i))
    store.max_bytes = store.bytes // 4
    store.enforce()
    assert any(c.kind == HUMAN for c in store.crops.values())


KILLED_WRITER = """
import sys, numpy as np
from device.crop_files import AUTO
from device.crop_folder import CropStore
store = CropStore(sys.argv[1], max_bytes=400_000)
rng = np.random.default_rng(0)
i = 0
while True:
    i += 1
    store.add(rng.integers(0, 255, (32, 128), dtype=np.uint8), f"{i % 1000:06d}", AUTO, at=float(i))
    if i == 1:  # the first add loads the image codec (seconds under emulation): time the kill from here
        print("writing", flush=True)
"""


def test_a_sigkill_mid_write_leaves_a_readable_store(tmp_path):
    folder = tmp_path / "s"
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.3 + 0.2 * attempt)  # it has written and dropped many crops by now
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        store = CropStore(folder, max_bytes=400_000)
        assert store.crops, "the writer wrote nothing before it was killed"
        assert not list(folder.glob("*.tmp"))  # a half-written crop is removed on open
        for crop in store.crops.values():
            assert read_crop(crop).shape == (32, 128)  # every crop named in the store is whole
        assert store.bytes <= 400_000 + max(c.size for c in store.crops.values())


def test_scan_of_something_that_is_not_a_folder_is_one_line(tmp_path):
    with pytest.raises(CropError, match="is not a folder of crops"):
        scan(tmp_path / "missing")


# ---- labels only from accepted values -------------------------------------------------------------------


def run_meter(readings, step=1.0, **kw):
    """Feed a real Meter and a Collector frame by frame; return what the collector let through."""
    meter = Meter(confirm_s=10.0, **kw)
    meter.set_value(readings[0][0], 0.0)
    collector = Collector("meter", window=5, stable_reads=3, min_confidence=0.5, sample_every_s=0.0)
    out = []
    for i, (truth, reading) in enumerate(readings):
        now = (i + 1) * step
        decision = meter.update(reading, now)
        # the "image" is the value the meter showed in that frame, so each label can be checked against it
        out += [(shown, label, kind) for shown, label, kind, _, _ in
                collector.observe(i, now, reading, meter.value, decision, lambda t=truth: t)]
    return out


def counting(values, frames_each=20, misread=None):
    """(truth, reading) per frame of a meter counting through ``values``; ``misread(i, truth)`` may change one."""
    rows = []
    for value in values:
        for k in range(frames_each):
            reading = r(value)
            if misread is not None:
                reading = misread(len(rows), value) or reading
            rows.append((value, reading))
    return rows


def test_crops_are_labelled_only_with_values_the_meter_accepted_as_normal_steps():
    values = [f"0047{n:02d}" for n in range(11, 20)]

    def misread(i, truth):  # the tens wheel misread 1 -> 7 now and then, the lowest wheel unsure at times
        if i % 7 == 3:
            return r(truth[:4] + "7" + truth[5])
        if i % 11 == 5:
            return r(truth, unsure=(5,))
        return None

    out = run_meter(counting(values, misread=misread))
    labelled = [(t, lab) for t, lab, kind in out if kind == AUTO]
    assert len(labelled) > 60  # 7 values of 20 frames, the last half of each left out (TAIL_SHARE)
    assert all(t == lab for t, lab in labelled)  # every pseudo-label is the value the meter showed
    # the first value came by set_value (not seen accepted as a step), the last is not followed by one yet
    assert {lab for _, lab in labelled} == set(values[1:-1])


def test_no_label_across_a_doubtful_change():
    # 004711 then the camera shows 009999 (a jump, accepted after confirm_s), then normal steps again
    rows = counting(["004711"], 30) + counting(["009999"], 30) + counting(["010000"], 20) + counting(["010001"], 20)
    out = run_meter(rows)
    labels = {lab for _, lab, kind in out if kind == AUTO}
    assert "004711" not in labels  # 004711 -> 009999 was a jump: the crops before it are not confirmed
    assert "009999" not in labels  # accepted only after a hold: its crops stay unlabelled
    assert "010000" in labels


def test_the_crops_just_before_the_next_value_are_left_out():
    rows = counting(["000100"], 30) + counting(["000101"], 30) + counting(["000102"], 10)
    out = run_meter(rows)
    labelled = [t for t, lab, kind in out if kind == AUTO]
    assert labelled.count("000100") <= 30 - 8  # the last window + stable_reads frames before 000101 dropped


def test_a_slow_wheel_read_late_gets_no_label_of_the_value_before():
    # a slow meter: each value shows 40 frames, and the recognizer keeps reading the old value for the first
    # 12 frames of the new one (the wheel is mostly over, the model lags): more than the frame tail covers
    values = [f"0001{n:02d}" for n in range(0, 6)]
    rows = []
    for before, value in zip([None] + values, values):
        rows += [(value, r(before if k < 12 and before else value)) for k in range(40)]
    out = run_meter(rows)
    labelled = [(t, lab) for t, lab, kind in out if kind == AUTO]
    assert len(labelled) > 40
    assert all(t == lab for t, lab in labelled)  # no crop that showed the next value is labelled the old one


def test_low_confidence_crops_that_get_no_label_are_kept_for_review():
    rows = counting(["000100"], 30) + [("000101", r("000101", unsure=(5,)))] * 3 + counting(["000105"], 30)
    out = run_meter(rows)
    assert any(kind == REVIEW and label is None for _, label, kind in out)
    assert all(label is None for _, label, kind in out if kind == REVIEW)


def test_number_mode_labels_a_value_that_stayed_accepted():
    from device.smooth import Smoother

    smoother = Smoother(stable_reads=3, window=5, min_confidence=0.5)
    collector = Collector("number", window=5, stable_reads=3, min_confidence=0.5, sample_every_s=0.0)
    # (shown, read): 27 with two misreads, then the plate really changes to 21
    seq = [("27", "27")] * 30 + [("27", "21")] * 2 + [("27", "27")] * 10 + [("21", "21")] * 30
    out = []
    for i, (shown, read) in enumerate(seq):
        reading = r(read)
        decision = smoother.update(reading, float(i))
        out += collector.observe(i, float(i), reading, smoother.value, decision, lambda v=shown: v)
    pairs = [(img, label) for img, label, _, _, _ in out]
    assert all(img == label for img, label in pairs)  # no crop of 21 was labelled 27, nor one of 27 as 21
    assert {label for _, label in pairs} == {"27", "21"}
    assert any(o[4].value == "21" and o[1] == "27" for o in out)  # a misread crop learns its true value


# ---- the daemon's side: off the frame thread ------------------------------------------------------------


class _Sensor:
    def __init__(self, smoother, name="water", max_mb=1.0):
        from device.config import SensorConfig

        self.config = SensorConfig(name=name, mode="meter", collect=True, collect_max_mb=max_mb)
        self.smoother = smoother


def test_the_collection_writes_on_its_own_thread_and_reports_counts(tmp_path):
    clock = iter(float(t) for t in range(10 ** 6))
    crops = CropCollection(tmp_path, clock=lambda: next(clock))
    meter = Meter(confirm_s=10.0)
    meter.set_value("000100", 0.0)
    sensor = _Sensor(meter)
    frame = np.random.default_rng(0).integers(0, 255, (60, 200), dtype=np.uint8)
    for i, value in enumerate(["000100"] * 40 + ["000101"] * 40 + ["000102"] * 5):
        reading = r(value)
        decision = meter.update(reading, float(i + 1))
        crops.observe(sensor, reading, decision, frame, i)
    assert crops.flush()
    report = crops.report()["sensors"]["water"]
    assert report[AUTO] > 20 and report["bytes"] > 0
    stored = scan(tmp_path / "crops" / "water")
    assert {c.label for c in stored} == {"000101"}  # 000100 came by set_value, not as a step
    assert read_crop(stored[0]).shape == (32, 128)
    crops.close()
    again = CropCollection(tmp_path)
    again.observe(sensor, r("000102"), None, frame, 0)  # opens the store: its counts show before any write
    assert again.flush() and again.report()["sensors"]["water"]["crops"] == len(stored)
    again.close()


def test_crops_are_stored_at_the_input_size_of_the_model_that_reads_the_sensor(tmp_path):
    from device.contract import InputSpec

    meter = Meter(confirm_s=10.0)
    meter.set_value("000100", 0.0)
    crops = CropCollection(tmp_path, clock=iter(float(t) for t in range(10 ** 6)).__next__)
    frame = np.random.default_rng(0).integers(0, 255, (60, 200), dtype=np.uint8)
    for i, value in enumerate(["000100"] * 40 + ["000101"] * 40 + ["000102"] * 5):
        reading = r(value)
        crops.observe(_Sensor(meter), reading, meter.update(reading, float(i + 1)), frame, i,
                      spec=InputSpec(height=40, width=160))
    assert crops.flush()
    stored = scan(tmp_path / "crops" / "water")
    assert stored and all(read_crop(c).shape == (40, 160) for c in stored)
    crops.close()


# ---- the real daemon and the command line ---------------------------------------------------------------


def test_a_real_daemon_collects_crops_that_crops_list_label_and_export_handle(tmp_path, model, daemons):
    import cv2

    from tests import support

    video = tmp_path / "plates.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (support.FRAME_W, support.FRAME_H))
    rng = np.random.default_rng(0)
    for text in ("4711", "629", "80125"):
        for _ in range(60):
            writer.write(support.number_frame(support.number_crop(text), rng))
    writer.release()
    config = support.write_config(tmp_path, model, video, fps=30, sensor_extra="collect = true\ncollect_max_mb = 1")
    daemon = daemons(config, "--print")
    assert daemon.wait(60) == 0, daemon.log()
    stored = scan(tmp_path / "state" / "crops" / "number")
    labelled = [c for c in stored if c.label is not None]
    assert len(labelled) >= 3, daemon.log()
    assert {c.label for c in labelled} == {"4711", "629", "80125"}  # number mode: each stayed accepted
    from device.recognize import Recognizer

    spec = Recognizer(model).spec  # crops are the model's own input size
    assert all(read_crop(c).shape == (spec.height, spec.width) for c in stored)

    listed = support.run_cli("crops", "list", config, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [__import__("json").loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == len(stored)
    name = rows[0]["name"]
    assert support.run_cli("crops", "label", config, name, "12345").returncode == 0
    bad = support.run_cli("crops", "label", config, name, "12a")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "1-8 digits" in bad.stderr
    out = tmp_path / "export"
    assert support.run_cli("crops", "export", config, "-o", out).returncode == 0
    lines = (out / "labels.csv").read_text().splitlines()
    assert lines[0] == "path,label" and len(lines) == 1 + len(labelled) + (rows[0]["label"] is None)
    human = [line for line in lines if line.endswith(",12345")]
    assert len(human) == 1 and "-human-12345-" in human[0]  # the person's label is the one exported
    assert (out / human[0].split(",")[0]).is_file()
