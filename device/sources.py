"""Where frames come from: the Pi camera, an OpenCV capture (``/dev/videoN``, file, RTSP/HTTP) or a folder.

Every source has ``open()``, ``read()`` (a frame, or None at the end of a file that does not loop) and
``close()``. Live sources (cameras, streams) grab in a thread that keeps only the newest frame: when the
reader is slower than the camera, stale frames are dropped and counted, never queued. A source that fails
raises SourceError; the service closes it and opens it again after a ``Backoff`` delay.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from device.errors import ConfigError, SourceError
from device.images import IMAGE_SUFFIXES, check_frame, load_image
from device.source_spec import DEVICE, FOLDER, PICAMERA, STREAM, source_kind

log = logging.getLogger(__name__)


class BadFrame(SourceError):
    """One frame is unusable but the source still works: skip it, do not reconnect."""


class Backoff:
    """Delays that double from ``first`` up to ``most``; ``reset`` after a success."""

    def __init__(self, first: float = 0.5, most: float = 5.0):
        self.first, self.most = first, most
        self._current = first

    def next(self) -> float:
        delay = self._current
        self._current = min(self._current * 2, self.most)
        return delay

    def reset(self) -> None:
        self._current = self.first


class Source:
    """Base of all sources: pacing to ``fps``, the frame check, the counters the stats report, and for live
    sources the grabber thread (``_start_grabber``, ``_grabbed``, ``_stop_grabber``)."""

    live = False
    read_timeout_s = 5.0

    def __init__(self, name: str, fps: float = 0.0):
        self.name = name
        self.dropped = 0  # frames the camera delivered that were never read (we were busy)
        self._interval = 1.0 / fps if fps > 0 else 0.0
        self._due = 0.0
        self._grabber: LatestFrame | None = None

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        if self._interval:
            now = time.monotonic()
            if self._due > now:
                time.sleep(self._due - now)
            self._due = max(self._due, now) + self._interval
        frame = self._read()
        return frame if frame is None else check_frame(frame, f"frame from {self.name}")

    def _read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _start_grabber(self, grab) -> None:
        self._grabber = LatestFrame(self.name, grab, self.read_timeout_s)

    def _grabbed(self) -> np.ndarray:
        """The newest frame from the grabber (waiting up to ``read_timeout_s``), counting the dropped ones."""
        frame = self._grabber.get()
        self.dropped = self._grabber.dropped
        return frame

    def _stop_grabber(self) -> None:
        if self._grabber is not None:
            self._grabber.stop()
            self._grabber = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class FolderSource(Source):
    """Image files in name order; optionally from the start again. For tests, replays and demos."""

    def __init__(self, path: str | Path, loop: bool = False, fps: float = 0.0):
        super().__init__(str(path), fps)
        self.path = Path(path)
        self.loop = loop
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        try:
            self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise SourceError(f"image folder {self.path} cannot be read: {exc.strerror or exc}") from None
        if not self._files:
            raise SourceError(f"image folder {self.path} has no images ({', '.join(IMAGE_SUFFIXES)})")
        self._next = 0

    def _read(self) -> np.ndarray | None:
        if self._next >= len(self._files):
            if not self.loop:
                return None
            self._next = 0
        path = self._files[self._next]
        self._next += 1
        if not path.exists():
            raise SourceError(f"image folder {self.path}: {path.name} has gone")
        try:
            return load_image(path)
        except SourceError as exc:
            raise BadFrame(str(exc)) from None


class LatestFrame:
    """A grabber thread that keeps only the newest frame of a live source, counting the ones overwritten."""

    def __init__(self, name: str, grab, timeout: float):
        self.name = name
        self._grab = grab
        self._timeout = timeout
        self._cond = threading.Condition()
        self._frame = None
        self._fresh = False
        self._error: str | None = None
        self._running = True
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"grab-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            try:
                frame = self._grab()
            except Exception as exc:  # a driver can raise anything; the reader gets a SourceError
                frame, error = None, f"{exc.__class__.__name__}: {exc}"
            else:
                error = None if frame is not None else "read failed"
            with self._cond:
                if error is not None:
                    self._error = error
                    self._cond.notify_all()
                    return
                if self._fresh:
                    self.dropped += 1
                self._frame, self._fresh = frame, True
                self._cond.notify_all()

    def get(self) -> np.ndarray:
        with self._cond:
            if not self._cond.wait_for(lambda: self._fresh or self._error, timeout=self._timeout):
                raise SourceError(f"camera {self.name}: no frame for {self._timeout:g} s")
            if self._error and not self._fresh:
                raise SourceError(f"camera {self.name}: {self._error}")
            self._fresh = False
            return self._frame

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)


class OpenCVSource(Source):
    """cv2.VideoCapture on a device index, /dev/videoN, an RTSP/HTTP URL (live) or a video file."""

    def __init__(self, target, live: bool, width: int = 0, height: int = 0, fps: float = 0.0, loop: bool = False,
                 read_timeout_s: float = 5.0):
        super().__init__(str(target), fps)
        self.target = target
        self.live = live
        self.width, self.height, self.fps = width, height, fps
        self.loop = loop
        self.read_timeout_s = read_timeout_s
        self._cap = None
        self._buffer = None

    def open(self) -> None:
        if not self.live and not Path(self.target).is_file():
            raise SourceError(f"video file {self.target} does not exist")
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.target} cannot be opened")
        if self.width and self.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap
        if self.live:
            self._start_grabber(self._grab)
        log.info("opened %s (%dx%d)", self.name, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def _grab(self):
        ok, frame = self._cap.read()
        return frame if ok else None

    def _read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open")
        if self._grabber is not None:
            return self._grabbed()
        ok, frame = self._cap.read(self._buffer)  # reuse one buffer: no allocation per frame
        if not ok and (self.loop or not Path(self.target).is_file()):
            if not Path(self.target).is_file():  # an open file outlives its unlinking: check the name
                raise SourceError(f"video file {self.target} has gone")
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read(self._buffer)
            if not ok:
                raise SourceError(f"video file {self.target} cannot be read")
        if not ok:
            return None
        self._buffer = frame
        return frame

    def close(self) -> None:
        self._stop_grabber()
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._buffer = None


class PicameraSource(Source):
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS: ``apt install python3-picamera2``)."""

    live = True

    def __init__(self, width: int = 0, height: int = 0, fps: float = 0.0, read_timeout_s: float = 5.0):
        super().__init__("picamera2")
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise ConfigError("camera.source = 'picamera2' needs the picamera2 package, which only exists on "
                              "Raspberry Pi OS (apt install python3-picamera2); elsewhere use a /dev/videoN index, "
                              "a file, a URL or a folder") from None
        self._factory = Picamera2
        self.width, self.height, self.fps = width or 1280, height or 720, fps
        self.read_timeout_s = read_timeout_s
        self._camera = None

    def open(self) -> None:
        try:
            camera = self._factory()
            controls = {"FrameRate": self.fps} if self.fps else {}
            camera.configure(camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"}, controls=controls))
            camera.start()
        except Exception as exc:  # picamera2 raises IndexError, RuntimeError, ... when no camera is attached
            raise SourceError(f"Pi camera cannot be started: {exc.__class__.__name__}: {exc}") from None
        self._camera = camera
        self._start_grabber(lambda: camera.capture_array("main"))

    def _read(self) -> np.ndarray:
        if self._grabber is None:
            raise SourceError("Pi camera is not open")
        return self._grabbed()

    def close(self) -> None:
        self._stop_grabber()
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            except Exception as exc:
                log.warning("closing the Pi camera failed: %s", exc)
            self._camera = None


def build_source(camera) -> Source:
    """The source a ``[camera]`` config names; nothing is opened yet (``open`` may fail and be retried)."""
    spec = camera.source
    kind = source_kind(spec)
    if kind == PICAMERA:
        return PicameraSource(camera.width, camera.height, camera.fps, camera.read_timeout_s)
    if kind in (DEVICE, STREAM):
        return OpenCVSource(int(spec) if spec.isdigit() else spec, True, camera.width, camera.height, camera.fps,
                            read_timeout_s=camera.read_timeout_s)
    if kind == FOLDER:
        return FolderSource(Path(spec), loop=camera.loop, fps=camera.fps)
    return OpenCVSource(spec, False, fps=camera.fps, loop=camera.loop)
