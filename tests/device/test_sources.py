"""Frame sources: folders, video files, cameras that are missing, and a grabber that drops stale frames."""

import threading
import time

import cv2
import numpy as np
import pytest

from device.config import CameraConfig
from device.errors import ConfigError, SourceError
from device.sources import (Backoff, BadFrame, FolderSource, LatestFrame, OpenCVSource, PicameraSource,
                            build_source)


def numbered(i, size=(48, 64)):
    """A frame whose top-left pixel says which frame it is (survives JPEG/MJPG roughly, PNG exactly)."""
    frame = np.full((*size, 3), 20, np.uint8)
    frame[:16, :16] = i * 20
    return frame


def tag(frame):
    return int(round(float(frame[2:14, 2:14].mean()) / 20))


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(4):
        cv2.imwrite(str(d / f"{i:03d}.png"), numbered(i))
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened(), "OpenCV cannot write MJPG"
    for i in range(6):
        writer.write(numbered(i))
    writer.release()
    return path


def read_all(source, limit=100):
    out = []
    while len(out) < limit:
        frame = source.read()
        if frame is None:
            break
        out.append(tag(frame))
    return out


def test_folder_in_name_order_then_end(folder):
    src = FolderSource(folder)
    src.open()
    assert read_all(src) == [0, 1, 2, 3]


def test_folder_loops(folder):
    src = FolderSource(folder, loop=True)
    src.open()
    assert read_all(src, limit=10) == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]


def test_folder_bad_image_is_a_bad_frame_and_a_gone_file_a_source_error(folder):
    (folder / "001.png").write_bytes(b"\x89PNG truncated")
    src = FolderSource(folder)
    src.open()
    assert tag(src.read()) == 0
    with pytest.raises(BadFrame, match="001.png"):
        src.read()
    (folder / "002.png").unlink()
    with pytest.raises(SourceError, match="002.png has gone"):
        src.read()


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="has no images"):
        FolderSource(tmp_path / "empty").open()
    with pytest.raises(SourceError, match="cannot be read"):
        FolderSource(tmp_path / "nowhere").open()


def test_video_file_frames_in_order_and_loop(video):
    src = OpenCVSource(str(video), live=False)
    src.open()
    assert read_all(src) == [0, 1, 2, 3, 4, 5]
    src.close()
    src = OpenCVSource(str(video), live=False, loop=True)
    src.open()
    assert read_all(src, limit=9) == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    src.close()


def test_video_file_removed_while_looping_is_a_source_error(video):
    src = OpenCVSource(str(video), live=False, loop=True)
    src.open()
    read_all(src, limit=3)
    video.unlink()
    with pytest.raises(SourceError, match="has gone"):
        read_all(src, limit=10)
    src.close()
    with pytest.raises(SourceError, match="does not exist"):
        src.open()


def test_missing_camera_is_a_clear_error():
    src = OpenCVSource("/dev/video97", live=True)
    with pytest.raises(SourceError, match=r"camera /dev/video97 cannot be opened"):
        src.open()


def test_fps_paces_reads(folder):
    src = FolderSource(folder, loop=True, fps=20)
    src.open()
    start = time.monotonic()
    for _ in range(6):
        src.read()
    assert 0.2 <= time.monotonic() - start < 1.0


def test_latest_frame_drops_stale_frames_rather_than_queueing():
    counter = iter(range(10**9))

    def grab():
        time.sleep(0.001)
        return next(counter)

    grabber = LatestFrame("fake", grab, timeout=1.0)
    first = grabber.get()
    time.sleep(0.1)  # the reader is busy; the camera keeps going
    second = grabber.get()
    grabber.stop()
    assert second - first > 2  # we got the newest frame, not the next one in a queue
    assert grabber.dropped >= second - first - 1


def test_latest_frame_reports_a_dead_camera_and_a_silent_one():
    def broken():
        raise OSError("VIDIOC_DQBUF: No such device")

    grabber = LatestFrame("cam0", broken, timeout=1.0)
    with pytest.raises(SourceError, match="cam0: OSError: VIDIOC_DQBUF"):
        grabber.get()
    stop = threading.Event()
    silent = LatestFrame("cam1", lambda: stop.wait(5) or None, timeout=0.2)
    with pytest.raises(SourceError, match=r"cam1: no frame for 0.2 s"):
        silent.get()
    stop.set()
    silent.stop()


def test_backoff_doubles_to_a_ceiling_and_resets():
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5


def test_picamera2_elsewhere_is_a_config_error():
    try:
        import picamera2  # noqa: F401
        pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match=r"needs the picamera2 package"):
        PicameraSource()


def test_build_source_picks_by_spec(folder, video):
    assert isinstance(build_source(CameraConfig(source=str(folder))), FolderSource)
    assert isinstance(build_source(CameraConfig(source=str(video))), OpenCVSource)
    assert build_source(CameraConfig(source="0")).live
    assert build_source(CameraConfig(source="rtsp://10.0.0.2/stream")).live
    assert not build_source(CameraConfig(source=str(video))).live
