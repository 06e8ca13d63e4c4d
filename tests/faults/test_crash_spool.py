"""Crashes and power cuts: what was spooled on disk outlives the process that wrote it.

The daemon prints a reading only after the spool has written and fsynced it, so every printed reading
must still be there after a SIGKILL. A process appending and removing spool files is killed at random
moments (a power cut, as far as the files can tell): every acknowledged message survives intact, and
no half-written file is ever taken for a message.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from device.spool import Spool
from tests.support import REPO, reading_key, Subscriber, TOPICS, printed, received_in_order, wait_until, write_config


def spooled(directory) -> list[tuple[int, str]]:
    """(frame, value) of the readings in a spool directory, oldest first, read the way the daemon reads them."""
    return [reading_key(json.loads(m.payload)) for m in Spool(directory).pending()]


def test_sigkill_with_readings_spooled_then_restart_delivers_them(tmp_path, model, clip, make_broker, daemons):
    broker = make_broker()
    broker.stop()  # readings pile up in the spool
    config = write_config(tmp_path, model, clip[0], broker, loop=True, fps=20)
    first = daemons(config, "--print")
    wait_until(lambda: len(first.printed()) >= 6, 60)
    first.proc.kill()  # no flush, no goodbye
    first.proc.wait()
    made = printed(first)
    on_disk = spooled(tmp_path / "state" / "spool")
    assert on_disk[: len(made)] == made, "a printed reading is missing from the spool"
    assert len(on_disk) - len(made) <= 1  # at most the one spooled but not yet printed when the kill came
    broker.start()
    sub = Subscriber(broker, (TOPICS.state("number"),), "after-crash")
    try:
        second = daemons(config, "--print")
        wait_until(lambda: len(second.printed()) >= 2, 60)
        assert second.stop() == 0
        wait_until(lambda: len(received_in_order(sub)) >= len(on_disk) + len(printed(second)), 15)
        assert received_in_order(sub) == on_disk + printed(second)  # the old run's readings first, in order
        assert f"{len(on_disk)} undelivered message(s) from an earlier run" in second.log()
        assert spooled(tmp_path / "state" / "spool") == []
    finally:
        sub.close()


WRITER = """
import sys
from device.spool import Spool
spool = Spool(sys.argv[1])
start = int(sys.argv[2])
for i in range(start, start + 100000):
    msg = spool.append("digitcam/d/s/state", "reading %d " % i + "x" * (i % 700))
    print("A", msg.seq, i, flush=True)
    if i % 3 == 0:
        oldest = spool.pending(limit=1)[0].seq
        print("R?", oldest, flush=True)
        spool.remove(oldest)
        print("R", oldest, flush=True)
"""


def test_spool_survives_sigkill_at_random_moments(tmp_path):
    """Ten writers killed mid-stream: acknowledged appends survive intact, acknowledged removes stay removed."""
    directory = tmp_path / "spool"
    rng = random.Random(5)
    expected: dict[int, int] = {}  # seq -> i of every message that must be in the spool
    next_i = 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(10):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(next_i)],
                                  stdout=subprocess.PIPE, text=True, env=env)
        head = [writer.stdout.readline() for _ in range(rng.randint(5, 30))]  # let it get going
        time.sleep(rng.uniform(0.0, 0.05))  # then cut the power somewhere in its write/fsync/rename cycle
        writer.send_signal(signal.SIGKILL)
        out = "".join(head) + writer.communicate()[0]
        removing = set()  # removes cut off by the kill: either outcome is fine
        lines = out.split("\n")
        lines.pop()  # empty, or a line the kill cut short: never acknowledged (a torn "R" follows its "R?")
        for line in lines:
            kind, seq, *rest = line.split()
            if kind == "A":
                expected[int(seq)] = int(rest[0])
                next_i = int(rest[0]) + 1
            elif kind == "R?":
                removing.add(int(seq))
            else:
                expected.pop(int(seq))
                removing.discard(int(seq))
        after = {m.seq: m.payload for m in Spool(directory).pending()}
        assert not (directory / "corrupt").exists(), "a killed write left a torn spool file"
        assert not list(directory.glob("*.tmp"))  # loading clears what a crash left half-written
        lost = set(expected) - removing - set(after)
        assert not lost, f"acknowledged messages lost: {sorted(lost)}"
        in_flight = set(after) - set(expected)
        assert len(in_flight) <= 1, f"messages nobody wrote: {sorted(in_flight)}"
        for seq in in_flight:  # the append the kill interrupted, completed whole
            expected[seq] = next_i
            next_i += 1
        for seq, payload in after.items():
            assert payload.startswith(f"reading {expected[seq]} "), f"message {seq} is not the one written"
        expected = {seq: i for seq, i in expected.items() if seq in after}
    assert next_i > 100, "the writers were killed before writing much: the test proved little"


def test_corrupt_spool_files_are_moved_aside_and_the_rest_delivered(tmp_path, model, clip, make_broker, daemons):
    broker = make_broker()
    broker.stop()
    config = write_config(tmp_path, model, clip[0], broker)  # one pass over the clip, then exit
    first = daemons(config, "--print")
    assert first.wait(120) == 0
    spool_dir = tmp_path / "state" / "spool"
    files = sorted(spool_dir.glob("*.json"))
    assert len(files) >= 4, "too few readings to corrupt some of them"
    made = printed(first)
    files[1].write_bytes(files[1].read_bytes()[:20])  # torn
    files[2].write_bytes(b"")  # empty: a crash of a writer that did not fsync
    files[3].write_bytes(b"\x00\xff" * 40)  # garbage
    broker.start()
    sub = Subscriber(broker, (TOPICS.state("number"),), "after-corruption")
    try:
        second = daemons(config, "--max-frames", "1")
        assert second.wait(60) == 0
        kept = [made[0], *made[4:]]
        wait_until(lambda: len(received_in_order(sub)) >= len(kept), 15)
        assert received_in_order(sub)[: len(kept)] == kept
        log = second.log()
        for f in files[1:4]:
            assert f"spool file {f} is corrupt" in log and (spool_dir / "corrupt" / f.name).is_file()
        assert "Traceback" not in log
    finally:
        sub.close()
