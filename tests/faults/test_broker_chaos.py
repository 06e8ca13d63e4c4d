"""Broker chaos: the broker is stopped and started ten times at random (seeded) moments while the daemon reads.

Every stable reading the daemon made (it prints each one) must reach a subscriber at least once, in the
order it was made, and the retained availability must say ``online`` again after every restart and
``offline`` when the daemon stops.
"""

from __future__ import annotations

import random
import time

from tests.support import ANONYMOUS, Subscriber, TOPICS, printed, received_in_order, wait_until, write_config

RESTARTS = 10


def fresh(sub, topic: str, payload: bytes) -> int:
    """How many times ``payload`` was published live on ``topic`` (not replayed as a retained message)."""
    return sum(1 for p, retained in sub.on(topic) if p == payload and not retained)


def test_ten_broker_restarts_lose_no_reading_and_keep_order(tmp_path, model, clip, make_broker, daemons):
    rng = random.Random(8)
    broker = make_broker(ANONYMOUS, persistent=True)  # the watcher's queued messages survive each restart
    sub = Subscriber(broker, (TOPICS.state("number"), TOPICS.availability), "chaos-watcher", persistent=True)
    try:
        daemon = daemons(write_config(tmp_path, model, clip[0], broker, loop=True, fps=20), "--print")
        wait_until(lambda: fresh(sub, TOPICS.availability, b"online") == 1 and sub.on(TOPICS.state("number")), 60)
        made_while_down = 0
        for restart in range(RESTARTS):
            time.sleep(rng.uniform(0.3, 1.5))
            broker.stop()
            before = len(daemon.printed())
            time.sleep(rng.uniform(0.3, 1.5))
            made_while_down += len(daemon.printed()) - before
            broker.start()
            # availability follows the truth: the daemon is back and says so (not the broker's retained copy)
            wait_until(lambda: fresh(sub, TOPICS.availability, b"online") == restart + 2, 15)
            assert daemon.proc.poll() is None
        time.sleep(1.0)
        assert daemon.stop() == 0
        wait_until(lambda: sub.on(TOPICS.availability)[-1:] == [(b"offline", False)], 10)
        made = printed(daemon)
        wait_until(lambda: len(received_in_order(sub)) >= len(made), 20)
        assert made_while_down >= RESTARTS // 2, "the outages were too short to test anything"
        assert received_in_order(sub) == made
        assert "Traceback" not in daemon.log()
        assert daemon.log().count("lost the broker connection") <= RESTARTS  # once per outage, not per retry
    finally:
        sub.close()
