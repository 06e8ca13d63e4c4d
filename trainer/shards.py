"""A pre-rendered training cache: shards of prepared uint8 crops, rendered in parallel, read memory-mapped.

Rendering and framing a crop costs more CPU than a training step of the small recognizer, so rendering
on the fly starves the trainer. ``render_shards`` draws the training mix once, in worker processes, into
``shard-NNNNN.x.npy`` (uint8 [n, H, W, 1], exactly what the device feeds the model) and ``.y.npy``
(int32 [n, 8] CTC targets); a shard is written to a temporary name and renamed, so an interrupted
render resumes at the first missing shard. ``ShardReader`` samples batches across every shard present
and looks for new ones at each epoch, so a second renderer can refresh the cache while training runs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from device.contract import MAX_DIGITS, InputSpec

log = logging.getLogger(__name__)

SHARD_SIZE = 4096
MANIFEST = "cache.json"


def shard_paths(folder: Path, index: int) -> tuple[Path, Path]:
    return folder / f"shard-{index:05d}.x.npy", folder / f"shard-{index:05d}.y.npy"


def render_one(folder: str, index: int, mix: dict, options: dict, seed: int, spec: tuple, size: int) -> int:
    """Render shard ``index`` of the mix (sources drawn by weight, seeded by shard): returns its size."""
    from trainer.pipeline import encode_sample
    from trainer.sources import iter_samples

    folder = Path(folder)
    x_path, y_path = shard_paths(folder, index)
    if x_path.is_file() and y_path.is_file():
        return size
    input_spec = InputSpec(height=spec[0], width=spec[1])
    names = sorted(n for n, w in mix.items() if w > 0)
    weights = np.array([mix[n] for n in names], np.float64)
    rng = np.random.default_rng([seed, index])
    streams = {n: iter_samples(n, "train", seed * 100003 + index, **options.get(n, {})) for n in names}
    picks = rng.choice(len(names), size=size, p=weights / weights.sum())
    xs = np.empty((size, spec[0], spec[1], 1), np.uint8)
    ys = np.empty((size, MAX_DIGITS), np.int32)
    for i, k in enumerate(picks):
        image, label = next(streams[names[k]])
        xs[i], ys[i] = encode_sample(image, label, input_spec)
    for path, array in ((x_path, xs), (y_path, ys)):
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, array)
        os.replace(tmp, path)
    return size


def render_shards(folder: Path, mix: dict, options: dict, seed: int, spec: InputSpec, samples: int,
                  workers: int = 2, first: int = 0, progress=print) -> int:
    """Render shards ``first ..`` until the folder holds ``samples`` samples; returns samples per second."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"mix": mix, "options": options, "seed": seed, "input": [spec.height, spec.width],
            "shard_size": SHARD_SIZE}
    manifest = folder / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()) != meta:
        raise ValueError(f"cache {folder} was rendered with other settings ({manifest}); use another folder")
    manifest.write_text(json.dumps(meta, indent=1))
    count = -(-samples // SHARD_SIZE)
    todo = [i for i in range(first, first + count) if not all(p.is_file() for p in shard_paths(folder, i))]
    start, done = time.monotonic(), 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(render_one, str(folder), i, mix, options, seed, (spec.height, spec.width), SHARD_SIZE)
                for i in todo]
        for job in jobs:
            done += job.result()
            rate = done / max(1e-9, time.monotonic() - start)
            progress(f"cache {folder}: {done}/{len(todo) * SHARD_SIZE} samples, {rate:.0f}/s")
    return int(done / max(1e-9, time.monotonic() - start))


class ShardReader:
    """Random batches from every complete shard in a folder, memory-mapped (the OS keeps hot pages)."""

    def __init__(self, folder: Path, seed: int):
        self.folder = Path(folder)
        self.rng = np.random.default_rng(seed)
        self.shards: list[tuple[np.ndarray, np.ndarray]] = []
        self.refresh()

    def refresh(self) -> int:
        """Pick up shards rendered since the last look; returns how many samples are available."""
        while True:
            paths = shard_paths(self.folder, len(self.shards))
            if not all(p.is_file() for p in paths):
                break
            self.shards.append(tuple(np.load(p, mmap_mode="r") for p in paths))
        if not self.shards:
            raise FileNotFoundError(f"no cache shards in {self.folder}: `digitcam train CONFIG` renders "
                                    f"data.cache_samples of them first")
        return sum(len(y) for _, y in self.shards)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` samples drawn uniformly from all shards (a few shards per batch keeps reads local)."""
        picks = self.rng.integers(0, len(self.shards), size)
        xs, ys = [], []
        for s in np.unique(picks):
            x, y = self.shards[s]
            rows = np.sort(self.rng.integers(0, len(y), int((picks == s).sum())))
            xs.append(x[rows])
            ys.append(y[rows])
        x, y = np.concatenate(xs), np.concatenate(ys)
        order = self.rng.permutation(len(y))
        return x[order], y[order]
