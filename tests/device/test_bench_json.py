"""``digitcam bench --json`` on the bundled models: the report a Pi owner sends back says which model, which
platform and which runtime the milliseconds were measured with (docs/BENCHMARKS.md asks for it)."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata

from device.manifest import load_manifest
from device.runtime import PACKAGES
from tests.support import MODEL, run_cli

RUNTIME = os.environ.get("DIGITCAM_RUNTIME", "litert")


def test_bench_json_reports_model_platform_runtime_and_milliseconds():
    done = run_cli("bench", "--json", "--runs", "5", "--runtime", RUNTIME)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    manifest = load_manifest(MODEL)
    assert {k: report["model"][k] for k in ("name", "version", "sha256", "file")} == {
        "name": manifest.name, "version": manifest.version, "sha256": manifest.sha256, "file": MODEL.name}
    assert report["platform"]["machine"] == platform.machine()
    assert report["platform"]["python"] == platform.python_version()
    assert report["platform"]["os"] and report["platform"]["cores"] >= 1
    package = PACKAGES[RUNTIME]
    assert report["runtime"] == {"name": package, "version": metadata.version(package),
                                 "delegate": "XNNPACK" if RUNTIME == "litert" else "built-in kernels", "threads": 1}
    for part in ("ms_per_crop", "ms_per_frame"):  # the bundled locator makes the per-frame figure
        assert report[part]["n"] == 5 and 0 < report[part]["median_ms"] <= report[part]["p95_ms"], report[part]
    assert report["locator"]["sha256"] and report["locator"]["found_the_plate"] in (True, False)


def test_bench_row_is_the_flat_measurement_bench_latency_reads():
    done = run_cli("bench", "--row", "--runs", "3", "--locator", "", "--runtime", RUNTIME)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["runtime"] == RUNTIME and row["threads"] == 1 and "frame" not in row
    assert row["crop"]["n"] == 3 and row["model"].endswith(MODEL.name)
