"""The live feed of the web page: what the frame thread hands the HTTP threads, and the MJPEG stream.

The frame thread only hands over references (``WebState.frame``); a frame is copied at most ``fps`` times a
second and only while a live view is open, and it is drawn and JPEG-encoded once, in one encoder thread,
however many viewers there are. Anything that needs the recognizer is queued as a call the frame thread
runs between frames (``WebState.call``), and a request waits for it with a timeout, never the other way
round. The server and its routes are ``device/web.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from device.errors import WebError

log = logging.getLogger("device.web")  # the page's log lines keep the logger name docs/OPERATIONS.md shows

CALL_TIMEOUT_S = 5.0  # how long a request waits for the frame thread
ROI_COLOUR = (0, 200, 255)  # BGR amber: the configured ROI; the located box is drawn green/red by device.overlay
BOUNDARY = "digitcamframe"


@dataclass(frozen=True)
class Snapshot:
    """One frame kept for the live view, with what each sensor had on it (copied: the loop moves on)."""

    seq: int
    frame_no: int
    image: np.ndarray
    sensors: tuple  # (name, roi, box, value, confidence) per sensor


class WebState:
    """Between the frame thread and the HTTP threads. The frame thread's side (``frame``, ``published``,
    ``run_calls``) is non-blocking and does almost nothing unless someone watches."""

    def __init__(self, fps: float = 4.0):
        self.interval = 1.0 / fps
        self.frame_no = 0
        self.sensors: list = []
        self.published_payloads: dict = {}  # sensor name -> the last published payload (dict)
        self.viewers = 0  # open live views; frames are copied only while > 0 (changed under _cond)
        self._next_grab = 0.0
        self._seq = 0
        self._snapshot: Snapshot | None = None
        self._frame_shape: tuple | None = None
        self._times: deque = deque(maxlen=256)  # monotonic time of recent frames, for frames/s
        self._ms: deque = deque(maxlen=256)  # their inference ms
        self._calls: deque = deque(maxlen=16)
        self._cond = threading.Condition()
        self._jpeg: tuple[int, bytes] | None = None  # (seq, JPEG) of the latest snapshot, encoded once
        self._encoder: threading.Thread | None = None

    # ---- the frame thread ----

    def frame(self, image: np.ndarray, frame_no: int, sensors, ms: float) -> None:
        """Called by the loop after each processed frame: references only, a copy only when watched and due."""
        now = time.monotonic()
        self.frame_no = frame_no
        self.sensors = sensors
        self._frame_shape = image.shape
        self._times.append(now)
        self._ms.append(ms)
        if self.viewers and now >= self._next_grab:
            self._next_grab = now + self.interval
            self._grab(image, frame_no, sensors)

    def _grab(self, image: np.ndarray, frame_no: int, sensors) -> None:
        rows = []
        for s in sensors:
            last = s.last
            rows.append((s.name, tuple(s.config.roi), last.box if last else None, last.value if last else None,
                         float(last.confidence) if last else 0.0))
        with self._cond:
            self._seq += 1
            self._snapshot = Snapshot(self._seq, frame_no, image.copy(), tuple(rows))
            self._cond.notify_all()

    def published(self, sensor_name: str, payload: dict) -> None:
        """Called by the loop for each published reading (a few a minute): the page shows the last."""
        self.published_payloads[sensor_name] = payload

    def run_calls(self) -> None:
        """Called by the loop between frames: run what the page queued (it needs the recognizer)."""
        while self._calls:
            fn, future = self._calls.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except Exception as exc:  # the page gets the message; the loop carries on
                future.set_exception(exc)

    # ---- the HTTP threads ----

    def call(self, fn, timeout: float = CALL_TIMEOUT_S):
        """Run ``fn`` on the frame thread and return its result; WebError 503 if the loop does not get to it."""
        if len(self._calls) == self._calls.maxlen:
            raise WebError(503, "the daemon is busy; try again")
        future: Future = Future()
        self._calls.append((fn, future))
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise WebError(503, f"the frame loop did not answer within {timeout:.0f} s") from None

    def watch(self, delta: int) -> None:
        """A live view opens (+1) or closes (-1); the first one starts the encoder thread."""
        with self._cond:
            self.viewers += delta
            if self._encoder is None:
                self._encoder = threading.Thread(target=self._encode_loop, name="web-encoder", daemon=True)
                self._encoder.start()

    def wait_jpeg(self, after_seq: int, timeout: float) -> tuple[int, bytes] | None:
        """The next encoded frame ``(seq, JPEG)`` newer than ``after_seq``, None on timeout: a live view's pace."""
        with self._cond:
            self._cond.wait_for(lambda: self._jpeg is not None and self._jpeg[0] > after_seq, timeout)
            jpeg = self._jpeg
        return jpeg if jpeg is not None and jpeg[0] > after_seq else None

    def _encode_loop(self) -> None:
        """Draw and encode each snapshot once, in this one thread however many viewers come and go (their
        handler threads only send bytes), so the big per-frame buffers live in one malloc arena."""
        done = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._snapshot is not None and self._snapshot.seq > done)
                snap = self._snapshot
            done = snap.seq
            try:
                data = render_jpeg(snap)
            except Exception:  # a frame it cannot draw (odd shape): say so once, keep serving the next
                log.warning("web: cannot draw frame %d for the live view", snap.frame_no, exc_info=True)
                continue
            with self._cond:
                self._jpeg = (snap.seq, data)
                self._cond.notify_all()

    def frame_size(self) -> tuple[int, int] | None:
        shape = self._frame_shape
        return None if shape is None else (int(shape[1]), int(shape[0]))

    def rates(self) -> dict:
        """Frames/s over the last few seconds and the median inference ms of recent frames."""
        times, ms = tuple(self._times), tuple(self._ms)
        now = time.monotonic()
        recent = [t for t in times if now - t <= 5.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        return {"fps": round(fps, 1), "inference_ms_p50": round(float(np.median(ms)), 2) if ms else None}


def render_jpeg(snap: Snapshot, quality: int = 80) -> bytes:
    """A snapshot with each sensor's ROI (amber) and its located box with the reading (device.overlay)."""
    import cv2

    from device.contract import to_gray
    from device.overlay import annotate

    image = snap.image
    colour = image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    canvas = image.copy() if colour else cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2BGR)
    for _name, roi, box, value, confidence in snap.sensors:
        if roi:  # just outside the ROI, so a located box on the same pixels stays visible
            x, y, w, h = roi
            cv2.rectangle(canvas, (x - 1, y - 1), (x + w, y + h), ROI_COLOUR, 1)
        if box is not None:
            canvas = annotate(canvas, box, value, confidence)
    # full-resolution colour (4:4:4): with the usual 4:2:0 a 1-pixel amber line fades into the grey around it.
    # OpenCV before 4.7 (Debian bookworm's 4.6, what a 32-bit Pi gets from apt) has no such option: 4:2:0 there.
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, data = cv2.imencode(".jpg", canvas, params)
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def stream_mjpeg(handler, state: WebState, serving, idle_s: float) -> None:
    """MJPEG on ``handler``'s connection: a part per new snapshot, at most ``fps`` a second, while
    ``serving()``; frames are copied only while this runs. No new frame for ``idle_s``: the last again."""
    state.watch(+1)
    handler.close_connection = True
    try:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Connection", "close")
        handler.end_headers()
        seq, data, idle = 0, None, 0.0
        while serving():
            jpeg = state.wait_jpeg(seq, 1.0)
            if jpeg is None:
                idle += 1.0
                if idle < idle_s or data is None:
                    continue
                # the camera is down: the last frame again now and then, so a viewer that has gone away
                # (a phone put to sleep) fails a write and frees its slot
                jpeg = seq, data
            idle, (seq, data) = 0.0, jpeg
            handler.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                                .encode() + data + b"\r\n")
            handler.wfile.flush()
    except (OSError, ValueError):  # the viewer went away (or timed out writing)
        pass
    finally:
        state.watch(-1)
