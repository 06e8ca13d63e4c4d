"""Does ``digitcam adapt`` learn a meter the model has never seen? Simulated installs on held-out meters.

    .venv/bin/python bench/adapt_replay.py --model M.tflite --weights M.keras [--cache runs/cache-v2]
    .venv/bin/python bench/adapt_replay.py --quick ...      # a tenth of the day, few steps: to check it runs

For each meter group of ``meters:test`` (trainer/meters.py: never trained on), the group's crops are split
per digit and wheel zone by file order into a *day* pool (the first 60 %) and a *later* pool (the rest). A day of
a counting meter is replayed from the day pool exactly as bench/meter_replay.py composes it (its profile,
wheels, reading rule and camera effects), read by the base int8 model, fed to the daemon's meter logic
(``Smoother.from_config``, mode meter) and to the daemon's crop collection (``device.cropstore``, the
writer thread, the real store on disk), on a simulated clock. Then ``trainer.adapt.adapt`` fine-tunes on
what was collected, and the base and the adapted model read a *later* time slice of the same meter,
composed only from the later pool (crops never collected), the meter counting on from where the day ended.

Reported per group: day frames, crops collected (labelled / review), pseudo-label errors (a label that
the reading rule does not allow for what that frame showed), the held-out slice of the collected crops
before -> after, the later slice before -> after (sequence accuracy, either value right in a wheel's
60-70 % zone, as bench/meter_replay.py scores), fine-tune minutes, and the base's validation sets
(meters, meter-strips, ...) before -> after. A refused model (adapt exit 2) is reported as refused.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import meter_replay as mr  # noqa: E402
from device.config import SensorConfig  # noqa: E402
from device.crop_files import scan  # noqa: E402
from device.cropstore import CropCollection  # noqa: E402
from device.meter_store import MeterStore  # noqa: E402
from device.smooth import Smoother  # noqa: E402

log = logging.getLogger(__name__)

DAY_SHARE = 0.6
T0 = 1_800_000_000.0  # the simulated wall clock of the day's start (crop names carry it)


def split_rows(rows, day_share: float = DAY_SHARE):
    """(day rows, later rows): per digit and zone (at rest, half-way, nearly over), the first ``day_share``
    of its crops by file name and the rest (a single crop goes to the day only), so no later crop was
    ever collected."""
    by_digit = collections.defaultdict(list)
    for row in rows:
        by_digit[(row["digit"], mr.zone(int(round(float(row["fraction"]) * 10))))].append(row)
    day, later = [], []
    for items in by_digit.values():
        items = sorted(items, key=lambda r: r["path"])
        cut = min(len(items) - 1, max(1, int(round(len(items) * day_share)))) if len(items) > 1 else 1
        day += items[:cut]
        later += items[cut:]
    return day, later


class Faces(mr.MeterFaces):
    """A pool of one meter's crops; a wheel position the (smaller) pool lacks shows the digit at rest."""

    def pool(self, digit: str, tenth: int) -> list:
        try:
            found = super().pool(digit, tenth)
        except StopIteration:
            found = []
        return found or self.resting(digit)


def strip_of(faces, count: float, rng):
    from trainer import effects
    from trainer.meters import compose_strip

    parts = [faces.pick(d, tenth, rng) for d, tenth in mr.wheel_positions(count)]
    return effects.camera(compose_strip(parts, rng), rng, 0.2)


def collect_day(faces, recognizer, fps: float, scale: float, seed: int, state_dir: Path):
    """Replay the day into the daemon's meter logic and crop collection; returns (frames, truth by ms, count)."""
    rng = np.random.default_rng(seed)
    cfg = SensorConfig(**mr.SENSOR, collect=True, collect_max_mb=20.0)
    meter_state = state_dir / "meters.json"
    clock = [T0]
    crops = CropCollection(state_dir, clock=lambda: clock[0])
    sensor = SimpleNamespace(config=cfg, smoother=Smoother.from_config(cfg, MeterStore(meter_state)), view=None)
    truth, frames, last = {}, 0, mr.START
    for t, count, event, position in mr.timeline(fps, scale):
        clock[0] = T0 + t
        value, correct = mr.reading_rule(position)
        if event == "restart":  # the daemon restarts: its crops on disk stay, what was pending is lost
            crops.close()
            crops = CropCollection(state_dir, clock=lambda: clock[0])
            sensor.smoother = Smoother.from_config(cfg, MeterStore(meter_state))
        if event == "set_value":
            sensor.smoother.set_value(value, t)
        if count is None:
            continue
        frames += 1
        last = count
        strip = strip_of(faces, count, rng)
        (reading,), _ = recognizer.read([strip])
        reading = replace(reading, box=(0, 0, strip.shape[1], strip.shape[0]))
        decision = sensor.smoother.update(reading, t)
        crops.observe(sensor, reading, decision, strip, frames)
        truth[int(clock[0] * 1000)] = correct
    crops.flush(30.0)
    crops.close()
    return frames, truth, last


def later_slice(faces, start: float, n: int, fps: float, seed: int):
    """``n`` frames of the same meter after the day, from crops never collected: (strips, allowed values)."""
    rng = np.random.default_rng(seed + 1000)
    strips, allowed, count = [], [], start
    rate = 0.0
    for i in range(n):
        if i % 60 == 0:  # the flow changes every half minute: idle, trickle, a tap running
            rate = float(rng.choice([0.0, 0.05, 0.15, 0.4]))
        count += rate / fps
        strips.append(strip_of(faces, count, rng))
        allowed.append(mr.reading_rule(count)[1])
    return strips, allowed


def accuracy(recognizer, strips, allowed) -> float:
    hits = 0
    for start in range(0, len(strips), 64):
        readings, _ = recognizer.read(strips[start:start + 64])
        hits += sum((r.value or "") in ok for r, ok in zip(readings, allowed[start:start + 64]))
    return 100.0 * hits / max(1, len(strips))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="the base .tflite (default: the bundled one)")
    parser.add_argument("--weights", type=Path, default=None, help="its Keras weights (default: beside it)")
    parser.add_argument("--cache", type=Path, default=None, help="a shard cache of the base's training mix")
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--later", type=int, default=1000, help="frames in the later slice")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parity-points", type=float, default=None, help="passed to adapt (default: adapt's own, 1 point)")
    parser.add_argument("--split", default="test", choices=("test", "val"), help="whose held-out meters")
    parser.add_argument("--groups", default="", help="comma-separated group names (default: every test group)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the day and 30 steps: a smoke test")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from device.bundled import default_model
    from device.errors import DigitcamError
    from device.recognize import Recognizer
    from trainer import adapt, adapt_inputs, meters
    from trainer.train import validation_sets

    base_path = args.model or Path(default_model())
    base = Recognizer(base_path)
    net, manifest, _ = adapt_inputs.base_model(base_path, args.weights)
    val = validation_sets(adapt_inputs.train_config(manifest, net, args.cache, 1, args.seed))  # once for all groups
    folder, groups = mr.group_rows(args.split, meters)
    read_image = (lambda path: meters.read_crop(meters.MeterCrop(path, "0", "", False)))
    scale = 0.1 if args.quick else 1.0
    steps = 30 if args.quick and not args.steps else args.steps
    wanted = [g for g in args.groups.split(",") if g]
    results, skipped = [], []
    print(f"base {manifest.get('name')} {manifest.get('version')} ({base_path}); later slice {args.later} frames")
    print(f"| meter group ({args.split}) | day frames | labelled / review crops | pseudo-label errors | held-out slice "
          "before -> after | later slice before -> after | fine-tune min | " + " | ".join(
              f"{n}:val before -> after" for n in val) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(val))
    with tempfile.TemporaryDirectory(prefix="adapt-replay-") as tmp:
        for i, (group, rows) in enumerate(sorted(groups.items())):
            short = group.split("/")[-1]
            if wanted and short not in wanted and group not in wanted:
                continue
            day_rows, later_rows = split_rows(rows)
            day, later = (Faces(r, folder, read_image) for r in (day_rows, later_rows))
            if day.missing() or later.missing():
                skipped.append(f"{short} (no crop of {', '.join(sorted(set(day.missing()) | set(later.missing())))} "
                               f"in one of its pools)")
                continue
            state = Path(tmp) / f"g{i}"
            frames, truth, last = collect_day(day, base, args.fps, scale, args.seed + i, state)
            stored = scan(state / "crops")
            labelled = [c for c in stored if c.label is not None]
            wrong = sum(1 for c in labelled if c.label not in truth.get(int(round(c.at * 1000)), ()))
            strips, allowed = later_slice(later, last, args.later, args.fps, args.seed + i)
            before = accuracy(base, strips, allowed)
            out = Path(tmp) / f"g{i}.tflite"
            row = {"group": group, "day_frames": frames, "labelled": len(labelled),
                   "review": len(stored) - len(labelled), "pseudo_label_errors": wrong,
                   "pseudo_label_error_rate": round(100.0 * wrong / max(1, len(labelled)), 3),
                   "later_n": len(strips), "later_before": round(before, 2)}
            started = time.monotonic()
            try:
                fields = adapt.adapt(state / "crops", out, model=base_path, weights=args.weights, steps=steps,
                                     cache=args.cache, seed=args.seed, val_sets=val,
                                     parity_points=args.parity_points)
                a = fields["adapted"]
                row.update(refused=False, later_after=round(accuracy(Recognizer(out), strips, allowed), 2),
                           held_before=a["held_out"]["before"], held_after=a["held_out"]["after"],
                           held_n=a["held_out"]["n"], minutes=a["minutes"], train_minutes=a["train_minutes"],
                           val=a["val_sets"])
            except DigitcamError as exc:
                row.update(refused=True, reason=str(exc), minutes=round((time.monotonic() - started) / 60, 2))
            results.append(row)
            if row["refused"]:
                print(f"| {short} | {frames} | {len(labelled)} / {row['review']} | {wrong} "
                      f"({row['pseudo_label_error_rate']:.2f} %) | refused: {row['reason'][:120]} | "
                      f"{before:.1f} % -> (base kept) | {row['minutes']:.1f} |" + " - |" * len(val), flush=True)
            else:
                print(f"| {short} | {frames} | {len(labelled)} / {row['review']} | {wrong} "
                      f"({row['pseudo_label_error_rate']:.2f} %) | {row['held_before']:.1f} -> {row['held_after']:.1f} % "
                      f"(n={row['held_n']}) | {before:.1f} -> {row['later_after']:.1f} % | {row['minutes']:.1f} | "
                      + " | ".join(f"{m['before']:.1f} -> {m['after']:.1f}" for m in row["val"].values()) + " |",
                      flush=True)
    for note in skipped:
        print(f"\nskipped: {note}")
    done = [r for r in results if not r["refused"]]
    worst_gain = min((r["later_after"] - r["later_before"] for r in done), default=float("nan"))
    labelled = sum(r["labelled"] for r in results)
    errors = sum(r["pseudo_label_errors"] for r in results)
    print(f"adapt_replay: {len(results)} held-out meter(s), {len(done)} adapted, {len(results) - len(done)} refused; "
          f"later slice mean {np.mean([r['later_before'] for r in done]) if done else float('nan'):.1f} % -> "
          f"{np.mean([r['later_after'] for r in done]) if done else float('nan'):.1f} % (worst change "
          f"{worst_gain:+.1f} points); pseudo-label errors {errors} of {labelled} "
          f"({100.0 * errors / max(1, labelled):.2f} %); fine-tune max "
          f"{max((r['minutes'] for r in results), default=0):.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"base": str(base_path), "results": results, "skipped": skipped}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
