"""The crop store's numbers in the stats topic, from a real ``digitcam run`` (real mosquitto, committed model,
drawn meter frames, ``collect = true``), against what the store holds on disk: its crops per kind, per lowest
digit and their bytes, within its bound, and again after a restart, before anything new is written.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from tests.support import TOPICS, number_crop, number_frame, wait_until, write_config

COUNTING = ["004711", "004712", "004713", "004714", "004715"]
COLLECT = ('mode = "meter"\ndigits = 6\ndecimals = 3\nconfirm_s = 0.5\nmax_step = 2\n'
           'collect = true\ncollect_max_mb = {mb}')
MAX_MB = 0.1  # the smallest bound the config allows


def drawn(folder: Path, plan) -> Path:
    """A folder source: for each (value, count) of ``plan``, ``count`` frames showing it, fresh noise on each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    frames = [number_crop(value) for value, count in plan for _ in range(count)]
    for i, crop in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), number_frame(crop, rng))
    return folder


def on_disk(folder: Path) -> dict:
    """The store's numbers counted from its files: ``<ms>-<seq>-<kind>-<label>-r<raw>-c<conf %>.png``."""
    files = sorted(folder.glob("*.png"))
    kinds = Counter(p.name.split("-")[2] for p in files)
    labels = [p.name.split("-")[3] for p in files]
    return {"crops": len(files), "auto": kinds["auto"], "human": kinds["human"], "review": kinds["review"],
            "bytes": sum(p.stat().st_size for p in files), "max_bytes": int(MAX_MB * 1024 * 1024),
            "by_digit": dict(sorted(Counter(label[-1] for label in labels if label != "x").items()))}


def last_crop_stats(sub, skip: int = 0) -> dict:
    """The crop numbers of the last stats message (after the first ``skip``) that had them, once the writer's
    queue was empty."""
    reports = [json.loads(p).get("crops") for p in sub.payloads(TOPICS.stats)[skip:]]
    done = [r for r in reports if r and r["queued"] == 0 and "number" in r["sensors"]]
    assert done, f"no stats message with crop numbers among {len(reports)}"
    return done[-1]["sensors"]["number"]


def test_published_crop_stats_match_the_store_on_disk_and_survive_a_restart(tmp_path, model, broker, subscribe,
                                                                              daemons):
    store = tmp_path / "state" / "crops" / "number"
    sub = subscribe(TOPICS.stats)
    # each value long enough for a few crops a second apart; the last one stays (its crops wait for the next)
    frames = drawn(tmp_path / "counting", [(v, 30) for v in COUNTING] + [(COUNTING[-1], 40)])
    config = write_config(tmp_path, model, frames, broker, fps=10, sensor_extra=COLLECT.format(mb=MAX_MB))
    daemon = daemons(config)
    assert daemon.wait(90) == 0, daemon.log()[-2000:]
    wait_until(lambda: sub.payloads(TOPICS.stats), 5)
    disk = on_disk(store)
    assert last_crop_stats(sub) == disk
    assert disk["auto"] >= 3 and set(disk["by_digit"]) >= {"2", "3", "4"}  # 004712..004714 were confirmed
    assert 0 < disk["bytes"] <= disk["max_bytes"]

    # a restart on the value that stays: nothing new is labelled, the stats count the store found on disk
    first_run = len(sub.payloads(TOPICS.stats))
    again = drawn(tmp_path / "staying", [(COUNTING[-1], 30)])
    config = write_config(tmp_path, model, again, broker, fps=10, sensor_extra=COLLECT.format(mb=MAX_MB))
    daemon = daemons(config)
    assert daemon.wait(60) == 0, daemon.log()[-2000:]
    wait_until(lambda: len(sub.payloads(TOPICS.stats)) > first_run, 5)
    assert on_disk(store) == disk
    assert last_crop_stats(sub, first_run) == disk
