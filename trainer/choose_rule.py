"""Measure how ``digitcam read`` should choose among the locator's candidates, on held-out scenes.

    python -m trainer.choose_rule --split val -n 300         # choose: prints every rule's right-number rate
    python -m trainer.choose_rule --split val -n 600 --rule 1,4,0.5 --floor 0.5 --k 4 --fit-gate  # fit the no-number gate
    python -m trainer.choose_rule --split test -n 600 --rule 1,4,0.5 --floor 0.5 --k 4 --roi   # measure one, once

Each scene is located once with a low candidate floor and many candidates, every candidate is read
through the locator's views (as ``FrameReader.read_candidates`` does), and the rules, floors and
candidate counts are then compared on those readings without reading again: the candidates for a
higher floor or a smaller k are a prefix of these (``device.heatmap.decode_candidates`` seeds in order
of heat, and a candidate depends only on the ones before it). Two scene sets: today's held-out scenes
and the cluttered ones (``trainer.cluttered``), each reported apart, with the single-box decoder
(``Locator.find`` + read, what ``digitcam read`` did before candidates) in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from device.boxes import box_iou
from device.choose import DEFAULT_GATE, DEFAULT_RULE, NumberGate, Rule, choose
from device.config import SensorConfig
from device.locate import Locator
from device.reader import FrameReader

VAL_SEED, TEST_SEED = 1001, 2002
RULES = [Rule(p, d, lp) for p in (0.0, 1.0, 2.0, 4.0) for d in (1, 3, 4, 5, 6) for lp in (0.0, 0.5, 1.0, 2.0)
         if not (d == 1 and lp > 0)]  # d = 1 makes the length factor 1 whatever its power
FLOORS = (0.3, 0.5, 0.6, 0.7, 0.8)
KS = (1, 2, 3, 4, 6)
COLLECT_FLOOR, COLLECT_K = min(FLOORS), max(KS)


SETS = ("scenes", "cluttered", "house", "empty")


def scene_sets(split: str, n: int, names=SETS) -> dict:
    """``n`` scenes of each named set of the split, (frame BGR, label, box): today's held-out scenes, the
    cluttered ones (clusters, meter faces, date stamps), house fronts, and scenes without a number."""
    from trainer.sources import iter_scenes

    seed = TEST_SEED if split == "test" else VAL_SEED
    options = {"scenes": {}, "cluttered": {"cluttered": 1.0}, "house": {"cluttered": 1.0, "cluttered_kinds": ("house",)},
               "empty": {"empty_rate": 1.0}}
    sets = {name: iter_scenes(split, seed, **options[name]) for name in names}
    return {name: [(np.ascontiguousarray(f[:, :, ::-1]), label, box) for f, label, box in itertools.islice(it, n)]
            for name, it in sets.items()}


def collect(locator_path: Path, recognizer, scenes) -> list[dict]:
    """Per scene: the single-box read, and every candidate's (box, peak, value, confidence)."""
    wide = Locator(locator_path, max_candidates=COLLECT_K, candidate_floor=COLLECT_FLOOR)
    single = FrameReader(recognizer, Locator(locator_path))
    reader = FrameReader(recognizer, wide)
    out = []
    for frame, label, box in scenes:
        found_box = single.locator.find(frame)
        one = single.read_box(frame, found_box)[0] if found_box is not None else None
        found = reader.read_candidates(frame)
        out.append({"label": label, "box": box, "single": (one.value, one.box, one.confidence) if one else (None, None, 0.0),
                    "candidates": [(r.box, p, r.value, r.confidence) for r, p in zip(found.candidates, found.peaks)]})
    return out


def chosen_candidate(record: dict, rule: Rule, floor: float, k: int) -> tuple | None:
    """The recorded candidate ``read_candidates`` would choose with this rule, floor and k (None: none)."""
    from device.contract import Reading

    cands = [c for c in record["candidates"] if c[1] >= floor][:k]
    if not cands:
        return None
    return cands[choose([c[1] for c in cands], [Reading(value=v, confidence=conf) for _, _, v, conf in cands], rule)]


def outcome(record: dict, rule: Rule, floor: float, k: int, min_score: float = 0.0,
            gate: NumberGate = DEFAULT_GATE) -> tuple[str | None, tuple | None, float]:
    """The (value, box, confidence) ``read_candidates`` would report with this rule, floor and k; a chosen
    candidate whose ``gate`` score is below ``min_score`` reports no number."""
    from device.contract import Reading

    picked = chosen_candidate(record, rule, floor, k)
    if picked is None:
        return None, None, 0.0
    box, peak, value, confidence = picked
    if gate.score(peak, Reading(value=value, confidence=confidence)) < min_score:
        return None, None, 0.0
    return value, box, float(confidence)


def fit_gate(sets: dict[str, list[dict]], rule: Rule, floor: float, k: int) -> NumberGate:
    """The ``NumberGate`` that best tells a chosen candidate read right (scenes with a number) from the
    chosen candidate of a scene without one: logistic regression (Newton's method) on the recorded
    candidates. Wrong readings of a real number are left out: whether to report them is the job of
    ``min_confidence``, not of this gate."""
    def logit(p):
        p = min(max(float(p), 1e-4), 1 - 1e-4)
        return np.log(p / (1 - p))

    rows, target = [], []
    for records in sets.values():
        for r in records:
            picked = chosen_candidate(r, rule, floor, k)
            if picked is None or not picked[2] or (r["box"] is not None and picked[2] != r["label"]):
                continue
            rows.append([logit(picked[1]), logit(picked[3]), min(len(picked[2]), 8) / 8.0, 1.0])
            target.append(float(r["box"] is not None))
    x, y = np.array(rows), np.array(target)
    if len(set(target)) < 2:
        raise ValueError("fitting the gate wants scenes read right and scenes without a number")
    w = np.zeros(4)
    for _ in range(100):  # from zero, where the log loss is smooth; damped so a near-separable set cannot overshoot
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        step = np.linalg.solve((x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(4), x.T @ (p - y) + 1e-3 * w)
        w -= step / max(1.0, float(np.abs(step).max()))
        if np.abs(step).max() < 1e-9:
            break
    return NumberGate(*(round(float(v), 3) for v in w))


def rates(records: list[dict], pick) -> dict:
    """Right-number rate and box IoU >= 0.7 over scenes with a number, null rate over those without; and
    both again as a sensor at the default ``min_confidence`` reports them (less sure: no number)."""
    gate = SensorConfig.min_confidence
    right = hit = null = right_gated = null_gated = with_number = 0
    for r in records:
        value, box, confidence = pick(r)
        if r["box"] is None:
            null += value is None
            null_gated += value is None or confidence < gate
            continue
        with_number += 1
        right += (value or "") == r["label"]
        right_gated += (value or "") == r["label"] and confidence >= gate
        hit += box is not None and box_iou(box, r["box"]) >= 0.7
    without = len(records) - with_number
    return {"right": round(right / max(1, with_number), 4), "iou_ge_0.7": round(hit / max(1, with_number), 4),
            "empty_null": round(null / without, 4) if without else None, "n": len(records),
            "right_gated": round(right_gated / max(1, with_number), 4),
            "empty_null_gated": round(null_gated / without, 4) if without else None}


def compare(sets: dict[str, list[dict]], rules=RULES, floors=FLOORS, ks=KS) -> dict:
    """Every (rule, floor, k) on every set, the single-box decoder, and the best by the mean right rate."""
    report = {"single_box": {name: rates(recs, lambda r: r["single"]) for name, recs in sets.items()}, "grid": []}
    for rule, floor, k in itertools.product(rules, floors, ks):
        row = {"rule": [rule.peak_power, rule.counter_digits, rule.length_power], "floor": floor, "k": k}
        row |= {name: rates(recs, lambda r: outcome(r, rule, floor, k)) for name, recs in sets.items()}
        row["mean_right"] = round(float(np.mean([row[name]["right"] for name in sets if name != "empty"])), 4)
        report["grid"].append(row)
    report["grid"].sort(key=lambda row: -row["mean_right"])
    return report


MIN_SCORES = tuple(round(0.05 * i, 2) for i in range(17))  # 0 .. 0.8


def score_gates(sets: dict[str, list[dict]], rule: Rule, floor: float, k: int, gates=MIN_SCORES,
                gate: NumberGate = DEFAULT_GATE) -> list[dict]:
    """One rule, floor and k with each ``min_score`` (a chosen candidate whose ``gate`` score is less
    reads no number): what each costs in right numbers against what it gains in nulls on scenes without one."""
    rows = []
    for threshold in gates:
        row = {"min_score": threshold} | {name: rates(recs, lambda r: outcome(r, rule, floor, k, threshold, gate))
                                          for name, recs in sets.items()}
        row["mean_right"] = round(float(np.mean([row[name]["right"] for name in sets if name != "empty"])), 4)
        rows.append(row)
    return rows


def rough_roi(box, frame_shape, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A region as a person draws it round a number: 2x its width, 4x its height, the number anywhere inside."""
    x, y, w, h = box
    fh, fw = frame_shape[:2]
    rx, ry = x - rng.uniform(0.1, 0.9) * w, y - rng.uniform(0.5, 2.5) * h
    x0, y0 = int(max(0, rx)), int(max(0, ry))
    return x0, y0, int(min(fw, rx + 2 * w)) - x0, int(min(fh, ry + 4 * h)) - y0


def roi_reads(locator_path: Path, recognizer, scenes, seed: int = 5) -> dict:
    """Right-number rate reading the true box (tight) against searching a rough ROI round it."""
    reader = FrameReader(recognizer, Locator(locator_path))
    rng = np.random.default_rng(seed)
    tight = rough = n = 0
    for frame, label, box in scenes:
        if box is None:
            continue
        n += 1
        tight += reader.read_box(frame, tuple(int(v) for v in box))[0].value == label
        rough += reader.find_and_read(frame, rough_roi(box, frame.shape, rng))[0].value == label
    return {"tight": round(tight / max(1, n), 4), "rough_roi": round(rough / max(1, n), 4), "n": n}


def parse_rule(text: str) -> Rule:
    p, d, lp = text.split(",")
    return Rule(float(p), int(d), float(lp))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.choose_rule", description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("-n", type=int, default=300, help="scenes per set")
    parser.add_argument("--locator", type=Path, default=Path("models/locator.tflite"))
    parser.add_argument("--model", type=Path, default=None, help="recognizer (default: the bundled one)")
    parser.add_argument("--rule", type=parse_rule, default=None, help="measure only this rule: peak power,digits,length power")
    parser.add_argument("--floor", type=float, default=None)
    parser.add_argument("--k", type=int, default=None)
    parser.add_argument("--top", type=int, default=15, help="grid rows to print")
    parser.add_argument("--roi", action="store_true", help="also compare rough-ROI reads with tight-box reads")
    parser.add_argument("--fit-gate", action="store_true",
                        help="fit the no-number gate on these scenes (with --rule, --floor, --k; choose on val only)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated scene sets, of {', '.join(SETS)}")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write the whole report as JSON")
    args = parser.parse_args(argv)
    from device.bundled import default_model
    from device.recognize import Recognizer

    recognizer = Recognizer(args.model or default_model())
    names = [name for name in args.sets.split(",") if name]
    if not names or set(names) - set(SETS):
        parser.error(f"--sets {args.sets!r}: want some of {', '.join(SETS)}")
    all_scenes = scene_sets(args.split, args.n, names)
    sets = {name: collect(args.locator, recognizer, scenes) for name, scenes in all_scenes.items()}
    default = Locator(args.locator)
    report = compare(sets, [args.rule] if args.rule else RULES,
                     [args.floor] if args.floor is not None else FLOORS, [args.k] if args.k else KS)
    report["device_default"] = {"rule": [DEFAULT_RULE.peak_power, DEFAULT_RULE.counter_digits, DEFAULT_RULE.length_power],
                                "floor": default.candidate_floor or default.threshold, "k": default.max_candidates}
    report["split"] = args.split
    if args.roi:
        report["roi"] = {name: roi_reads(args.locator, recognizer, scenes) for name, scenes in all_scenes.items() if name != "empty"}
        print("rough ROI vs tight box: " + json.dumps(report["roi"]))
    print(f"{args.split}, {args.n} scenes per set; single box: " + ", ".join(
        f"{name} right {r['right']:.1%} iou>=0.7 {r['iou_ge_0.7']:.1%} null {r['empty_null']} (gated {r['empty_null_gated']})"
        for name, r in report["single_box"].items()))
    if args.rule and args.floor is not None and args.k:
        gate = fit_gate(sets, args.rule, args.floor, args.k) if args.fit_gate else DEFAULT_GATE
        report["gate"] = [gate.peak_weight, gate.confidence_weight, gate.length_weight, gate.bias]
        print(f"gate ({'fitted on these scenes' if args.fit_gate else 'device default'}): {gate}")
        report["min_score"] = score_gates(sets, args.rule, args.floor, args.k, gate=gate)
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    if "min_score" in report:
        for row in report["min_score"]:
            print(f"min_score {row['min_score']}: mean right {row['mean_right']:.1%}  " + ", ".join(
                f"{name} {row[name]['right']:.1%}" if name != "empty" else f"empty null {row[name]['empty_null']:.1%}"
                for name in sets))
    for row in report["grid"][: args.top]:
        print(f"rule {row['rule']} floor {row['floor']} k {row['k']}: mean {row['mean_right']:.1%}  " + ", ".join(
            f"{name} {row[name]['right']:.1%} (iou {row[name]['iou_ge_0.7']:.1%}, null {row[name]['empty_null']}, "
            f"gated {row[name]['right_gated']:.1%} / {row[name]['empty_null_gated']})" for name in sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
