"""``digitcam run --config FILE``: the daemon built from its config and started.

``build_service`` wires the parts of the composition root (``device/build.py``) into a ``Service``
(``device/service.py``) once; ``main`` adds the web page and the broker connection, hands SIGTERM/SIGINT
and SIGHUP to the service and runs its loop.
"""

from __future__ import annotations

import logging
import signal
import sys

import numpy as np

from device.build import Reloader, build_parts, build_publisher
from device.config import describe, load_config
from device.notify import Notifier
from device.runtime import platform_info, platform_line
from device.sensormodels import SensorReaders
from device.service import Service
from device.sources import Backoff

log = logging.getLogger("device.service")  # one logger for the daemon's lines (docs/OPERATIONS.md)


def startup_line(recognizer) -> str:
    """What the daemon runs on, after one read of a blank crop (the runtimes apply their delegate at the first
    invoke, so only then can ``runtime_info`` tell XNNPACK from the built-in kernels)."""
    recognizer.read([np.full((32, 128, 3), 255, np.uint8)])
    return platform_line(platform_info(), recognizer.runtime_info())


def build_service(cfg, printer=None, notifier: Notifier | None = None, source=None):
    """The daemon's parts built from its config and wired together once: ``main`` and bench/daemon.py use it.

    Returns ``(service, publisher)``; the publisher is None without an ``[mqtt] host`` and is not started.
    """
    parts = build_parts(cfg, source=source)
    log.info("platform and runtime: %s", startup_line(parts.recognizer))
    publisher = build_publisher(cfg, parts.discovery)
    service = Service(parts.source, parts.recognizer, parts.sensors, publisher, locator=parts.locator,
                      notifier=notifier if notifier is not None else Notifier(), printer=printer,
                      stats_interval_s=cfg.mqtt.stats_interval_s,
                      backoff=Backoff(cfg.camera.retry_min_s, cfg.camera.retry_max_s),
                      reload=Reloader(cfg.path, cfg), flush_timeout_s=cfg.device.flush_timeout_s,
                      unusable_after_s=cfg.camera.read_timeout_s)
    if publisher is not None:
        publisher.on_command = service.command
    from device.cropstore import CropCollection

    service.crops = CropCollection(cfg.state_dir)  # idle (no thread) until a sensor has collect = true
    service.own_models = SensorReaders(parts.sensor_recognizers, parts.locator)
    return service, publisher


def main(args) -> int:
    """``digitcam run --config FILE``: a bad config or model exits 2 here, before anything starts."""
    cfg = load_config(args.config)
    log.info("config %s: %s", cfg.path, describe(cfg))
    if not cfg.mqtt.host and not args.print_readings:
        log.warning("no [mqtt] host configured and no --print: readings go nowhere but the log")
    printer = (lambda line: print(line, flush=True)) if args.print_readings else None
    service, publisher = build_service(cfg, printer=printer)
    from device.web import start_web

    web = start_web(cfg, service)  # before the broker: a port in use is a one-line error naming web.port
    if publisher is not None:
        publisher.start()
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    signal.signal(signal.SIGHUP, service.request_reload)
    try:
        return service.run(args.max_frames)
    except BrokenPipeError:  # --print piped into head: stop quietly
        sys.stderr.close()
        return 0
    finally:
        if web is not None:
            web.close()
