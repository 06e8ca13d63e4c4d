"""The page's side of the config file (device/web_roi.py, the [web] table): an ROI saved into the TOML
changes only its line and keeps the comments, atomically and checked like ``check-config``, a read-only
config gives a snippet to paste, and a bad [web] key or a port in use is a one-line error naming it.

Apart from tests/device/test_web.py (the page at work) and test_web_safety.py (the guards, fuzz) because
these are about the file and the config, most without a running daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from device.config import load_config, parse_config
from device.errors import ConfigError, WebError
from device.web_roi import save_roi, set_roi_in_text
from tests.support import REPO, free_port
from tests.web_support import TOKEN, digest, sample_config


# ---- the config edit ------------------------------------------------------------------------------------

TWO_SENSORS = """# top comment
[device]
name = "x"   # the name

[[sensor]]
name = "first"
roi = [1, 2, 30, 40]   # keep me
mode = "meter"

[[sensor]]
# the second one
name = "second"
roi = [
  5, 6,
  70, 80,
]  # multi-line
"""


def test_roi_edit_changes_only_that_line_and_keeps_comments():
    edited = set_roi_in_text(TWO_SENSORS, "first", [10, 20, 300, 40])
    assert edited == TWO_SENSORS.replace("roi = [1, 2, 30, 40]   # keep me", "roi = [10, 20, 300, 40]   # keep me")
    second = set_roi_in_text(TWO_SENSORS, "second", [0, 0, 9, 9])
    assert second.endswith('name = "second"\nroi = [0, 0, 9, 9]  # multi-line\n')
    assert second.startswith(TWO_SENSORS[: TWO_SENSORS.index("roi = [\n")])


def test_roi_edit_adds_the_line_after_the_name_when_there_is_none():
    text = '[[sensor]]\nname = "a"\nmode = "number"\n\n[[sensor]]\nname = "b"\n'
    assert set_roi_in_text(text, "b", [1, 1, 5, 5]) == text + "roi = [1, 1, 5, 5]\n"
    assert set_roi_in_text(text, "a", [1, 1, 5, 5]) == text.replace('"a"\n', '"a"\nroi = [1, 1, 5, 5]\n')


def test_roi_edit_refuses_what_it_cannot_edit_safely():
    with pytest.raises(WebError, match="not in the config"):
        set_roi_in_text(TWO_SENSORS, "third", [1, 1, 5, 5])
    with pytest.raises(WebError, match=r"\[\[sensor\]\] tables"):
        set_roi_in_text('sensor = [{name = "a", roi = [1, 1, 5, 5]}]\n', "a", [2, 2, 5, 5])


def test_save_roi_is_atomic_keeps_a_backup_and_is_checked_like_check_config(tmp_path):
    path = sample_config(tmp_path, port=free_port())
    path.chmod(0o640)
    before = path.read_bytes()
    answer = save_roi(path, "counter", [50, 50, 210, 70], frame_size=(320, 180))
    assert answer["saved"] is True
    assert (tmp_path / "digitcam.toml.bak").read_bytes() == before
    assert load_config(path).sensors[0].roi == (50, 50, 210, 70)
    assert "roi = [50, 50, 210, 70]  # the counter window" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digitcam.toml", "digitcam.toml.bak"]
    with pytest.raises(WebError, match="does not fit"):
        save_roi(path, "counter", [300, 0, 50, 50], frame_size=(320, 180))
    for bad in ([1, 2, 3], [0, 0, 1, 5], ["1", 2, 3, 4], [True, 0, 5, 5], None):
        with pytest.raises(WebError):
            save_roi(path, "counter", bad)
    path.write_text(path.read_text().replace('unit = "m³"', 'unit = "parsecs"'))  # someone broke it meanwhile
    with pytest.raises(WebError, match="sensor\\[0\\].unit"):
        save_roi(path, "counter", [50, 50, 210, 70])


def test_a_read_only_config_gives_the_snippet_and_changes_nothing(request):
    """As the shipped unit sees /etc (ProtectSystem=strict): the daemon may read the file, not write it.
    Run as an unprivileged user when the tests run as root (root may write anything)."""
    request_cleanup = request.addfinalizer
    outer = Path(tempfile.mkdtemp(prefix="digitcam-web-"))  # pytest's own tmp folders are private to root
    request_cleanup(lambda: shutil.rmtree(outer))
    outer.chmod(0o755)
    folder = outer / "etc"
    folder.mkdir()
    path = sample_config(folder, port=free_port())
    script = ("import json, sys; from pathlib import Path; from device.web_roi import save_roi; "
              "print(json.dumps(save_roi(Path(sys.argv[1]), 'counter', [10, 10, 100, 50])))")
    command = [sys.executable, "-c", script, str(path)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop root")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    else:
        folder.chmod(0o555)
        path.chmod(0o444)
    before = digest(path)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    folder.chmod(0o755)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["saved"] is False and "read-only" in answer["error"]
    assert answer["snippet"] == '[[sensor]]\nname = "counter"\nroi = [10, 10, 100, 50]\n'
    assert digest(path) == before and sorted(p.name for p in folder.iterdir()) == ["digitcam.toml"]


# ---- config errors ------------------------------------------------------------------------------------------


def test_web_config_errors_name_the_key(tmp_path):
    base = sample_config(tmp_path, port=8090).read_text()

    def error(web_lines: str) -> str:
        with pytest.raises(ConfigError) as info:
            parse_config(base.replace("port = 8090", f"port = 8090\n{web_lines}"), tmp_path / "digitcam.toml")
        message = str(info.value)
        assert "\n" not in message
        return message

    assert "web.bind: '0.0.0.0' is reachable from other machines: set web.token_file" in error('bind = "0.0.0.0"')
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    assert "web.token_file:" in error(f'bind = "0.0.0.0"\ntoken_file = "{token}"') and "chmod o-rwx" in error(
        f'token_file = "{token}"')
    token.chmod(0o600)
    token.write_text("short")
    assert "at least 16" in error(f'token_file = "{token}"')
    assert "web.fps: must be > 0" in error("fps = 0")
    assert "web.tokenfile: unknown key (did you mean 'token_file'?)" in error('tokenfile = "x"')
    token.write_text(TOKEN)
    cfg = parse_config(base.replace("port = 8090", 'port = 8090\nbind = "0.0.0.0"\ntoken_file = "token"'),
                       tmp_path / "digitcam.toml")
    assert cfg.web.token == TOKEN and TOKEN not in repr(cfg)


def test_a_port_in_use_is_a_one_line_error_naming_web_port(tmp_path, daemons):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        daemon = daemons(sample_config(tmp_path, port=taken.getsockname()[1]))
        assert daemon.wait(60) == 2
    last = daemon.log().strip().splitlines()[-1]
    assert last.startswith("digitcam: error: web.port: cannot listen on 127.0.0.1:") and "in use" in last
