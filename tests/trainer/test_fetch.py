"""``digitcam data fetch`` against a local HTTP server serving small archives in the origins' layouts.

The server (127.0.0.1, a free port) serves each file whole with range support under ``/ok/``, with one
byte flipped under ``/corrupt/``, and cut off half-way (the full Content-Length announced) under
``/truncated/``; it records the Range headers it was sent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import socket
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.data import METER_FOLDER, MNIST_SAMPLE, clear_caches
from trainer import download, fetch, meter_archive, meters, mnist_seq

ROOT = Path(__file__).resolve().parents[2]
TOP = f"Tenth-of-step-of-a-meter-digit-{fetch.METERS_COMMIT}"


def upstream_meter_tarball() -> bytes:
    """The committed meter sample laid out as the upstream repository's archive, with its oddities:
    a date folder inside a meter's folder, resized copies under datasets/, an identical copy elsewhere,
    an identical copy with another label, a name that is no label, and files that are no images."""
    rows = list(csv.DictReader(open(METER_FOLDER / "labels.csv")))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def put(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for i, row in enumerate(rows):
            data = (METER_FOLDER / row["path"]).read_bytes()
            original = row["path"].split("/", 1)[1].split("_", 1)[1]
            folder = row["source"] + ("/20230604" if i % 3 == 0 else "")
            put(f"{folder}/{original}", data)
        first, second = (METER_FOLDER / rows[0]["path"]).read_bytes(), (METER_FOLDER / rows[1]["path"]).read_bytes()
        put(f"images/zz_copies/{rows[0]['path'].split('_', 1)[1]}", first)  # same label: kept once
        other = "3.0" if rows[1]["class"] != "3" else "4.0"
        put(f"images/zz_copies/{other}_conflict.jpg", second)  # the same bytes with another label: dropped
        put("images/zz_copies/8.6.8_unparsable.jpg", b"\xff\xd8 not a label")
        put("datasets/meterdigits/0.0/0.0_resized.jpg", first[:200])
        put("Readme.md", b"# upstream readme\n")
    return buf.getvalue()


class Server:
    """Files by name under /ok/, /corrupt/ and /truncated/; ``ranges`` lists the Range headers received."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.ranges = files, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                mode, _, name = self.path.strip("/").partition("/")
                if name not in outer.files or mode not in ("ok", "corrupt", "truncated"):
                    self.send_error(404)
                    return
                data = outer.files[name]
                if mode == "corrupt":
                    data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
                start = 0
                if self.headers.get("Range"):
                    outer.ranges.append(self.headers["Range"])
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                self.wfile.write(body[: len(body) // 2] if mode == "truncated" else body)
                if mode == "truncated":
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    srv = Server({"meters.tar.gz": upstream_meter_tarball(), "mnist.npz": MNIST_SAMPLE.read_bytes()})
    yield srv
    srv.close()


def pinned(server, mode: str, name: str, sha256: str | None = "real") -> dict[str, fetch.Dataset]:
    """The real data set table with one data set's file served by ``server`` and pinned to its true sha256."""
    real = fetch.DATASETS[name]
    if sha256 == "real":
        sha256 = hashlib.sha256(server.files[real.files[0].name]).hexdigest()
    remote = download.Remote(f"{server.url}/{mode}/{real.files[0].name}", real.files[0].name, sha256)
    return {**fetch.DATASETS, name: fetch.Dataset(name, (remote,), real.install, real.licence)}


@pytest.fixture
def use_dest(tmp_path, monkeypatch):
    """A fetch destination that the trainer reads (DIGITCAM_DATA), with its own extraction cache."""
    monkeypatch.setenv("DIGITCAM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DIGITCAM_CACHE", str(tmp_path / "cache"))
    clear_caches()
    yield tmp_path / "data"
    clear_caches()


def test_meters_fetch_converts_the_upstream_tree_into_what_the_trainer_reads(server, use_dest):
    installed = fetch.fetch("meters", use_dest, datasets=pinned(server, "ok", "meters"), progress_stream=io.StringIO())
    assert installed == meters.archive_path()
    expected = {r["path"].split("/")[1][:12]: r for r in csv.DictReader(open(METER_FOLDER / "labels.csv"))}
    with tarfile.open(installed) as tar:
        rows = list(csv.DictReader(io.TextIOWrapper(tar.extractfile(f"{meters.FOLDER}/labels.csv"))))
        for row in rows:  # every name starts with the sha256 of its bytes, as in the team's archive
            data = tar.extractfile(f"{meters.FOLDER}/{row['path']}").read()
            assert row["path"].startswith(f"images/{hashlib.sha256(data).hexdigest()[:12]}_")
    got = {r["path"].split("/")[1][:12]: r for r in rows}
    conflicted = list(expected)[1]  # the sample's second crop, see upstream_meter_tarball
    assert set(got) == set(expected) - {conflicted}  # copies once, conflicts and non-labels dropped
    for key, row in got.items():
        assert {k: row[k] for k in ("digit", "fraction", "class", "source")} == \
            {k: expected[key][k] for k in ("digit", "fraction", "class", "source")}, key
    assert not (use_dest / ".downloads" / "meters.tar.gz").exists()  # the download is removed once installed
    crops = meters.load_crops()  # the trainer reads it, from DIGITCAM_DATA, extracted into its cache
    assert len(crops) == len(meters.load_crops(METER_FOLDER)) - 1
    assert meters.crops_of_split("val") and meters.crops_of_split("test")


def test_mnist_fetch_installs_where_the_trainer_reads(server, use_dest):
    fetch.fetch("mnist", use_dest, datasets=pinned(server, "ok", "mnist"), progress_stream=io.StringIO())
    images, labels = mnist_seq.load_split("train")
    assert images.shape == (300, 28, 28) and len(labels) == 300


def test_a_corrupt_download_is_refused_deleted_and_nothing_installed(server, tmp_path):
    with pytest.raises(download.FetchError, match=r"sha256 [0-9a-f]{64} is not the pinned [0-9a-f]{64}.*deleted") as exc:
        fetch.fetch("mnist", tmp_path, datasets=pinned(server, "corrupt", "mnist"), progress_stream=io.StringIO())
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "mnist").exists()
    assert list((tmp_path / ".downloads").iterdir()) == []


def test_a_truncated_download_is_kept_and_resumed_with_a_range_request(server, tmp_path):
    size = len(server.files["mnist.npz"])
    with pytest.raises(download.FetchError, match="run the same command again to resume"):
        fetch.fetch("mnist", tmp_path, datasets=pinned(server, "truncated", "mnist"), progress_stream=io.StringIO())
    part = tmp_path / ".downloads" / "mnist.npz.part"
    assert part.stat().st_size == size // 2
    server.ranges.clear()
    fetch.fetch("mnist", tmp_path, datasets=pinned(server, "ok", "mnist"), progress_stream=io.StringIO())
    assert server.ranges == [f"bytes={size // 2}-"]
    assert (tmp_path / "mnist" / "mnist.npz").read_bytes() == server.files["mnist.npz"]


def test_no_network_is_one_line_that_says_so(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = download.Remote(f"http://127.0.0.1:{port}/mnist.npz", "mnist.npz", "0" * 64)
    table = {"mnist": fetch.Dataset("mnist", (remote,), fetch.install_mnist, "")}
    with pytest.raises(download.FetchError, match=f"cannot reach 127.0.0.1:{port} .*needs the network") as exc:
        fetch.fetch("mnist", tmp_path, datasets=table)
    assert "\n" not in str(exc.value)


def test_an_unpinned_file_needs_consent_and_then_says_its_sha256(server, tmp_path, caplog):
    table = pinned(server, "ok", "mnist", sha256=None)
    with pytest.raises(download.FetchError, match="no pinned sha256 yet: pass --allow-unpinned"):
        fetch.fetch("mnist", tmp_path, datasets=table)
    fetch.fetch("mnist", tmp_path, datasets=table, allow_unpinned=True, progress_stream=io.StringIO())
    assert hashlib.sha256(server.files["mnist.npz"]).hexdigest() in caplog.text


def test_progress_is_a_bar_every_tenth_when_not_a_terminal():
    out = io.StringIO()
    bar = download.Progress("x.tar.gz", 1000, 0, out)
    for _ in range(100):
        bar.update(10)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("x.tar.gz: [" + "#" * 30 + "] 100% ")


def test_meter_names_become_labels_by_the_archive_rule():
    assert meter_archive.meter_row("images/collected/gas/GMT/20230604/5.8_abc.jpg") == \
        {"digit": "5", "fraction": "0.8", "class": "6", "source": "images/collected/gas/GMT"}
    assert meter_archive.meter_row("images/x/3.5_a.jpg")["class"] == "10"  # mid-roll: no clean class
    assert meter_archive.meter_row("images/x/9.9_a.jpg")["class"] == "0"
    assert meter_archive.meter_row("images/x/NaN_a.jpg") == {"digit": "", "fraction": "", "class": "10", "source": "images/x"}
    assert meter_archive.meter_row("images/x/8.6.8_a.jpg") is None
    assert meter_archive.meter_row("images/x/2.3000000000000003_a.jpg")["fraction"] == "0.3"  # a float printed unrounded
    assert meter_archive.meter_row("images/x/2.35_a.jpg") is None  # not a tenth
    assert meter_archive.meter_row("images/x/7.5.jpg")["digit"] == "7"  # the label is the whole name
    assert meter_archive.meter_row("images/lcd/4_a.jpg")["fraction"] == "0.0"  # an LCD digit
    assert meter_archive.meter_row("images/0.1_a.jpg")["source"] == "images"


def test_the_cli_refuses_a_file_that_is_not_the_pinned_one(server, tmp_path):
    """Through ``digitcam data fetch --mirror``: the sample is not the real MNIST, so the real pin rejects it."""
    done = subprocess.run([sys.executable, "-m", "device.cli", "data", "fetch", "mnist", "--dest", str(tmp_path),
                           "--mirror", f"{server.url}/ok"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("digitcam: error: ")
    assert f"is not the pinned {fetch.DATASETS['mnist'].files[0].sha256}" in done.stderr.splitlines()[-1]
    assert "100%" in done.stderr  # the progress bar ran
    assert not (tmp_path / "mnist").exists()


def test_the_trainer_names_the_fetch_command_when_data_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITCAM_DATA", str(tmp_path))
    clear_caches()
    with pytest.raises(FileNotFoundError, match=r"run `digitcam data fetch mnist`"):
        mnist_seq.load_split("train")
    monkeypatch.setenv("DIGITCAM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"run `digitcam data fetch meters`"):
        meters.extracted_dir()
