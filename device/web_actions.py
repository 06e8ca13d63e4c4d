"""What the web page asks of a running daemon: status, an ROI's preview and save, a meter's value, crops.

``ServiceActions`` is the page's only view of the ``device.service.Service``: the HTTP threads read plain
attributes only, and anything touching the recognizer or a smoother runs on the frame thread through
``WebState.call`` (``device/web_feed.py``). Stored crops are reached by a configured sensor and a name that
must match the crop store's pattern, never by a path from the request.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path

from device.errors import WebError
from device.web_feed import WebState
from device.web_roi import check_roi, save_roi

log = logging.getLogger("device.web")  # the page's log lines keep the logger name docs/OPERATIONS.md shows

MAX_CROPS = 12  # review crops listed at once


class ServiceActions:
    """The page's view of a running ``device.service.Service``: only plain attributes are read from the
    HTTP threads; anything touching the recognizer or a smoother runs on the frame thread via ``state.call``."""

    def __init__(self, service, state: WebState, config_path: Path):
        self.service = service
        self.state = state
        self.config_path = Path(config_path)
        self._save_lock = threading.Lock()

    def _sensor(self, name):
        for sensor in self.service.sensors:
            if sensor.name == name:
                return sensor
        raise WebError(404, f"unknown sensor {str(name)[:64]!r}")

    def status(self) -> dict:
        service = self.service
        queue = service.publisher.queue_status() if service.publisher is not None else {"queue": None}
        return {"camera": "online" if service.camera.online else "offline", "camera_error": service.camera.error,
                "frames": service.stats.frames, "errors": service.stats.errors,
                "dropped_frames": service.source.dropped, "queue": queue.get("queue"),
                "spool_in_memory": queue.get("spool_in_memory")}

    def preview(self, name, roi) -> dict:
        """What the sensor would read with ``roi`` on the last frame: the crop as the model sees it (PNG) and
        the reading; a sensor with ``locate`` reads the box the locator chooses inside ``roi``. For one
        without, ``fit`` suggests a tight ROI when the drawn one is loose (``device.roi_fit``)."""
        import cv2

        from device.boxes import crop
        from device.contract import prepare_crop
        from device.roi_fit import fit_roi

        roi = check_roi(roi, self.state.frame_size())
        located = bool(self._sensor(name).config.locate)

        def run():
            frame = self.service.last_frame
            if frame is None:
                raise WebError(409, "no frame has been read yet")
            reader = self.service.reader
            fit = None
            if located and reader.locator is not None:
                reading = reader.read_candidates(frame, tuple(roi)).reading
            else:
                (reading,), _ = self.service.recognizer.read([crop(frame, tuple(roi))])
                fit = fit_roi(reader, frame, tuple(roi))
            piece = crop(frame, reading.box) if reading.box is not None else crop(frame, tuple(roi))
            return reading, prepare_crop(piece, self.service.recognizer.spec), fit

        reading, model_input, fit = self.state.call(run)
        png = cv2.imencode(".png", model_input[:, :, 0])[1].tobytes()
        answer = {"sensor": name, "roi": roi, **reading.as_dict(),
                  "crop": "data:image/png;base64," + base64.b64encode(png).decode("ascii"), "fit": None}
        if fit is not None and fit.loose:
            answer["fit"] = {"roi": list(fit.roi), "value": fit.reading.value,
                             "confidence": round(float(fit.reading.confidence), 4)}
        return answer

    def save_roi(self, name, roi) -> dict:
        self._sensor(name)
        with self._save_lock:
            answer = save_roi(self.config_path, name, roi, self.state.frame_size())
        if answer["saved"]:
            self.service.request_reload()
        return answer

    # ---- crops kept for review (device/crop_files.py; ``digitcam crops`` does the same from a shell) ----

    def _crop(self, sensor, name):
        """A stored crop of a configured sensor, by a name that must be a crop store name (no path)."""
        from device.crop_files import NAME, parse_name

        self._sensor(sensor)
        if not isinstance(name, str) or not NAME.match(name):
            raise WebError(400, "not a crop name")
        path = self._crops_folder(sensor) / name
        if not path.is_file():
            raise WebError(404, f"no crop {name} for sensor {sensor}")
        return parse_name(path)

    def _crops_folder(self, sensor) -> Path:
        root = getattr(self.service.crops, "root", None)
        if root is None:
            raise WebError(409, "this daemon keeps no crops")
        return Path(root) / sensor

    def crops(self, sensor) -> dict:
        """The sensor's review crops (newest first, at most MAX_CROPS) and how many of each kind it has."""
        from device.crop_files import CropError, scan

        self._sensor(sensor)
        try:
            stored = scan(self._crops_folder(sensor))
        except CropError:
            stored = []
        review = [c for c in reversed(stored) if c.kind == "review"][:MAX_CROPS]
        kinds = {kind: sum(c.kind == kind for c in stored) for kind in ("auto", "human", "review")}
        return {"sensor": sensor, "counts": kinds,
                "crops": [{"name": c.name, "raw": c.raw, "confidence": c.confidence, "at": c.at} for c in review]}

    def crop_png(self, sensor, name) -> bytes:
        return self._crop(sensor, name).path.read_bytes()

    def label_crop(self, sensor, name, label) -> dict:
        """A person's label for a crop: the file is renamed, as ``digitcam crops label`` does."""
        from device.crop_files import CropError, check_label, relabel_file

        crop = self._crop(sensor, name)
        try:
            moved = relabel_file(crop, check_label(label if isinstance(label, str) else ""))
        except CropError as exc:
            raise WebError(400, str(exc)) from None
        except OSError as exc:
            raise WebError(409, f"cannot rename the crop: {exc.strerror or exc}") from None
        log.info("web: sensor %s: crop %s labelled %s", sensor, crop.name, moved.label)
        return {"sensor": sensor, "name": moved.name, "label": moved.label}

    def set_value(self, name, value) -> dict:
        """A meter's ``set_value``: the MQTT command's own check and handler, run on the frame thread."""
        from device.commands import CommandError, parse_command
        from device.handlers import set_value

        self._sensor(name)
        payload = json.dumps({"sensor": name, "value": value}).encode()

        def run():
            command = parse_command("set_value", payload, [s.name for s in self.service.sensors])
            return set_value(self.service, command.chosen(self.service.sensors), command.args)

        try:
            return self.state.call(run)
        except CommandError as exc:
            raise WebError(400, str(exc)) from None
