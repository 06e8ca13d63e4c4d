"""Which HTTP server serves the page: the standard library's (device/web.py) or a small framework.

    .venv/bin/python bench/web_server.py [--duration 10] [--path DIR]
    .venv/bin/python bench/web_server.py --quick        # a second each, to check it runs

Each candidate serves the page's own ``/api/state`` (``WebServer.state_json`` of device/web.py, so only the
HTTP layer differs) in its own process pinned to one core (the last CPU, as the daemon is on a Pi), while a
client process on the other cores keeps 1, then 4, connections busy for ``--duration`` seconds each.

* RSS added: the server process's resident memory after serving, less its RSS with numpy imported and
  before the server code was (numpy is in the daemon anyway);
* requests/s: answered requests a second, keep-alive where the server offers it;
* dependencies added: distributions pip installs for it beyond what the daemon has.

Frameworks are looked for on ``sys.path`` and in ``--path`` (install them there, not in the venv:
``pip install --target /tmp/webfw bottle flask``); a missing one is a row saying so. Prints a markdown table
and ends with one summary line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KINDS = ("stdlib", "bottle", "flask")
DISTRIBUTIONS = {"stdlib": None, "bottle": "bottle", "flask": "flask"}


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# ---- the server side (a child process) -----------------------------------------------------------------


class _Actions:
    """The daemon's status as the page reads it, without a daemon: fixed numbers of the same shape."""

    def status(self) -> dict:
        return {"camera": "online", "camera_error": None, "frames": 123456, "errors": 0, "dropped_frames": 0,
                "queue": 0, "spool_in_memory": False}


def _web_server():
    from device.config import WebConfig
    from device.web import WebServer
    from device.web_feed import WebState

    return WebServer(WebConfig(enabled=True, port=0), WebState(), _Actions(), "bench")


def serve(kind: str, port: int) -> None:
    """Start server ``kind`` on 127.0.0.1:``port``, print the baseline RSS, serve until killed."""
    import numpy  # noqa: F401  (the daemon's baseline)

    base = rss_mb()
    if kind == "stdlib":
        from dataclasses import replace

        web = _web_server()
        web.cfg = replace(web.cfg, port=port)
        web.start()
        print(json.dumps({"rss0": base}), flush=True)
        threading.Event().wait()
    web = _web_server()  # only its state_json: the framework does the HTTP
    if kind == "bottle":
        import bottle
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        app = bottle.Bottle()

        @app.get("/api/state")
        def state():
            bottle.response.content_type = "application/json"
            return json.dumps(web.state_json())

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class Threading(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        server = make_server("127.0.0.1", port, app, server_class=Threading, handler_class=Quiet)
        print(json.dumps({"rss0": base}), flush=True)
        server.serve_forever()
    if kind == "flask":
        import logging

        import flask
        from werkzeug.serving import make_server as werkzeug_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = flask.Flask("bench")

        @app.get("/api/state")
        def flask_state():
            return flask.Response(json.dumps(web.state_json()), mimetype="application/json")

        server = werkzeug_server("127.0.0.1", port, app, threaded=True)
        print(json.dumps({"rss0": base}), flush=True)
        server.serve_forever()


# ---- the client side ----------------------------------------------------------------------------------------


def hammer(port: int, clients: int, seconds: float) -> float:
    """Requests/s answered with ``clients`` connections each sending the next request on an answer."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(i):
        conn = None
        while time.monotonic() < stop:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/api/state", headers={"Host": "127.0.0.1"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    counts[i] += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def dependencies(dist: str | None) -> list[str]:
    """The distributions ``dist`` pulls in (itself included), from installed metadata."""
    if dist is None:
        return []
    from importlib.metadata import PackageNotFoundError, distribution
    from packaging.requirements import Requirement

    seen, todo = [], [dist]
    while todo:
        name = todo.pop()
        if name.lower() in (s.lower() for s in seen):
            continue
        seen.append(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(kind: str, seconds: float, path: str | None) -> dict:
    port = free_port()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpus = {cpus[-1]}, set(cpus[:-1]) or {cpus[-1]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), path) if p)}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: os.sched_setaffinity(0, server_cpu))
    try:
        line = proc.stdout.readline()
        if not line:
            error = proc.stderr.read().strip().splitlines()
            return {"kind": kind, "missing": error[-1] if error else "did not start"}
        rss0 = json.loads(line)["rss0"]
        os.sched_setaffinity(0, client_cpus)
        rates = {n: hammer(port, n, seconds) for n in (1, 4)}
        return {"kind": kind, "rss_added_mb": rss_mb(proc.pid) - rss0, "rps": rates,
                "deps": dependencies(DISTRIBUTIONS[kind])}
    finally:
        os.sched_setaffinity(0, set(cpus))
        proc.kill()
        proc.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per client count")
    parser.add_argument("--path", default=None, help="a folder where the frameworks are installed (pip --target)")
    parser.add_argument("--quick", action="store_true", help="one second each")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if args.path:
        sys.path.insert(0, args.path)
    seconds = 1.0 if args.quick else args.duration
    rows = [measure(kind, seconds, args.path) for kind in KINDS]
    print(f"# {os.uname().machine}, server pinned to one core, {seconds:.0f} s per client count, GET /api/state")
    print("| server | RSS added MB | requests/s, 1 client | requests/s, 4 clients | dependencies added |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        if "missing" in r:
            print(f"| {r['kind']} | not installed: {r['missing'][:80]} | | | |")
            continue
        deps = f"{len(r['deps'])}: {', '.join(r['deps'])}" if r["deps"] else "0"
        print(f"| {r['kind']} | {r['rss_added_mb']:.1f} | {r['rps'][1]:.0f} | {r['rps'][4]:.0f} | {deps} |")
    done = [r for r in rows if "missing" not in r]
    best = max(done, key=lambda r: r["rps"][1])
    std = next(r for r in done if r["kind"] == "stdlib")
    print(f"web servers: stdlib {std['rps'][1]:.0f} req/s (+{std['rss_added_mb']:.1f} MB, 0 dependencies); "
          f"fastest {best['kind']} {best['rps'][1]:.0f} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
