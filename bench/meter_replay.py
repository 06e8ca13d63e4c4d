"""What a household sees: counting meters replayed from real digit crops of held-out meters.

    .venv/bin/python bench/meter_replay.py                 # every held-out meter group, ~7,000 frames each
    .venv/bin/python bench/meter_replay.py --quick         # a few hundred frames, to check it runs

For each meter group of ``meters:test`` (trainer/meters.py; no crop of these meters is ever trained on),
a 6-wheel counter is composed frame by frame from that meter's own crops, picked by wheel position from
the archive's labels (lower digit and tenths turned, the 60-70 % crops the trainer leaves out included):
each wheel shows a random crop of its position (a different one every frame, as light and noise change),
the lowest wheel turns continuously, and a higher wheel turns only while all wheels below it roll from 9
to 0. What the meter shows follows the reading rule of trainer/meters.py (a wheel reads its last passed
digit until it is 80 % over; at 60-70 % either digit is right). The flow profile has idle nights, a
trickle, bursts, a wrap 999999 -> 000000 (a six-wheel roll-over), a camera outage while water runs, a
restart of the daemon (the meter's state reloaded from its state directory), a 099 -> 100 roll-over, and
a meter swap followed by ``set_value`` 30 s later. Frames come at ``--fps`` (2) on a simulated clock.
A group lacking crops of some digit cannot show every value and is skipped (said in the output).

Each frame's strip is read by the daemon's recognizer (the int8 model, as ``digitcam run`` reads a
fixed ROI) and fed to the daemon's smoother for a ``mode = "meter"`` sensor (``Smoother.from_config``:
device/meter.py) and, for comparison, to the whole-string smoother the daemon used before (same
``stable_reads``/``window``/``min_confidence``/``accept_after_s``; it has no set_value). The MQTT side
is not in the loop: the clock is simulated, so hours of meter run in a minute.

Reported per meter and engine: frames, true values, **wrong** published values (a value the meter did
not show at any time in the 60 s before its publication), decreases published (other than flagged
wraps and set_value), the share of values shown >= 10 s that were published, values never published,
and the median / p95 delay from a value first being readable to its publication. Ends with one summary
line. ``--split val`` replays the validation meters (the ones defaults may be chosen on).
"""

from __future__ import annotations

import argparse
import collections
import csv
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from device.config import SensorConfig  # noqa: E402
from device.contract import Reading  # noqa: E402
from device.meter import SET_VALUE, WRAPPED  # noqa: E402
from device.meter_store import MeterStore  # noqa: E402
from device.smooth import Smoother  # noqa: E402

log = logging.getLogger(__name__)

WHEELS = 6
START = 10 ** WHEELS - 25.5  # counts of the lowest wheel: the wrap comes during the first burst
LATE_S = 60.0  # a published value the meter showed within this long before is late, not wrong
SHOWN_S = 10.0  # values shown this long must be published
SENSOR = dict(name="meter", mode="meter", digits=WHEELS, stable_reads=3, window=5, min_confidence=0.5,
              accept_after_s=600.0)

# (kind, seconds, counts per second): the day of one household's meter.
PROFILE = (
    ("idle", 400, 0.0), ("flow", 300, 0.04), ("flow", 200, 0.25), ("idle", 300, 0.0),
    ("outage", 120, 0.1), ("flow", 200, 0.1), ("restart", 10, 0.0), ("flow", 300, 0.05),
    ("flow", 500, 0.1), ("idle", 200, 0.0), ("swap", 30, 0.0), ("flow", 300, 0.08), ("flow", 200, 0.15),
    ("idle", 500, 0.0),
)
SWAP_TO = 3.0  # the new meter's count


@dataclass
class Engine:
    """One smoother under test and what it published: [(time, value, flags)]."""

    name: str
    make: object  # () -> smoother
    smoother: object = None
    published: list = field(default_factory=list)

    def restart(self) -> None:
        self.smoother = self.make()


def fmt_count(n: int) -> str:
    return f"{n % 10 ** WHEELS:0{WHEELS}d}"


def reading_rule(count: float) -> tuple[str, tuple]:
    """(the value the meter shows, every value a correct reader may report) at this count.

    A wheel reads its last passed digit until it is 80 % over (trainer/meters.py); at 60-70 % either
    digit is right (the archive calls those crops too ambiguous to label).
    """
    n = int(np.floor(count))
    tenth = int((count - n) * 10)
    if tenth >= 8:
        return fmt_count(n + 1), (fmt_count(n + 1),)
    if tenth >= 6:
        return fmt_count(n), (fmt_count(n), fmt_count(n + 1))
    return fmt_count(n), (fmt_count(n),)


def wheel_positions(count: float) -> list[tuple[str, int]]:
    """(lower digit, tenths turned towards the next) of each wheel, highest first, for a counter at ``count``.

    The lowest wheel turns continuously; a higher wheel turns only while all wheels below it show 9
    (it moves with the lowest one from 9 to 0), else it rests on its digit.
    """
    n = int(np.floor(count))
    tenth = int((count - n) * 10)
    rest = fmt_count(n)
    out = []
    for k in range(WHEELS):  # k: place of the wheel, 0 = lowest
        moving = n % 10 ** k == 10 ** k - 1  # all wheels below show 9
        out.append((rest[WHEELS - 1 - k], tenth if moving else 0))
    return out[::-1]


def zone(tenth: int) -> int:
    """Crops that read alike: the digit (0-5 tenths), ambiguous (6-7), the next digit (8-9)."""
    return 0 if tenth <= 5 else 1 if tenth <= 7 else 2


class MeterFaces:
    """One meter group's crops by (lower digit, tenths turned), from the archive's labels, read once."""

    def __init__(self, rows, folder: Path, read_image):
        self.by: dict = collections.defaultdict(list)
        for row in rows:
            self.by[(row["digit"], int(round(float(row["fraction"]) * 10)))].append(folder / row["path"])
        self.read_image = read_image
        self.images: dict = {}

    def resting(self, digit: str) -> list:
        """Crops that read ``digit``: the wheel on it (0-50 % on), or 80-90 % on from the digit before."""
        before = str((int(digit) - 1) % 10)
        return [p for t in range(6) for p in self.by[(digit, t)]] or [p for t in (8, 9) for p in self.by[(before, t)]]

    def missing(self) -> list[str]:
        return [d for d in "0123456789" if not self.resting(d)]

    def pool(self, digit: str, tenth: int) -> list:
        """Crops of this wheel position, else of the nearest position that reads the same (else any)."""
        near = sorted(range(10), key=lambda t: (zone(t) != zone(tenth), abs(t - tenth)))
        for t in near:
            if self.by[(digit, t)] and (zone(t) == zone(tenth) or zone(tenth) == 1):
                return self.by[(digit, t)]
        if zone(tenth) == 2:  # no crop 80-90 % turned: one of the next digit at rest reads the same
            return self.resting(str((int(digit) + 1) % 10))
        if zone(tenth) == 0:
            return self.resting(digit)
        return next(self.by[(digit, t)] for t in near if self.by[(digit, t)])

    def pick(self, digit: str, tenth: int, rng) -> np.ndarray:
        pool = self.pool(digit, tenth)
        path = pool[int(rng.integers(len(pool)))]
        if path not in self.images:
            self.images[path] = self.read_image(path)
        return self.images[path]


def timeline(fps: float, scale: float):
    """Frames of the profile: (time, count or None while the camera is out, event) per 1/fps s."""
    dt, t, count = 1.0 / fps, 0.0, START
    for kind, seconds, rate in PROFILE:
        steps = max(1, int(seconds * scale * fps))
        if kind == "swap":
            count = SWAP_TO
        for step in range(steps):
            event = kind if step == 0 and kind in ("restart", "swap") else None
            if kind == "swap" and step == steps - 1:
                event = "set_value"
            yield t, (None if kind in ("outage", "restart") else count), event, count
            t += dt
            count += rate * dt


def group_rows(split: str, meters) -> tuple[Path, dict]:
    """The archive's rows of each held-out group with a digit and a fraction (ambiguous crops included)."""
    folder = meters.extracted_dir()
    held = meters.split_groups(meters.load_crops())[split]
    groups = collections.defaultdict(list)
    with open(folder / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            group = meters.group_of(row.get("source", ""))
            if group in held and (row.get("digit") or "").isdigit() and row.get("fraction"):
                groups[group].append(row)
    return folder, groups


def replay(group: str, faces: MeterFaces, recognizer, fps: float, scale: float, seed: int, state_dir: Path):
    """Run one meter through both engines; returns (engines, truth [(time, value, visible)], frames)."""
    from trainer import effects
    from trainer.meters import compose_strip

    rng = np.random.default_rng(seed)
    store_path = state_dir / f"{group.replace('/', '_')}.json"
    cfg = SensorConfig(**SENSOR)
    engines = [
        Engine("digit-wise meter", lambda: Smoother.from_config(cfg, MeterStore(store_path))),
        Engine("whole-string (before)", lambda: Smoother(mode="meter", **{k: SENSOR[k] for k in (
            "stable_reads", "window", "min_confidence", "accept_after_s")})),
    ]
    for e in engines:
        e.restart()
    truth, frames = [], 0
    for t, count, event, position in timeline(fps, scale):
        value, correct = reading_rule(position)
        truth.append((t, value, correct, count is not None))
        if event == "restart":
            for e in engines:
                e.restart()
        if event == "set_value":
            d = engines[0].smoother.set_value(value, t)
            engines[0].published.append((t, d.reading.value, d.flags))
        if count is None:
            continue
        frames += 1
        parts = [faces.pick(d, tenth, rng) for d, tenth in wheel_positions(count)]
        strip = effects.camera(compose_strip(parts, rng), rng, 0.2)
        (reading,), _ = recognizer.read([strip])
        for e in engines:
            d = e.smoother.update(Reading(reading.value, reading.confidence, list(reading.digits)), t)
            if d is not None and (not e.published or e.published[-1][1] != d.reading.value):
                e.published.append((t, d.reading.value, d.flags))
    return engines, truth, frames


def score(published, truth, fps: float) -> dict:
    """The household's view of one engine's publications against what the meter showed."""
    segments = []  # [value, start, end, visible frames]
    for t, value, _, visible in truth:
        if segments and segments[-1][0] == value:
            segments[-1][2] = t
            segments[-1][3] += visible
        else:
            segments.append([value, t, t, int(visible)])
    times = np.array([t for t, *_ in truth])
    correct = [c for _, _, c, _ in truth]
    wrong = decreases = 0
    last = None
    for t, value, flags in published:
        lo = int(np.searchsorted(times, t - LATE_S))
        hi = int(np.searchsorted(times, t, side="right"))
        if not any(value in c for c in correct[lo:hi]):
            wrong += 1
        if last is not None and int(value) < int(last) and WRAPPED not in flags and SET_VALUE not in flags:
            decreases += 1
        last = value
    delays, long_shown, long_published, missed = [], 0, 0, 0
    pubs = collections.defaultdict(list)
    for t, value, _ in published:
        pubs[value].append(t)
    readable = collections.defaultdict(list)  # value -> times at which reporting it was right
    for t, _, ok, visible in truth:
        for value in ok if visible else ():
            readable[value].append(t)
    for value, start, end, visible in segments:
        hit = [t for t in pubs.get(value, []) if start - LATE_S <= t <= end + LATE_S]
        if hit:
            first = next((t for t in readable[value] if t >= start - LATE_S), start)  # from its ambiguous 60 %
            delays.append(max(0.0, min(hit) - first))
        else:
            missed += 1
        if visible / fps >= SHOWN_S:
            long_shown += 1
            long_published += bool(hit)
    return {
        "values": len(segments), "published": len(published), "wrong": wrong, "decreases": decreases,
        "long_share": long_published / long_shown if long_shown else 1.0, "missed": missed,
        "p50": float(np.median(delays)) if delays else None,
        "p95": float(np.percentile(delays, 95)) if delays else None,
        "delays": delays, "long_shown": long_shown, "long_published": long_published,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="the recognizer (default: the bundled model)")
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="test", choices=("test", "val"))
    parser.add_argument("--quick", action="store_true", help="a tenth of the profile: a smoke test")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    from device.bundled import default_model
    from device.recognize import Recognizer
    from trainer import meters

    recognizer = Recognizer(args.model or default_model())
    folder, groups = group_rows(args.split, meters)
    read_image = (lambda path: meters.read_crop(meters.MeterCrop(path, "0", "", False)))
    scale = 0.1 if args.quick else 1.0
    print(f"| meter group ({args.split}) | engine | frames | values | published | wrong | decreases "
          f"| shown >= {SHOWN_S:g} s published | missed | delay p50 | delay p95 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    totals: dict = collections.defaultdict(collections.Counter)
    delays: dict = collections.defaultdict(list)
    skipped, frames_all = [], 0
    fmt = (lambda v: "-" if v is None else f"{v:.1f} s")
    with tempfile.TemporaryDirectory(prefix="meter-replay-") as tmp:
        for i, (group, rows) in enumerate(sorted(groups.items())):
            faces = MeterFaces(rows, folder, read_image)
            if faces.missing():
                skipped.append(f"{group} (no crop of {', '.join(faces.missing())})")
                continue
            engines, truth, frames = replay(group, faces, recognizer, args.fps, scale, args.seed + i, Path(tmp))
            frames_all += frames
            for e in engines:
                s = score(e.published, truth, args.fps)
                totals[e.name].update({k: s[k] for k in ("wrong", "decreases", "published", "values", "missed",
                                                         "long_shown", "long_published")})
                delays[e.name] += s["delays"]
                print(f"| {group.split('/')[-1].strip()} | {e.name} | {frames} | {s['values']} | {s['published']} "
                      f"| {s['wrong']} | {s['decreases']} | {100 * s['long_share']:.1f} % | {s['missed']} "
                      f"| {fmt(s['p50'])} | {fmt(s['p95'])} |")
    for note in skipped:
        print(f"\nskipped: {note}")
    parts = []
    for name, tot in totals.items():
        share = tot["long_published"] / tot["long_shown"] if tot["long_shown"] else 1.0
        p50 = float(np.median(delays[name])) if delays[name] else None
        parts.append(f"{name}: {tot['wrong']} wrong of {tot['published']} published, {tot['decreases']} decreases, "
                     f"{100 * share:.1f} % of values shown >= {SHOWN_S:g} s published, median delay {fmt(p50)}")
    print(f"meter_replay: {frames_all} frames of {args.split} meters at {args.fps:g} fps; " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
