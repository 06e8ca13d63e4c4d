"""scripts/pi-check.sh, the emulated Raspberry Pi check: its comparison, and that a wrong emulation fails it.

The comparison (scripts/pi_compare.py) is tested on its own. The end-to-end case runs the arm64 check with
QEMU's ``max`` CPU model, which makes LiteRT read wrong numbers silently on QEMU 7.2: the check must catch
that as a reading mismatch. It needs the userland that ``scripts/pi-check.sh arm64`` builds once (CI runs
that first); elsewhere it skips, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMPARE = REPO / "scripts" / "pi_compare.py"
CACHE = Path(os.environ.get("PI_CHECK_CACHE", "/var/cache/digitcam/pi-check"))

READING = {"image": "a.jpg", "value": "004711", "confidence": 0.973, "box": [39, 55, 226, 69],
           "digits": [{"digit": "0", "confidence": 0.9961}], "ms": 1.8}


def compare(tmp_path, x86: list[dict], arm: list[dict], *options: str) -> subprocess.CompletedProcess:
    for name, lines in (("x86", x86), ("arm", arm)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return subprocess.run([sys.executable, str(COMPARE), str(tmp_path / "x86.jsonl"), str(tmp_path / "arm.jsonl"),
                           *options], capture_output=True, text=True, timeout=60)


def test_identical_readings_pass_and_clocks_are_ignored(tmp_path):
    done = compare(tmp_path, [READING], [{**READING, "ms": 40.0}])
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith("0 mismatch(es), largest box difference 0 px, largest confidence difference 0.0000")


@pytest.mark.parametrize("change", [{"value": "004717"}, {"box": [40, 55, 226, 69]}, {"confidence": 0.95},
                                    {"digits": [{"digit": "8", "confidence": 0.9961}]}])
def test_any_other_difference_is_a_mismatch(tmp_path, change):
    done = compare(tmp_path, [READING], [{**READING, **change}])
    assert done.returncode == 1
    assert f"MISMATCH line 1 (a.jpg): {next(iter(change))}" in done.stdout


def test_tolerances_and_fields_are_what_they_say(tmp_path):
    arm = {**READING, "box": [42, 55, 226, 69], "confidence": 0.96, "candidates": []}
    assert compare(tmp_path, [READING], [arm], "--box-px", "3", "--confidence", "0.02",
                   "--fields", "image,value,box,confidence").returncode == 0
    assert compare(tmp_path, [READING], [arm], "--box-px", "2", "--confidence", "0.02",
                   "--fields", "image,value,box,confidence").returncode == 1
    assert compare(tmp_path, [READING], [READING, READING]).returncode == 1  # a missing line
    assert compare(tmp_path, [], []).returncode == 1  # nothing compared is no proof


def test_a_wrong_cpu_model_is_caught_as_a_reading_mismatch():
    if not (CACHE / "arm64" / "root" / "usr" / "bin" / "python3").is_file() or os.geteuid() != 0:
        pytest.skip(f"no arm64 userland in {CACHE}: run scripts/pi-check.sh arm64 (as root) once first")
    run = f"test-max-cpu-{os.getpid()}"  # its own folder: other runs of the check may be going on
    try:
        done = subprocess.run(["bash", str(REPO / "scripts" / "pi-check.sh"), "arm64", "--reads-only"], cwd=REPO,
                              env={**os.environ, "QEMU_CPU": "max", "PI_CHECK_CACHE": str(CACHE), "PI_CHECK_RUN": run},
                              capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(CACHE / "arm64" / run, ignore_errors=True)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "MISMATCH" in done.stdout and "value" in done.stdout
    assert "pi-check arm64: FAILED: readings or tests differ from x86 on emulated aarch64 (max)" in done.stderr
