"""How long locate + read takes on a 640x480 frame, on one thread: issue 15's 15 ms budget.

    .venv/bin/python bench/locate_speed.py [--locator models/locator.tflite] [--model models/digitcam.tflite]
        [--cluttered] [--jpeg]

Times, on rendered test scenes after a warm-up and with the device's own classes, the letterbox alone,
one locator pass (letterbox + interpreter + decoding), ``Locator.find`` as the device runs it (two
passes when the manifest says ``refine``), the recognizer on the crop, and find + read together with
the single-box decoder; then what ``digitcam read`` does since locator v4, ``FrameReader.read_candidates``
(one pass, up to k candidate boxes, all their views in one recognizer call, the choice), and its ratio to
the single-box find + read in the same run. ``--cluttered`` times cluttered scenes instead (many
numbers: more candidates); ``--jpeg`` also times decoding a 4000x3000 JPEG whole and at reduced size.
Prints 10th, 50th and 90th percentile milliseconds. Run it on an idle machine: on a shared one the median
measures the neighbours too, and the 10th percentile is the closer estimate of the model's own cost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device.boxes import whole_frame  # noqa: E402
from device.bundled import default_model  # noqa: E402
from device.heatmap import decode_heatmap, fit_frame  # noqa: E402
from device.bundled import REPO_LOCATOR  # noqa: E402
from device.locate import Locator  # noqa: E402
from device.reader import FrameReader  # noqa: E402
from device.recognize import Recognizer  # noqa: E402


def scenes(n: int, cluttered: bool = False) -> list[np.ndarray]:
    """Rendered 640x480 test scenes (cluttered ones: ``trainer.cluttered``); random frames where the
    trainer is not installed."""
    try:
        from trainer.sources import iter_scenes
    except ImportError:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(n)]
    options = {"cluttered": 1.0} if cluttered else {}
    return [frame for frame, _, _ in itertools.islice(iter_scenes("test", 99, **options), n)]


def time_stages(locator: Locator, reader: FrameReader, frame: np.ndarray) -> dict[str, float]:
    """One frame: its stages alone (letterbox; one locator pass with decoding), then what the device
    did with one box (``Locator.find``, with the second pass when the manifest asks for it, and the
    read), then what it does with candidates (``read_candidates``), in seconds."""
    t0 = time.perf_counter()
    fit_frame(frame, locator.height, locator.width)
    t1 = time.perf_counter()
    heat, ltrb, fit = locator.maps(frame)
    decode_heatmap(heat, ltrb, 0.0)
    t2 = time.perf_counter()
    box = locator.find(frame) or whole_frame(frame)
    t3 = time.perf_counter()
    reader.read_box(frame, box)
    t4 = time.perf_counter()
    found = reader.read_candidates(frame)
    t5 = time.perf_counter()
    return {"letterbox": t1 - t0, "one_pass": t2 - t1, "find": t3 - t2, "read": t4 - t3, "find_and_read": t4 - t2,
            "read_candidates": t5 - t4, "candidates": len(found.candidates)}


def time_jpeg(runs: int = 5) -> dict[str, float]:
    """Median ms to decode a 4000x3000 photo-like JPEG whole and as ``digitcam read`` does (reduced)."""
    from device.images import decode_image, decode_reduced
    from device.oneshot import READ_MIN_SIDE

    rng = np.random.default_rng(3)
    img = cv2.resize(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    out = {}
    for name, decode in (("jpeg_4000x3000_full", lambda: decode_image(data)),
                         ("jpeg_4000x3000_reduced", lambda: decode_reduced(data, min_side=READ_MIN_SIDE)[0])):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            frame = decode()
            times.append(time.perf_counter() - start)
        out[name] = {"median_ms": round(1000 * float(np.median(times)), 2), "shape": list(frame.shape[:2])}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locator", type=Path, default=REPO_LOCATOR)
    parser.add_argument("--model", type=Path, default=None, help="recognizer (default: the bundled one)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10, help="passes over the frames")
    parser.add_argument("--cluttered", action="store_true", help="time cluttered scenes (many numbers each)")
    parser.add_argument("--jpeg", action="store_true", help="also time decoding a 4000x3000 JPEG")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    locator = Locator(args.locator, threads=1)
    reader = FrameReader(Recognizer(args.model or default_model(), threads=1), locator)
    frames = scenes(args.frames, args.cluttered)
    for frame in frames[:5]:  # warm-up: first invokes allocate
        time_stages(locator, reader, frame)
    samples = [time_stages(locator, reader, f) for _ in range(args.runs) for f in frames]
    report = {
        stage: {"median_ms": round(1000 * float(np.median(v)), 3), "p90_ms": round(1000 * float(np.percentile(v, 90)), 3),
                "p10_ms": round(1000 * float(np.percentile(v, 10)), 3)}
        for stage in samples[0] if stage != "candidates"
        for v in [[s[stage] for s in samples]]
    }
    report["candidates_mean"] = round(float(np.mean([s["candidates"] for s in samples])), 2)
    for q in ("p10", "median"):  # on a shared machine the p10 ratio is the closer estimate
        report[f"ratio_{q}"] = round(report["read_candidates"][f"{q}_ms"] / report["find_and_read"][f"{q}_ms"], 2)
    report["frames"] = len(samples)
    if args.jpeg:
        report |= time_jpeg()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for stage, r in report.items():
            if isinstance(r, dict) and "p10_ms" in r:
                print(f"{stage:15s} p10 {r['p10_ms']:7.3f} ms   median {r['median_ms']:7.3f} ms   p90 {r['p90_ms']:7.3f} ms")
            elif isinstance(r, dict):
                print(f"{stage:23s} median {r['median_ms']:7.2f} ms -> {r['shape'][1]}x{r['shape'][0]}")
        print(f"({len(samples)} frames of 640x480{', cluttered' if args.cluttered else ''}, 1 thread; "
              f"{report['candidates_mean']} candidates a frame)")
        print(f"read_candidates / single-box find_and_read, same run: {report['ratio_p10']}x at p10, "
              f"{report['ratio_median']}x at the median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
