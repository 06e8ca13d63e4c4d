"""Samples per second of each data source on one core, as the model sees them (after ``prepare_crop``).

    .venv/bin/python bench/data_speed.py [--n 2000] [--sources rendered mnist ...] [--svhn-dir DIR]

OpenCV is held to one thread and the rate is counted per CPU second of this process, so the number is
per core even on a busy machine; the target for the rendered source is >= 1,000 samples/s
(docs/DATA.md records the measurements). Scenes are whole 480x640 frames, not model inputs.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from device.contract import prepare_crop  # noqa: E402
from trainer.sources import SOURCES, iter_samples, iter_scenes  # noqa: E402

DEFAULT = ("rendered", "rendered-easy", "mnist", "meters", "meter-strips", "scenes")


def measure(stream, n: int, prepare: bool = True) -> tuple[float, float, float]:
    """(generated/CPU-s, generated+prepared/CPU-s, generated+prepared/wall-s) over n samples after a warm-up.

    CPU time of this single-threaded process is what one core delivers, whatever else the machine is
    busy with; wall time shows what a shared machine gives right now. ``prepare_crop`` (the device's
    preprocessing, run by the pipeline on every sample) is timed apart so both numbers are visible.
    """
    for _ in itertools.islice(stream, 20):
        pass
    wall, cpu = time.perf_counter(), time.process_time()
    prep = 0.0
    count = 0
    for item in itertools.islice(stream, n):
        if prepare:
            t = time.process_time()
            prepare_crop(item[0])
            prep += time.process_time() - t
        count += 1
    cpu = time.process_time() - cpu
    return count / (cpu - prep), count / cpu, count / (time.perf_counter() - wall)


def stream_for(name: str, args):
    if name == "scenes":
        return iter_scenes("train", 0)
    if name == "rendered-easy":
        return iter_samples("rendered", "train", 0, difficulty="easy")
    options = {"svhn_dir": args.svhn_dir} if name == "svhn" else {}
    return iter_samples(name, "train", 0, **options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--sources", nargs="+", default=list(DEFAULT), choices=[*SOURCES, *DEFAULT])
    parser.add_argument("--svhn-dir", type=Path, default=None)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"{'source':<14} {'generated/CPU-s':>16} {'+prepare_crop/CPU-s':>20} {'+prepare_crop/wall-s':>21}")
    for name in args.sources:
        n = args.n // 10 if name == "scenes" else args.n
        gen, total, wall = measure(stream_for(name, args), n, prepare=name != "scenes")
        print(f"{name:<14} {gen:>16.0f} {total:>20.0f} {wall:>21.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
