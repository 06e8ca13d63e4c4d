"""Compare digitcam's JSON lines from an emulated Pi run with the x86 run of the same command.

    python3 scripts/pi_compare.py X86.jsonl ARM.jsonl [--box-px N] [--confidence D] [--fields A,B] [--label NAME]

Line by line, every field (or only the top-level ``--fields``) must be equal except: ``ms``,
``timestamp`` and the meter's rates (they follow the clock) are ignored,
``confidence`` (also per digit) may differ by ``--confidence``, and each ``box`` coordinate by
``--box-px`` (0 by default: the same box). Prints one line per mismatch, then one summary line;
exits 1 on any mismatch or when there is nothing to compare. Standard library only (runs anywhere).
"""

from __future__ import annotations

import argparse
import json
import sys

IGNORED = ("ms", "timestamp", "rate_per_hour", "rate_per_minute")  # clocks: an emulated run is slower


def differences(a, b, box_px: int, confidence: float, path: str = "") -> list[str]:
    """Where two readings (nested dicts/lists) differ beyond the tolerances, as 'path: a != b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in IGNORED:
                continue
            if key not in a or key not in b:
                out.append(f"{path}{key}: only in {'x86' if key in a else 'arm'}")
            else:
                out += differences(a[key], b[key], box_px, confidence, f"{path}{key}.")
        return out
    name = path.rstrip(".").rsplit(".", 1)[-1]
    if name == "box" and isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [] if all(abs(x - y) <= box_px for x, y in zip(a, b)) else [f"{path[:-1]}: {a} != {b}"]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, box_px, confidence, f"{path}{i}.")]
    if name == "confidence" and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return [] if abs(a - b) <= confidence + 1e-9 else [f"{path[:-1]}: {a} != {b}"]
    return [] if a == b else [f"{path[:-1]}: {a!r} != {b!r}"]


def stats(pairs) -> tuple[int, float]:
    """The largest box coordinate and confidence differences seen, for the summary."""
    box, conf = 0, 0.0
    for a, b in pairs:
        if isinstance(a.get("box"), list) and isinstance(b.get("box"), list):
            box = max([box] + [abs(x - y) for x, y in zip(a["box"], b["box"])])
        if isinstance(a.get("confidence"), (int, float)) and isinstance(b.get("confidence"), (int, float)):
            conf = max(conf, abs(a["confidence"] - b["confidence"]))
    return box, conf


def read_lines(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("x86")
    parser.add_argument("arm")
    parser.add_argument("--box-px", type=int, default=0)
    parser.add_argument("--confidence", type=float, default=0.0)
    parser.add_argument("--label", default="readings")
    parser.add_argument("--fields", default=None, help="comma-separated top-level fields to compare (default: all)")
    args = parser.parse_args(argv)
    x86, arm = read_lines(args.x86), read_lines(args.arm)
    if args.fields:
        keep = args.fields.split(",")
        x86, arm = ([{k: v for k, v in line.items() if k in keep} for line in lines] for lines in (x86, arm))
    bad = []
    if len(x86) != len(arm):
        bad.append(f"{len(x86)} lines on x86, {len(arm)} emulated")
    for i, (a, b) in enumerate(zip(x86, arm)):
        where = a.get("image", a.get("sensor", "")) + (f" frame {a['frame']}" if "frame" in a else "")
        bad += [f"line {i + 1} ({where}): {d}" for d in differences(a, b, args.box_px, args.confidence)]
    if not x86:
        bad.append("nothing to compare: the x86 run printed no JSON lines")
    for line in bad:
        print(f"pi_compare: {args.label}: MISMATCH {line}")
    box, conf = stats(zip(x86, arm))
    print(f"pi_compare: {args.label}: {len(arm)} emulated vs {len(x86)} x86, {len(bad)} mismatch(es), "
          f"largest box difference {box} px, largest confidence difference {conf:.4f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
