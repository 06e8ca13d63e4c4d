"""Soak: the real daemon for N minutes on a looping counter video while the broker is restarted at random.

    .venv/bin/python bench/soak.py --minutes 30            # the issue's figure
    .venv/bin/python bench/soak.py --minutes 3 --fps 10    # a short run

``digitcam run --print`` (a subprocess, as systemd runs it) reads the counter video from bench/daemon_parts.py
in a loop at ``--fps`` and publishes to a persistent mosquitto started here, which is stopped (SIGTERM)
every 20-60 s for 2-8 s (seeded). A paho subscriber with a persistent session records every state
message. At the end the daemon is stopped with SIGTERM and the script compares what the daemon printed
(each stable reading, printed after it was spooled) with what arrived, deduplicated by
(timestamp, frame, value), and the daemon's resident memory after the warm-up with its last sample.

Pass: no reading lost, order kept, RSS growth <= 5 MB. Prints its figures and one summary line; exit 1 on fail.
Not part of CI (it runs for minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.daemon_parts import free_port, make_video, write_config  # noqa: E402
from device.bundled import default_model  # noqa: E402

DEVICE, SENSOR = "soak", "counter"
STATE = f"digitcam/{DEVICE}/{SENSOR}/state"
RSS_LIMIT_MB = 5.0


class Broker:
    """A persistent mosquitto on a fixed port that can be stopped and started again."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""  # as root it would drop to 'mosquitto' and not persist
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {directory}/\n{user}")
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Watcher:
    """A paho subscriber with a persistent session: QoS 1 messages queued while it reconnects are kept."""

    def __init__(self, port: int):
        self.keys: list[tuple] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="soak-watcher", clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(STATE, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        state = json.loads(message.payload)
        self.keys.append((state["timestamp"], state["frame"], state["value"]))

    def unique(self) -> list[tuple]:
        seen, out = set(), []
        for key in list(self.keys):
            if key not in seen:
                seen.add(key)
                out.append(key)
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def soak(args) -> dict:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="digitcam-soak-"))
    video, box = make_video(work / "counter.mp4", numbers=40, hold=args.hold)
    broker = Broker(work)
    broker.start()
    watcher = Watcher(broker.port)
    config = write_config(work, Path(args.model), video, broker.port, f"roi = {list(box)}", device=DEVICE,
                          camera=f"fps = {args.fps}", mqtt="reconnect_min_s = 1\nreconnect_max_s = 4", threads=None,
                          stats_interval_s=10)
    out, err = open(work / "daemon.out", "wb"), open(work / "daemon.err", "wb")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    daemon = subprocess.Popen([sys.executable, "-m", "device.cli", "run", "--config", str(config), "--print"],
                              stdout=out, stderr=err, env=env, cwd=REPO)
    started = time.monotonic()
    end = started + args.minutes * 60
    warm_at = started + min(60.0, args.minutes * 60 * 0.2)
    rss_warm, rss_samples, restarts, down_s = None, [], 0, 0.0
    next_restart = started + rng.uniform(20, 60)
    try:
        while time.monotonic() < end:
            time.sleep(1.0)
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}; see {work / 'daemon.err'}")
            now = time.monotonic()
            rss_samples.append(rss_mb(daemon.pid))
            if rss_warm is None and now >= warm_at:
                rss_warm = rss_samples[-1]
            if now >= next_restart and now + 10 < end:
                pause = rng.uniform(2, 8)
                broker.stop()
                time.sleep(pause)
                broker.start()
                restarts, down_s = restarts + 1, down_s + pause
                next_restart = time.monotonic() + rng.uniform(20, 60)
        rss_end = rss_mb(daemon.pid)
        time.sleep(5.0)  # let the last outage's spool drain
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(60)
        printed = [json.loads(line) for line in (work / "daemon.out").read_text().splitlines() if line.strip()]
        made = [(p["timestamp"], p["frame"], p["value"]) for p in printed]
        deadline = time.monotonic() + 30
        while len(watcher.unique()) < len(made) and time.monotonic() < deadline:
            time.sleep(0.5)
        got = watcher.unique()
    finally:
        if daemon.poll() is None:
            daemon.kill()
        watcher.close()
        broker.stop()
        out.close()
        err.close()
    lost = len(set(made) - set(got))
    return {
        "minutes": round((time.monotonic() - started) / 60, 1), "fps": args.fps, "restarts": restarts,
        "broker_down_s": round(down_s, 1), "exit_code": code, "readings": len(made), "received": len(got),
        "lost": lost, "in_order": got[: len(made)] == made, "duplicates": len(watcher.keys) - len(got),
        "rss_warm_mb": round(rss_warm or rss_samples[0], 1), "rss_end_mb": round(rss_end, 1),
        "rss_max_mb": round(max(rss_samples), 1), "rss_growth_mb": round(rss_end - (rss_warm or rss_samples[0]), 2),
        "work_dir": str(work),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=10.0, help="frames a second the daemon reads")
    parser.add_argument("--hold", type=int, default=8, help="frames each counter value is shown")
    parser.add_argument("--model", default=str(default_model()))
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    r = soak(args)
    for key, value in r.items():
        print(f"{key:>14}: {value}")
    ok = r["lost"] == 0 and r["in_order"] and r["rss_growth_mb"] <= RSS_LIMIT_MB and r["exit_code"] == 0
    print(f"soak {'PASS' if ok else 'FAIL'}: {r['minutes']} min, {r['restarts']} broker restarts, {r['readings']} "
          f"readings, {r['lost']} lost, order {'kept' if r['in_order'] else 'BROKEN'}, "
          f"RSS {r['rss_warm_mb']} -> {r['rss_end_mb']} MB ({r['rss_growth_mb']:+.2f} MB, limit {RSS_LIMIT_MB})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
