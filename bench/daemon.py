"""The daemon end to end on a video file, one thread: frames/s, frame-to-MQTT latency, memory.

    .venv/bin/python bench/daemon.py [--model M] [--duration 600] [--locate [--locate-every N]]
    taskset -c 1 .venv/bin/python bench/daemon.py --duration 600     # the recorded one-core figures
    .venv/bin/python bench/daemon.py --quick                          # a few seconds, to check it runs
    taskset -c 1 .venv/bin/python bench/daemon.py --viewer --duration 190   # frames/s without and with a viewer

A 640x480 MPEG-4 video of a counter (a number plate whose value changes every ``--hold`` frames) is
looped by the daemon's own parts, built from a TOML config as ``digitcam run`` builds them: the
OpenCV file source, the int8 recognizer on one thread, the smoother, the spooled MQTT publisher and a
real mosquitto started here on a free loopback port (those parts: bench/daemon_parts.py). ``mosquitto_sub``
(its own process) timestamps every state message on arrival; the source is wrapped to timestamp every
frame it returns, so

* frame -> publish: from reading the frame whose reading made the value stable to its MQTT arrival;
* change -> publish: from reading the first frame showing the new number (includes the smoother's
  ``stable_reads`` = 3 frames) to its arrival.

Broker and subscriber run on the CPUs ``taskset`` leaves to others, if any. RSS (resident memory of
this process, which is the daemon plus this script's few objects) is taken after ``--warmup`` seconds and at
the end. Prints one markdown table and ends with one summary line.

``--viewer`` turns the web page on (``[web]``, device/web.py) and, after the warm-up, alternates segments
without and with one viewer of the live view (``/stream.mjpg``, read by its own process on the helper CPUs),
``--viewer-rounds`` of each: frames/s with a viewer must stay within 5 % of without (issue 18). Alternating
in one run keeps a slow drift of the machine (other jobs, temperature) out of the difference.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.daemon_parts import (  # noqa: E402
    SENSOR, Subscriber, build_timed_service, free_port, make_video, rss_mb, start_broker, start_helper, write_config,
)
from device.benchmark import machine  # noqa: E402
from device.config import load_config  # noqa: E402
from device.web import start_web  # noqa: E402

log = logging.getLogger(__name__)

TARGET_FPS = 300.0
TARGET_RSS_MB = 150.0
TARGET_VIEWER_DROP = 5.0  # % of frames/s a live-view viewer may cost at most
VIEWER = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /stream.mjpg HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
with open(sys.argv[2], "wb") as out:
    while True:
        data = s.recv(65536)
        if not data:
            break
        out.write(data)
        out.flush()
"""


def percentiles(values) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def run(args) -> dict:
    """Start broker and daemon, run for ``duration`` seconds, return the measurements."""
    with tempfile.TemporaryDirectory(prefix="digitcam-bench-") as tmp:
        tmp = Path(tmp)
        video, box = make_video(tmp / "counter.mp4", args.numbers, args.hold)
        broker, port = start_broker(tmp)
        page = None  # set before anything can fail, so the cleanup below does not hide the error
        try:
            sensor = f"locate = true\nlocate_every = {args.locate_every}" if args.locate else f"roi = {list(box)}"
            web = f"enabled = true\nport = {free_port()}\nfps = {args.viewer_fps}" if args.viewer else ""
            cfg = load_config(write_config(tmp, args.model, video, port, sensor, web=web))
            service, publisher, source = build_timed_service(cfg, args.duration)
            page = start_web(cfg, service)
            subscriber = Subscriber(port, publisher.topics.state(SENSOR), tmp / "arrivals.txt")
            publisher.start()
            marks = {}

            def sample():
                time.sleep(args.warmup)
                marks["warm"] = (time.perf_counter(), source.frames, rss_mb())
                if page is None:
                    time.sleep(max(0.0, args.duration - args.warmup))
                else:
                    marks["viewer"] = alternate_viewer(page, source, args, tmp)
                marks["end"] = (time.perf_counter(), source.frames, rss_mb())
                service.stop()

            sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
            sampler.start()
            service.run()
            sampler.join()
            time.sleep(0.2)  # the last publishes are still on their way
            arrivals = subscriber.close()
            errors = service.stats.errors
        finally:
            if page is not None:
                page.close()
            broker.terminate()
            broker.wait(timeout=10)
    (t0, f0, rss_warm), (t1, f1, rss_end) = marks["warm"], marks["end"]
    frame_ms, change_ms = [], []
    total = args.numbers * args.hold
    for arrived, frame, _ in arrivals:
        if frame <= f0:  # read during warm-up
            continue
        frame_ms.append((arrived - source.read_at[frame]) * 1000.0)
        first = frame - ((frame - 1) % total) % args.hold  # the first frame showing this number
        change_ms.append((arrived - source.read_at[first]) * 1000.0)
    return {
        "fps": (f1 - f0) / (t1 - t0), "frames": f1, "seconds": t1 - t0, "publishes": len(frame_ms),
        "changes": (f1 - f0) / args.hold, "frame_to_publish": percentiles(frame_ms),
        "change_to_publish": percentiles(change_ms), "rss_warm_mb": rss_warm, "rss_end_mb": rss_end,
        "errors": errors, "sensor": f"locate every {args.locate_every}" if args.locate else "roi",
        "viewer": marks.get("viewer"),
    }


def alternate_viewer(page, source, args, tmp: Path) -> dict:
    """Segments without and with one live-view viewer, alternating: frames/s of each, and the viewer's."""
    seconds = max(0.5, (args.duration - args.warmup) / (2 * args.viewer_rounds))
    spans = {False: [0, 0.0, 0.0], True: [0, 0.0, 0.0]}  # frames, seconds, CPU seconds of this process
    received = 0
    for segment in range(2 * args.viewer_rounds):
        watching = segment % 2 == 1
        viewer = None
        if watching:
            stream = tmp / f"stream{segment}.mjpg"
            viewer = start_helper([sys.executable, "-c", VIEWER, str(page.port), str(stream)])
            deadline = time.monotonic() + 10
            while page.state.viewers < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        t0, f0, c0 = time.perf_counter(), source.frames, time.process_time()
        time.sleep(seconds)
        spans[watching][0] += source.frames - f0
        spans[watching][1] += time.perf_counter() - t0
        spans[watching][2] += time.process_time() - c0
        if viewer is not None:
            viewer.terminate()
            viewer.wait(timeout=10)
            received += stream.read_bytes().count(b"Content-Type: image/jpeg")
    without, with_ = (spans[w][0] / spans[w][1] for w in (False, True))
    cpu = {w: 1000.0 * spans[w][2] / max(spans[w][0], 1) for w in (False, True)}  # CPU ms a frame, all threads
    return {"without": without, "with": with_, "drop": 100.0 * (1.0 - with_ / without), "cpu_ms": cpu,
            "viewer_fps": received / spans[True][1], "seconds": seconds, "rounds": args.viewer_rounds}


def print_table(r: dict, args) -> None:
    print(f"# {machine()}; model {Path(args.model).name}; sensor by {r['sensor']}; "
          f"{r['seconds']:.0f} s measured after {args.warmup:.0f} s warm-up; one thread")
    print("| frames/s | frames | publishes / number changes | frame->publish p50 / p95 ms | "
          "change->publish p50 / p95 ms | RSS warm MB | RSS end MB | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    fp, cp = r["frame_to_publish"], r["change_to_publish"]
    print(f"| {r['fps']:.0f} | {r['frames']} | {r['publishes']} / {r['changes']:.0f} | {fp[0]:.2f} / {fp[1]:.2f} | "
          f"{cp[0]:.2f} / {cp[1]:.2f} | {r['rss_warm_mb']:.0f} | {r['rss_end_mb']:.0f} | {r['errors']} |")
    v = r["viewer"]
    if v is not None:
        print(f"\n{v['rounds']} x {v['seconds']:.0f} s without and with one live-view viewer, alternating:\n")
        print("| frames/s without viewer | frames/s with viewer | drop | CPU ms a frame without / with | "
              "live view frames/s received |")
        print("|---:|---:|---:|---:|---:|")
        print(f"| {v['without']:.1f} | {v['with']:.1f} | {v['drop']:.1f} % | {v['cpu_ms'][False]:.3f} / "
              f"{v['cpu_ms'][True]:.3f} | {v['viewer_fps']:.1f} |")


def summary_line(r: dict) -> str:
    fps_ok = "meets" if r["fps"] >= TARGET_FPS else f"misses by {100 * (1 - r['fps'] / TARGET_FPS):.0f} % of"
    rss_ok = "meets" if r["rss_end_mb"] <= TARGET_RSS_MB else "misses"
    v = r["viewer"]
    if v is not None:
        ok = "meets" if v["drop"] <= TARGET_VIEWER_DROP else "misses"
        return (f"daemon: {v['without']:.0f} frames/s without a viewer, {v['with']:.0f} with one ({v['drop']:.1f} % "
                f"drop; {ok} the {TARGET_VIEWER_DROP:.0f} % target), viewer got {v['viewer_fps']:.1f} frames/s, "
                f"RSS {r['rss_warm_mb']:.0f} -> {r['rss_end_mb']:.0f} MB")
    return (f"daemon: {r['fps']:.0f} frames/s ({fps_ok} the {TARGET_FPS:.0f} target), frame->publish p50 "
            f"{r['frame_to_publish'][0]:.2f} ms p95 {r['frame_to_publish'][1]:.2f} ms, RSS {r['rss_warm_mb']:.0f} -> "
            f"{r['rss_end_mb']:.0f} MB ({rss_ok} the {TARGET_RSS_MB:.0f} MB target)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="int8 .tflite (default: the bundled one)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds the daemon runs in all")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before the first RSS and frame count")
    parser.add_argument("--numbers", type=int, default=30, help="counter values in the video")
    parser.add_argument("--hold", type=int, default=20, help="frames each value is shown")
    parser.add_argument("--locate", action="store_true", help="find the plate with the locator (not a fixed roi)")
    parser.add_argument("--locate-every", type=int, default=5, help="with --locate: search every Nth frame (1: all)")
    parser.add_argument("--quick", action="store_true", help="3 s run on a short video: a smoke test")
    parser.add_argument("--viewer", action="store_true", help="the web page on: frames/s without and with a viewer")
    parser.add_argument("--viewer-rounds", type=int, default=3, help="with --viewer: segments of each kind")
    parser.add_argument("--viewer-fps", type=float, default=4.0, help="with --viewer: the page's [web] fps")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.numbers = 3.0, 1.0, 4
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(1)
    if args.model is None:
        from device.cli import default_model

        args.model = default_model()
    result = run(args)
    print_table(result, args)
    print(summary_line(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
