"""A full disk or an unusable state directory: the spool keeps readings in memory, says so once, loses nothing
while the daemon lives, and nothing crashes.

Root ignores ``chmod``, so the faults are made in ways that stop root too: a file where the state
directory should be, a tiny tmpfs filled to the last byte (skipped where mounting is not allowed), and a
daemon whose file size limit (``RLIMIT_FSIZE``) is smaller than one spool file.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import pytest

from tests.support import ANONYMOUS, REPO, Subscriber, TOPICS, printed, received_in_order, wait_until, write_config

DEGRADED = "spooling in memory until restart"


def delivered_after_outage(broker, daemon, sub) -> None:
    """Start the broker, stop the daemon cleanly, and check every printed reading arrived in order."""
    broker.start()
    wait_until(lambda: "connected to broker" in daemon.log(), 30)
    assert daemon.stop() == 0
    made = printed(daemon)
    wait_until(lambda: len(received_in_order(sub)) >= len(made), 20)
    assert received_in_order(sub) == made
    assert daemon.log().count(DEGRADED) == 1, daemon.log()[-2000:]
    assert "Traceback" not in daemon.log()


@pytest.fixture
def watcher(make_broker):
    """A persistent broker, stopped, with a subscriber session waiting for the daemon's readings."""
    broker = make_broker(ANONYMOUS, persistent=True)
    sub = Subscriber(broker, (TOPICS.state("number"),), "disk-watcher", persistent=True)
    broker.stop()
    yield broker, sub
    sub.close()


def test_a_file_where_the_state_directory_should_be(tmp_path, model, clip, watcher, daemons):
    broker, sub = watcher
    config = write_config(tmp_path, model, clip[0], broker, loop=True, fps=20)
    (tmp_path / "state").write_text("not a directory")
    daemon = daemons(config, "--print")
    wait_until(lambda: len(daemon.printed()) >= 4, 60)
    assert "cannot use spool directory" in daemon.log()
    delivered_after_outage(broker, daemon, sub)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs at ``tmp_path/state``, unmounted at the end; skipped where mounting is not allowed."""
    mount_point = tmp_path / "state"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory) -> None:
    """Write a file until the filesystem is full."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_disk_fills_up_while_readings_are_spooled(tmp_path, model, clip, watcher, tiny_disk, daemons):
    broker, sub = watcher
    daemon = daemons(write_config(tmp_path, model, clip[0], broker, loop=True, fps=20), "--print")
    wait_until(lambda: len(daemon.printed()) >= 3, 60)
    on_disk = len(list((tiny_disk / "spool").glob("*.json")))
    assert on_disk >= 3, "the spool did not use the disk before it filled up"
    fill(tiny_disk)
    before = len(daemon.printed())
    wait_until(lambda: len(daemon.printed()) >= before + 4, 60)
    assert "No space left on device; " + DEGRADED in daemon.log()
    delivered_after_outage(broker, daemon, sub)


def test_file_size_limit_smaller_than_a_spool_file(tmp_path, model, clip, broker, subscribe):
    """``RLIMIT_FSIZE`` makes every spool write short: no truncated spool file may be taken for a reading."""
    sub = subscribe(TOPICS.state("number"))
    config = write_config(tmp_path, model, clip[0], broker, loop=True, fps=20)
    limit = 256  # bytes: a spool file is larger

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # logs and readings go to pipes: the limit would cut log files short too
    daemon = subprocess.Popen([sys.executable, "-m", "device.cli", "run", "--config", str(config), "--print"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=small_files)
    try:
        wait_until(lambda: len(received_in_order(sub)) >= 4, 60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err[-2000:]
    assert err.count("File too large; " + DEGRADED) == 1, err[-2000:]
    assert not [p for p in (tmp_path / "state" / "spool").glob("*.json")]  # no truncated file left behind
    assert len(out.splitlines()) >= 4 and "Traceback" not in err
