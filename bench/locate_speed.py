"""How long locate + read takes on a 640x480 frame, on one thread: the issue's 10 ms budget.

    .venv/bin/python bench/locate_speed.py [--locator models/locator.tflite] [--model models/digitcam.tflite]

Times, on rendered test scenes after a warm-up and with the device's own classes, the letterbox alone,
one locator pass (letterbox + interpreter + decoding), ``Locator.find`` as the device runs it (two
passes when the manifest says ``refine``), the recognizer on the crop, and find + read together;
prints 10th, 50th and 90th percentile milliseconds. Run it on an idle machine: on a shared one the median
measures the neighbours too, and the 10th percentile is the closer estimate of the model's own cost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.bundled import default_model  # noqa: E402
from device.locate import REPO_LOCATOR, Locator, decode_heatmap, fit_frame, whole_frame  # noqa: E402
from device.reader import FrameReader  # noqa: E402
from device.recognize import Recognizer  # noqa: E402


def scenes(n: int) -> list[np.ndarray]:
    """Rendered 640x480 test scenes; random frames where the trainer is not installed."""
    try:
        from trainer.sources import iter_scenes
    except ImportError:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(n)]
    return [frame for frame, _, _ in itertools.islice(iter_scenes("test", 99), n)]


def time_stages(locator: Locator, recognizer: Recognizer, frame: np.ndarray) -> dict[str, float]:
    """One frame: its stages alone (letterbox; one locator pass with decoding), then what the device
    does (``Locator.find``, with the second pass when the manifest asks for it, and the read), in seconds."""
    t0 = time.perf_counter()
    fit_frame(frame, locator.height, locator.width)
    t1 = time.perf_counter()
    heat, ltrb, fit = locator.maps(frame)
    decode_heatmap(heat, ltrb, 0.0)
    t2 = time.perf_counter()
    box = locator.find(frame) or whole_frame(frame)
    t3 = time.perf_counter()
    FrameReader(recognizer, locator).read_box(frame, box)
    t4 = time.perf_counter()
    return {"letterbox": t1 - t0, "one_pass": t2 - t1, "find": t3 - t2, "read": t4 - t3, "find_and_read": t4 - t2}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locator", type=Path, default=REPO_LOCATOR)
    parser.add_argument("--model", type=Path, default=None, help="recognizer (default: the bundled one)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10, help="passes over the frames")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    locator = Locator(args.locator, threads=1)
    recognizer = Recognizer(args.model or default_model(), threads=1)
    frames = scenes(args.frames)
    for frame in frames[:5]:  # warm-up: first invokes allocate
        time_stages(locator, recognizer, frame)
    samples = [time_stages(locator, recognizer, f) for _ in range(args.runs) for f in frames]
    report = {
        stage: {"median_ms": round(1000 * float(np.median(v)), 3), "p90_ms": round(1000 * float(np.percentile(v, 90)), 3),
                "p10_ms": round(1000 * float(np.percentile(v, 10)), 3)}
        for stage in samples[0]
        for v in [[s[stage] for s in samples]]
    }
    report["frames"] = len(samples)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for stage, r in report.items():
            if stage != "frames":
                print(f"{stage:15s} p10 {r['p10_ms']:7.3f} ms   median {r['median_ms']:7.3f} ms   p90 {r['p90_ms']:7.3f} ms")
        print(f"({len(samples)} frames of 640x480, 1 thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
