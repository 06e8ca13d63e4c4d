"""Per-sensor models: a sensor whose config names ``model`` (e.g. one adapted to its meter by
``digitcam adapt``) is read by its own recognizer; every other sensor still goes through the default
recognizer in one call per frame. Tracking state lives on the Sensor, so which reader reads it does not
matter to the box tracker.
"""

from __future__ import annotations

from pathlib import Path


def build_recognizers(cfg) -> dict:
    """model path -> Recognizer for each distinct per-sensor model; a bad one fails here (exit 2)."""
    from device.recognize import Recognizer

    paths = sorted({s.model for s in cfg.sensors if s.model})
    return {p: Recognizer(Path(p), threads=cfg.device.threads, runtime=cfg.device.runtime) for p in paths}


class SensorReaders:
    """The default FrameReader plus one per per-sensor model, sharing the locator."""

    def __init__(self, recognizers: dict | None = None, locator=None):
        from device.reader import FrameReader

        self.readers = {path: FrameReader(rec, locator) for path, rec in (recognizers or {}).items()}
        self.models = {path: rec.describe() for path, rec in (recognizers or {}).items()}

    def describe(self, sensor, default: dict) -> dict:
        """The ``model`` field of this sensor's payloads."""
        return self.models.get(getattr(sensor.config, "model", ""), default)

    def reader_for(self, sensor, default):
        """The FrameReader that reads ``sensor``: its own model's, else ``default``."""
        return self.readers.get(getattr(sensor.config, "model", ""), default)

    def read_sensors(self, reader, frame, sensors, frame_no: int, track: bool = True):
        """Like ``FrameReader.read_sensors``: a Reading per sensor in order, and the ms of all calls."""
        groups: dict = {}
        for sensor in sensors:
            model = getattr(sensor.config, "model", "")
            groups.setdefault(model if model in self.readers else "", []).append(sensor)
        if list(groups) == [""]:
            return reader.read_sensors(frame, sensors, frame_no, track)
        found, total = {}, 0.0
        for model, group in groups.items():
            readings, ms = (self.readers[model] if model else reader).read_sensors(frame, group, frame_no, track)
            found.update(zip(map(id, group), readings))
            total += ms
        return [found[id(s)] for s in sensors], total
