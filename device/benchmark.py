"""``digitcam bench``: how fast the installed model reads on this machine, median and p95 ms per crop.

A user sizing a Pi asks "how many reads per second will I get here?"; this answers it on the device
itself, without TensorFlow or data sets. It times the real call path: ``Recognizer.read`` on a crop
(prepare + invoke + decode) and, when a locator is installed, ``Locator.find`` + ``read`` on a 640x480
frame. Inputs are synthetic (a number drawn with OpenCV): latency depends on sizes, not on the digits.

``--json`` prints what a Pi owner should send back (``report``): the model (name, version, sha256), the
platform (machine, Python's bitness, OS, Python, CPU, board), the runtime (package, version, delegate,
threads) and the ms per crop and per frame. ``bench/latency.py`` reuses ``measure`` for its tables and runs
this module as a subprocess in the tflite-runtime venv for its flat row:
``python -m device.benchmark --runtime tflite-runtime --row``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from device import locate
from device.bundled import default_model
from device.reader import FrameReader
from device.recognize import Recognizer
from device.runtime import platform_info

log = logging.getLogger(__name__)

FRAME_SIZE = (480, 640)  # height, width: the daemon's usual camera frame
WARMUP_RUNS = 20


def draw_number(image: np.ndarray, text: str, box: tuple[int, int, int, int]) -> None:
    """Draw ``text`` as dark digits on a light plate filling ``box`` (x, y, w, h), in place."""
    x, y, w, h = box
    cv2.rectangle(image, (x, y), (x + w, y + h), (225, 225, 215), thickness=-1)
    scale = cv2.getFontScaleFromHeight(cv2.FONT_HERSHEY_SIMPLEX, int(h * 0.6), 2)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    org = (x + max(0, (w - tw) // 2), y + (h + th) // 2)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (30, 30, 30), 2, cv2.LINE_AA)


def synthetic_crop(text: str = "04711", height: int = 40, width: int = 160) -> np.ndarray:
    """A crop of the size a number usually has in a 640x480 frame."""
    crop = np.full((height, width, 3), 225, np.uint8)
    draw_number(crop, text, (0, 0, width, height))
    return crop


def synthetic_frame(text: str = "04711", seed: int = 0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 640x480 frame of mild noise with one number plate; returns (frame, the plate's box)."""
    rng = np.random.default_rng(seed)
    h, w = FRAME_SIZE
    frame = rng.normal(110, 25, (h, w, 3)).clip(0, 255).astype(np.uint8)
    frame = cv2.GaussianBlur(frame, (5, 5), 0)
    box = (240, 200, 160, 40)
    draw_number(frame, text, box)
    return frame, box


def summarize(samples_ms) -> dict:
    """Median and 95th percentile of a list of milliseconds."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    return {"median_ms": float(np.median(arr)), "p95_ms": float(np.percentile(arr, 95)), "n": int(arr.size)}


def time_calls(call, runs: int, warmup: int = WARMUP_RUNS) -> dict:
    """Wall time of ``call()`` over ``runs`` calls after ``warmup`` untimed ones (caches, XNNPACK packing)."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return summarize(samples)


def read_frame(reader: FrameReader, frame: np.ndarray, fallback_box) -> None:
    """One frame's work in the daemon: find the number, crop it, read it.

    If the locator misses the synthetic plate the read still runs on ``fallback_box``, so the figure is
    always locate + read.
    """
    reader.read_box(frame, reader.find(frame) or fallback_box)


def measure_reader(recognizer, runs: int = 300, locator=None) -> dict:
    """Per-crop (and, with a locator, per-frame) latency of anything with ``read(crops)``."""
    crop = synthetic_crop()
    invoke_ms = []  # what ``read`` reports: the interpreter alone, without preparing and decoding

    def read_crop():
        invoke_ms.append(recognizer.read([crop])[1])

    result = {"crop": time_calls(read_crop, runs)}
    result["crop"]["invoke_median_ms"] = summarize(invoke_ms[-runs:])["median_ms"]
    if locator is not None:
        frame, box = synthetic_frame()
        reader = FrameReader(recognizer, locator)
        result["frame"] = time_calls(lambda: read_frame(reader, frame, box), runs)
        result["locator"] = str(locator.model_path)
        result["locator_macs"] = locator.manifest.get("macs")
        result["locator_found"] = locator.find(frame) is not None
        result["locator_id"] = {key: locator.manifest.get(key) for key in ("name", "version", "sha256")}
    return result


def measure(model, threads: int = 1, runtime: str = "auto", runs: int = 300, locator_path=None) -> dict:
    """Latency of one int8 model on one runtime and thread count; the locator is the bundled one unless
    ``locator_path`` names another ('' for none)."""
    recognizer = Recognizer(model, threads=threads, runtime=runtime)
    locator = locate.default_locator(locator_path or None, threads=threads, runtime=runtime) if locator_path != "" else None
    return {
        "model": str(model),
        "runtime": recognizer.runtime,
        "threads": threads,
        "macs": recognizer.manifest.data.get("macs"),
        "size_bytes": Path(model).stat().st_size,
        **measure_reader(recognizer, runs, locator),
        "model_id": {"name": recognizer.manifest.name, "version": recognizer.manifest.version,
                     "sha256": recognizer.manifest.sha256},
        "runtime_info": recognizer.runtime_info(),  # after the reads, which apply the delegate
    }


def report(row: dict) -> dict:
    """``digitcam bench --json``: one ``measure`` row as a Pi owner should send it back."""
    try:
        version = metadata.version("digitcam")
    except metadata.PackageNotFoundError:
        version = "?"
    locator = None
    if "frame" in row:
        locator = {**row["locator_id"], "file": Path(row["locator"]).name, "macs": row["locator_macs"],
                   "found_the_plate": row["locator_found"]}
    return {"digitcam": version,
            "model": {**row["model_id"], "file": Path(row["model"]).name, "macs": row["macs"],
                      "size_bytes": row["size_bytes"]},
            "locator": locator, "platform": platform_info(), "runtime": row["runtime_info"],
            "ms_per_crop": row["crop"], "ms_per_frame": row.get("frame")}


def machine() -> str:
    """CPU model and core count, for the header of every table."""
    plat = platform_info()
    return f"{plat['cpu']}, {plat['cores']} cores, Python {plat['python']}"


def print_table(result: dict) -> None:
    print(f"# {machine()}")
    print(f"{'what':<22} {'median ms':>10} {'p95 ms':>10} {'per s':>8}")
    rows = [("crop (read)", result["crop"])]
    if "frame" in result:
        rows.append(("frame (locate+read)", result["frame"]))
    for name, t in rows:
        print(f"{name:<22} {t['median_ms']:>10.3f} {t['p95_ms']:>10.3f} {1000.0 / t['median_ms']:>8.0f}")
    print(f"{'crop, interpreter only':<22} {result['crop']['invoke_median_ms']:>10.3f}")


def summary_line(result: dict) -> str:
    line = (f"digitcam bench: {Path(result['model']).name} on {result['runtime']}, {result['threads']} thread(s): "
            f"{result['crop']['median_ms']:.3f} ms/crop median, {result['crop']['p95_ms']:.3f} ms p95")
    if "frame" in result:
        line += f"; {result['frame']['median_ms']:.3f} ms/frame (locate+read) median"
    return line


def main(args) -> int:
    model = getattr(args, "model", None) or default_model()
    result = measure(model, threads=args.threads, runtime=getattr(args, "runtime", "auto"), runs=args.runs,
                     locator_path=getattr(args, "locator", None))
    if getattr(args, "row", False):
        print(json.dumps(result))
        return 0
    if getattr(args, "json", False):
        print(json.dumps(report(result)))
        return 0
    print_table(result)
    print(summary_line(result))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from device.cli import add_bench_arguments

    cli = argparse.ArgumentParser(prog="python -m device.benchmark", description=__doc__.splitlines()[0])
    add_bench_arguments(cli)
    sys.exit(main(cli.parse_args()))
