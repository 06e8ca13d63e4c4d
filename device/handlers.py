"""The daemon's commands: what ``cmd/<name>`` does once ``device/commands.py`` has accepted it.

``run_command`` parses a queued command, checks that a command needing a frame has a fresh one, calls
its handler from ``HANDLERS`` and publishes the ``cmd/result`` reply. It runs between frames on the loop's
thread (``Service._between_frames``), so a handler may use the recognizer and the smoothers. A handler is
``(service, chosen sensors, args) -> dict`` of the fields to add to the reply; ``CommandError`` refuses.
"""

from __future__ import annotations

import logging
import time

from device.commands import CommandError, parse_command
from device.contract import Reading
from device.meter import SetValueError

log = logging.getLogger("device.service")  # one logger for the daemon's lines (docs/OPERATIONS.md)

ON_DEMAND = "on_demand"


def run_command(service, name: str, payload: bytes) -> None:
    """One command from the queue: its reply (``ok``, ``error`` or the handler's fields) goes to ``cmd/result``."""
    reply: dict = {"command": name[:64]}
    try:
        command = parse_command(name, payload, [s.name for s in service.sensors])
        if "id" in command.args:
            reply["id"] = command.args["id"]
        if command.spec.needs_frame:
            check_fresh_frame(service)
        reply.update(HANDLERS[command.name](service, command.chosen(service.sensors), command.args))
        reply["ok"] = True
    except CommandError as exc:
        log.warning("command %s refused: %s", name[:64], exc)
        reply.update(ok=False, error=str(exc))
    except Exception as exc:  # the command failed on our side; say so, keep running
        log.exception("command %s failed", name[:64])
        reply.update(ok=False, error=f"{exc.__class__.__name__}: {exc}")
    if service.publisher is not None:
        service.publisher.publish_result(reply)


def check_fresh_frame(service) -> None:
    """A read or snapshot of a frame from before the camera went down would pass an old number as new."""
    if service.camera.error is not None:
        raise CommandError(f"camera offline: {service.camera.error}")
    if service.last_frame is None:
        raise CommandError("no frame has been read yet")


def read(service, chosen, _args) -> dict:
    """Read the last frame now and publish each chosen sensor's reading, stable or not. Tracking and
    stats are left as they are: this is not a frame of the loop."""
    readings, _ = service.own_models.read_sensors(service.reader, service.last_frame, service.sensors,
                                                  service.frame_no, track=False)
    values = {}
    for sensor, reading in zip(service.sensors, readings):
        if sensor in chosen:
            sensor.last = reading
            service.publish(sensor, reading, (ON_DEMAND,))
            values[sensor.name] = reading.value
    return {"values": values}


def snapshot(service, chosen, _args) -> dict:
    """Publish the last frame, annotated with each chosen sensor's box and number, as a JPEG."""
    from device.overlay import annotate, encode_jpeg

    topics = []
    for sensor in chosen:
        last = sensor.last or Reading(value=None, confidence=0.0)
        image = encode_jpeg(annotate(service.last_frame, last.box, last.value, last.confidence))
        if service.publisher is not None:
            topics.append(service.publisher.publish_snapshot(sensor.name, image))
    return {"snapshots": topics}


def reload(service, _chosen, _args) -> dict:
    error = service.reload()
    if error:
        raise CommandError(error)
    return {}


def set_value(service, chosen, args) -> dict:
    """Set a meter's accepted value exactly (a swapped meter, a correction) and publish it."""
    sensor = chosen[0]
    if not hasattr(sensor.smoother, "set_value"):
        raise CommandError(f"sensor {sensor.name} is not a meter (mode = \"meter\"): it has no value to set")
    try:
        decision = sensor.smoother.set_value(args["value"], time.monotonic())
    except SetValueError as exc:
        raise CommandError(str(exc)) from None
    service.publish(sensor, decision.reading, decision.flags)
    return {"sensor": sensor.name, "value": decision.reading.value}


HANDLERS = {"read": read, "snapshot": snapshot, "reload": reload, "set_value": set_value}
