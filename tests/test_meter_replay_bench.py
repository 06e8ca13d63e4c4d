"""bench/meter_replay.py runs end to end in --quick mode on the real held-out meter crops and reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_meter_replay_reports_both_engines_per_held_out_meter():
    pytest.importorskip("tensorflow")  # trainer.meters composes the strips
    from trainer.meters import archive_path

    if not archive_path().is_file():
        pytest.skip(f"no meter digits at {archive_path()}")
    done = subprocess.run([sys.executable, "bench/meter_replay.py", "--quick"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[1].startswith("|---") and len(table) >= 4, lines
    assert any("| digit-wise meter |" in line for line in table) and any("| whole-string" in line for line in table)
    assert lines[-1].startswith("meter_replay: ") and "wrong of" in lines[-1], lines[-1]
