"""Fuzzing the frame path: malformed image files and frames must give a one-line error or a reading, never a
crash or a hang.

10,000 hypothesis cases go through the in-process path a file takes (``read_image``: decode, crop, recognize)
and, when they decode, on through the daemon's ``Service.process``; frames a live camera could hand over
(any dtype, any shape) go through ``check_frame`` and ``Service.process``. Fifty files go through the real
``digitcam read --json`` process, and a decompression bomb through its own process (its limit is set when
cv2 is first imported, see ``device/__init__.py``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from device.config import SensorConfig
from device.errors import SourceError
from device.images import check_frame
from device.oneshot import read_image
from device.recognize import Recognizer
from device.reader import build_sensors
from device.service import Service
from device.sources import FolderSource
from tests.support import REPO

FUZZ_CASES = int(os.environ.get("DIGITCAM_FUZZ_CASES", 10_000))  # fewer while developing
ENCODINGS = (".png", ".jpg", ".bmp", ".tiff", ".webp", ".pgm")


# ---- building malformed files: plain functions, used by hypothesis and by the subprocess corpus ---------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int, depth: int, colour: int, body: bytes) -> bytes:
    """A PNG with a valid structure and checksums around whatever dimensions and pixel data it is given."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(body))
            + png_chunk(b"IEND", b""))


def bmp_header(width: int, height: int, bits: int, body: bytes) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, len(body), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(body), 0, 0, 54) + info + body


def pgm_header(width: int, height: int, maxval: int, body: bytes) -> bytes:
    return f"P5\n{width} {height}\n{maxval}\n".encode() + body


def encoded(pixels: np.ndarray, suffix: str) -> bytes:
    ok, buf = cv2.imencode(suffix, pixels)
    return buf.tobytes() if ok else b""


def damaged(data: bytes, cut: int | None, flips: list[tuple[int, int]], tail: bytes) -> bytes:
    """Truncate at ``cut``, xor bytes at the given positions, append ``tail``."""
    out = bytearray(data if cut is None else data[: cut % (len(data) + 1)])
    for pos, value in flips:
        if out:
            out[pos % len(out)] ^= value or 1
    return bytes(out) + tail


# ---- cases: hypothesis picks a kind and a seed, a plain function builds the case (cheap to draw, replayable) ----

DIMS = [0, 1, 2, 3, 7, 31, 64, 255, 10_000, 30_000, 65_535, 1 << 20, (1 << 31) - 1, (1 << 32) - 1]
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"BM", b"P5\n1 1\n255\n",
         b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"II*\x00", b"MM\x00*"]
THIN = [(1, 10_000), (10_000, 1), (1, 1), (2, 4000)]
FILE_KINDS = ("random bytes", "damaged image", "lying header", "magic only")
KINDS = FILE_KINDS + ("odd frame",)


def pixels(rng: random.Random) -> np.ndarray:
    """A small image of a kind cameras and files hold: grey, BGR, BGRA; 8 or 16 bit; sometimes very thin."""
    if rng.random() < 0.1:
        return np.full(rng.choice(THIN), 200, np.uint8)
    shape = (rng.randint(1, 48), rng.randint(1, 48)) + rng.choice([(), (1,), (3,), (4,)])
    dtype = rng.choice([np.uint8, np.uint16])
    return np.random.default_rng(rng.getrandbits(32)).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def odd_frame(rng: random.Random):
    """What a broken driver could hand over instead of a frame: any dtype, any number of dimensions, or None."""
    pick = rng.randrange(4)
    if pick == 0:
        return pixels(rng)
    if pick == 1:
        return rng.choice([None, np.empty((0, 0), np.uint8), np.zeros((4, 4, 7), np.uint8), np.zeros((0, 5, 3))])
    dtype = rng.choice([np.uint8, np.uint16, np.float32, np.float64, np.int8, np.bool_, np.int64])
    return np.ones([rng.randint(0, 12) for _ in range(rng.randint(0, 4))], dtype)


def make_case(kind: str, rng: random.Random):
    """("file", bytes) or ("frame", object) of the given kind."""
    if kind == "random bytes":
        return "file", rng.randbytes(rng.randint(0, 4096))
    if kind == "damaged image":
        data = encoded(pixels(rng), rng.choice(ENCODINGS))
        cut = rng.choice([None, rng.randint(0, max(len(data), 1))])
        flips = [(rng.getrandbits(16), rng.getrandbits(8)) for _ in range(rng.randint(0, 4))]
        return "file", damaged(data, cut, flips, rng.randbytes(rng.choice([0, 0, 8])))
    if kind == "lying header":
        w, h, body = rng.choice(DIMS), rng.choice(DIMS), rng.randbytes(rng.randint(0, 512))
        builder = rng.randrange(3)
        if builder == 0:
            return "file", png_header(w, h, rng.choice([1, 2, 4, 8, 16, 3]), rng.choice([0, 2, 3, 4, 6, 5]), body)
        if builder == 1:
            return "file", bmp_header(min(w, (1 << 31) - 1), min(h, (1 << 31) - 1) * rng.choice([1, -1]),
                                      rng.choice([1, 8, 16, 24, 32, 7]), body)
        return "file", pgm_header(w, h, rng.choice([1, 255, 65535, 0, 70000]), body)
    if kind == "magic only":
        return "file", rng.choice(MAGIC) + rng.randbytes(rng.choice([0, 4, 64]))
    return "frame", odd_frame(rng)


# ---- checks ------------------------------------------------------------------------------------------------


def assert_one_line_result(result: dict) -> None:
    if "error" in result:
        assert isinstance(result["error"], str) and result["error"]
        assert "\n" not in result["error"] and len(result["error"]) < 600, result["error"]
    else:
        value = result["value"]
        assert value is None or (value.isdigit() and len(value) <= 8), value


@pytest.fixture(scope="module")
def recognizer(model):
    return Recognizer(model)


@pytest.fixture(scope="module")
def service(recognizer, tmp_path_factory):
    """A daemon loop with a whole-frame sensor and an ROI sensor; frames are handed to ``process`` directly."""
    sensors = build_sensors([SensorConfig(name="whole"), SensorConfig(name="roi", roi=(4, 4, 40, 20))])
    return Service(FolderSource(tmp_path_factory.mktemp("unused")), recognizer, sensors,
                   unusable_after_s=float("inf"))  # per-frame robustness here; the camera-down pacing elsewhere


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory):
    """The one file every case is written to: in RAM (/dev/shm) where there is one, 10,000 writes are cheap."""
    shm = Path("/dev/shm")
    directory = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("fuzz")
    yield directory / "case.img"
    shutil.rmtree(directory, ignore_errors=True)


def process_frame(service: Service, frame) -> None:
    """The daemon path: a frame is exactly one of read (every sensor has a new reading, no error counted) or
    refused (one error counted, logged on one line, no sensor's reading replaced)."""
    frames, errors = service.frame_no, service.stats.errors
    before = [sensor.last for sensor in service.sensors]
    service.process(frame)
    assert service.frame_no == frames + 1
    replaced = [sensor.last is not old for sensor, old in zip(service.sensors, before)]
    counted = service.stats.errors - errors
    assert (counted, replaced) in ((0, [True] * len(replaced)), (1, [False] * len(replaced))), (counted, replaced)
    assert all("\n" not in message for message in service.stats.warned)


@settings(max_examples=FUZZ_CASES, deadline=timedelta(seconds=30), database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**64 - 1))
def test_fuzzed_files_and_frames_give_one_line_errors_or_readings(recognizer, service, fuzz_file, kind, seed):
    what, thing = make_case(kind, random.Random(seed))
    if what == "file":
        path = fuzz_file
        path.write_bytes(thing)
        result = read_image(recognizer, str(path), use_locator=False)
        assert_one_line_result(result)
        if "error" not in result:
            process_frame(service, cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
        return
    try:
        frame = check_frame(thing, "frame from the fuzzer")
    except SourceError as exc:  # what a live source raises for it: one line, then the next frame
        assert "\n" not in str(exc)
        return
    process_frame(service, frame)


def corpus(seed: int, n: int) -> list[bytes]:
    """``n`` malformed files of every file kind, for the subprocess."""
    rng = random.Random(seed)
    return [make_case(FILE_KINDS[i % len(FILE_KINDS)], rng)[1] for i in range(n)]


def read_cli(model, *paths, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device.cli", "read", "--json", "--no-locate", "--model", str(model),
                           *map(str, paths)], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_digitcam_read_process_answers_every_malformed_file(tmp_path, model):
    paths = []
    for i, data in enumerate(corpus(8, 50)):
        paths.append(tmp_path / f"case{i:02d}.png")
        paths[-1].write_bytes(data)
    paths.insert(25, tmp_path / "missing.jpg")
    done = read_cli(model, *paths)
    lines = done.stdout.splitlines()
    assert len(lines) == len(paths), done.stderr[-2000:]
    results = [json.loads(line) for line in lines]
    assert [r["image"] for r in results] == list(map(str, paths))  # one answer per file, in order
    for result in results:
        assert_one_line_result(result)
    assert sum("error" in r for r in results) >= 30, "the corpus is not malformed enough to test anything"
    assert done.returncode == 1  # some files were bad; the others were still read
    assert "Traceback" not in done.stderr


def test_decompression_bomb_is_refused_before_it_is_decoded(tmp_path, model):
    """A 79 KB PNG of 9000x9000 zero pixels: OpenCV must refuse it, not allocate 81 MB and read it."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(9000, 9000, 8, 0, b"\0" * (9001 * 9000)))
    assert bomb.stat().st_size < 200_000
    done = read_cli(model, bomb)
    (result,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert "CV_IO_MAX_IMAGE_PIXELS" in result.get("error", ""), result
    assert done.returncode == 1 and "Traceback" not in done.stderr
