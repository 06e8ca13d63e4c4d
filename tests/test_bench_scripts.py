"""Each benchmark script runs end to end in its ``--quick`` mode and prints its table and summary line.

Only that they run and report is checked, never how fast anything was: timings belong in the scripts'
output and docs/BENCHMARKS.md, not in assertions.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.data import full_data_missing, make_data_dir

REPO = Path(__file__).resolve().parent.parent


def run_script(*args: str, timeout: float = 300, env: dict | None = None) -> list[str]:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()


def assert_reports(lines: list[str], summary_prefix: str) -> None:
    """A markdown table (header, rule, at least one row) and, last, one summary line."""
    table = [line for line in lines if line.startswith("|")]
    assert len(table) >= 3, lines
    assert table[1].startswith("|---"), table
    assert lines[-1].startswith(summary_prefix), lines[-1]


def test_digitcam_bench_reports_per_crop_latency(tiny_model):
    lines = run_script("-m", "device.cli", "bench", "--model", str(tiny_model), "--runs", "20")
    assert lines[-1].startswith("digitcam bench: tiny.tflite on litert, 1 thread(s):"), lines
    assert any(line.startswith("crop (read)") for line in lines)


def test_latency_compares_int8_float_and_runtimes(tiny_model):
    run_dir = tiny_model.parent / "run"  # the tiny_model fixture trains here
    lines = run_script("bench/latency.py", "--quick", "--threads", "1", "--model", str(tiny_model),
                       "--float-from-run", str(run_dir), "--locator", "")
    assert_reports(lines, "latency: int8 on litert, 1 thread(s):")
    assert any("| float32 " in line for line in lines), lines
    if (REPO / ".venv-tflite" / "bin" / "python").is_file():
        assert any("| tflite-runtime |" in line for line in lines), lines


def test_accuracy_vs_peers_reads_every_set_with_every_engine(tiny_model, tmp_path):
    if shutil.which("tesseract") is None or importlib.util.find_spec("rapidocr_onnxruntime") is None:
        pytest.skip("needs tesseract-ocr and rapidocr-onnxruntime (scripts/setup.sh --dev)")
    env = None
    if full_data_missing("meters"):  # the held-out meters of the committed sample instead
        env = {"DIGITCAM_DATA": str(make_data_dir(tmp_path / "data")), "DIGITCAM_CACHE": str(tmp_path / "cache")}
    lines = run_script("bench/accuracy_vs_peers.py", "--quick", "--model", str(tiny_model),
                       "--sets", "meters", "house-numbers", env=env)
    assert_reports(lines, "accuracy_vs_peers: ")
    for engine in ("digitcam", "tesseract psm 7", "rapidocr full", "rapidocr rec-only"):
        assert any(f"| meters | {engine}" in line for line in lines), engine


def test_daemon_bench_publishes_through_a_real_broker(tiny_model):
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("needs mosquitto and mosquitto-clients (scripts/setup.sh --dev)")
    lines = run_script("bench/daemon.py", "--quick", "--model", str(tiny_model))
    assert_reports(lines, "daemon: ")
    row = next(line for line in lines if line.startswith("| ") and line[2].isdigit())
    publishes = int(row.split("|")[3].split("/")[0])
    assert publishes > 0, row
