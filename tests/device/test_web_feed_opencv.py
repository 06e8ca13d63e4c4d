"""The live view's JPEG on the OpenCV a 32-bit Pi gets from apt (Debian bookworm's 4.6), which has no
``IMWRITE_JPEG_SAMPLING_FACTOR``: the emulated armhf check found every MJPEG stream empty there."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.web_feed import Snapshot, render_jpeg


def snapshot() -> Snapshot:
    image = np.full((120, 160, 3), 128, np.uint8)
    return Snapshot(seq=1, frame_no=1, image=image, sensors=(("a", (10, 10, 60, 30), (12, 12, 50, 20), "42", 0.9),))


def test_the_live_view_encodes_without_the_sampling_factor_option(monkeypatch):
    for name in ("IMWRITE_JPEG_SAMPLING_FACTOR", "IMWRITE_JPEG_SAMPLING_FACTOR_444"):
        monkeypatch.delattr(cv2, name, raising=False)  # as in OpenCV < 4.7
    data = render_jpeg(snapshot())
    assert data[:2] == b"\xff\xd8"
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)


def test_the_live_view_is_4_4_4_where_opencv_can():
    if not hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        pytest.skip(f"OpenCV {cv2.__version__} has no JPEG sampling factor option")
    data = render_jpeg(snapshot())
    start = data.index(b"\xff\xc0") + 11  # SOF0: length, precision, height, width, components, then per component
    assert [data[start + 3 * i] for i in range(3)] == [0x11, 0x11, 0x11]  # each: 1x1 sampling
