"""What a ``camera.source`` string means, decided once for the config check and for ``build_source``."""

from __future__ import annotations

from pathlib import Path

PICAMERA = "picamera2"  # the Raspberry Pi camera
DEVICE = "device"  # a V4L2 device: an index ("0") or /dev/videoN
STREAM = "stream"  # an RTSP/HTTP URL
FOLDER = "folder"  # a folder of images (or a path that does not exist yet and has no suffix)
FILE = "file"  # a video file


def source_kind(spec: str) -> str:
    """One of PICAMERA, DEVICE, STREAM, FOLDER, FILE. Only a path is looked at on disk (folder or file)."""
    if spec == "picamera2":
        return PICAMERA
    if spec.isdigit() or spec.startswith("/dev/"):
        return DEVICE
    if "://" in spec:
        return STREAM
    path = Path(spec)
    return FOLDER if path.is_dir() or (not path.exists() and not path.suffix) else FILE


def is_path(spec: str) -> bool:
    """A folder or a file (relative paths in a config are relative to the config file)."""
    return source_kind(spec) in (FOLDER, FILE)
