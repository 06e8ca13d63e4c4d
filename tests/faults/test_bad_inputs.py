"""Bad models, bad configs and bad command payloads: each is a clear one-line error.

At start-up ``digitcam run`` exits with code 2 and one ``digitcam: error: ...`` line naming the problem,
before it connects anywhere; the systemd unit does not restart on exit code 2, so a broken install
does not turn into a restart loop. Command payloads are refused on ``cmd/result`` and the daemon runs on.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from device.commands import CommandError, parse_command
from device.manifest import write_manifest
from tests.support import REPO, TOPICS, states, wait_until, write_config

UNITS = [REPO / "systemd" / "digitcam.service", REPO / "ansible" / "roles" / "digitcam" / "templates" /
         "digitcam.service.j2"]


def run_daemon(config: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "device.cli", "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


def assert_refused(done: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit code 2 with one last line ``digitcam: error: ...`` containing every expected fragment."""
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2, done.stderr[-1500:]
    assert last.startswith("digitcam: error: "), last
    for fragment in expected:
        assert fragment in last, last
    assert "Traceback" not in done.stderr
    return last


def test_exit_code_2_is_not_restarted_by_systemd():
    for unit in UNITS:
        assert "RestartPreventExitStatus=2" in unit.read_text(), f"{unit} would restart a daemon that cannot start"


def model_copy(model: Path, directory: Path, data: bytes | None = None, manifest: str | None = None) -> Path:
    """The model (or other bytes) beside a manifest (the original, or the given text) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "model.tflite"
    target.write_bytes(model.read_bytes() if data is None else data)
    target.with_suffix(".json").write_text(model.with_suffix(".json").read_text() if manifest is None else manifest)
    return target


def fields_of(model: Path) -> dict:
    data = json.loads(model.with_suffix(".json").read_text())
    return {k: v for k, v in data.items() if k not in ("schema", "file", "sha256")}


def corrupt_with_good_checksum(model: Path, d: Path) -> Path:
    target = model_copy(model, d, random.Random(1).randbytes(model.stat().st_size))
    write_manifest(target, fields_of(model))  # the checksum matches the garbage: the interpreter must refuse it
    return target


THREE_CHANNEL_MODEL = Path(__file__).parent / "data" / "three_channel_input.tflite"


def float_input_model(model: Path, d: Path) -> Path:
    """A real TFLite model whose input is uint8 [1, 32, 128, 3]: three channels where the contract wants one.

    Committed (1.5 KB) so this runs without TensorFlow; it was made by converting this Keras model:
    ``Input((32, 128, 3), batch_size=1, dtype="uint8", name="image")`` -> mean over rows and channels ->
    ``Reshape((128, 1))`` -> ``Softmax(name="ctc")``, with ``tf.lite.TFLiteConverter.from_keras_model``.
    """
    d.mkdir(parents=True, exist_ok=True)
    target = d / "model.tflite"
    shutil.copy(THREE_CHANNEL_MODEL, target)
    write_manifest(target, fields_of(model))
    return target


BAD_MODELS = {
    "missing": (lambda model, d: d / "nothing.tflite", "model not found"),
    "manifest missing": (lambda model, d: model_copy(model, d).with_suffix(".json").unlink() or d / "model.tflite",
                         "model manifest not found"),
    "manifest corrupt": (lambda model, d: model_copy(model, d, manifest='{"name": "x", "ver'), "is corrupt"),
    "truncated (manifest mismatch)": (lambda model, d: model_copy(model, d, model.read_bytes()[:4096]),
                                      "model checksum mismatch"),
    "garbage with a matching manifest": (corrupt_with_good_checksum, "cannot be loaded by"),
    "wrong input shape": (float_input_model, "the contract wants uint8[batch, height, width, 1]"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_exits_2_naming_the_problem(tmp_path, model, clip, case):
    make, expected = BAD_MODELS[case]
    bad = make(model, tmp_path / "models")
    done = run_daemon(write_config(tmp_path, bad, clip[0]))
    assert_refused(done, expected)


BAD_CONFIGS = {
    "unknown key": (("fps = 0", "fsp = 0"), "camera.fsp: unknown key (did you mean 'fps'?)"),
    "unknown section": (("[camera]", "[camra]\n[camera]"), "camra: unknown section (did you mean 'camera'?)"),
    "sensor key typo": (("window = 5", "windw = 5"), "sensor[0].windw: unknown key"),
    "wrong type": (("loop = false", 'loop = "no"'), "camera.loop: must be true or false"),
    "bad value": (("retry_min_s = 0.2", "retry_min_s = 0"), "camera.retry_max_s"),
    "not TOML": (("[device]", "[device"), "not valid TOML"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_exits_2_naming_file_line_and_key(tmp_path, model, clip, case):
    (old, new), expected = BAD_CONFIGS[case]
    config = write_config(tmp_path, model, clip[0])
    text = config.read_text()
    assert old in text, f"the test config no longer has {old!r}"
    config.write_text(text.replace(old, new, 1))
    started = time.monotonic()
    last = assert_refused(run_daemon(config), expected)
    assert str(config) in last
    assert time.monotonic() - started < 30  # refused at once, not after retries


# ---- command payloads ----------------------------------------------------------------------------------------


SENSORS = ("number", "other")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                          max_size=4), max_leaves=12)
payloads = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["sensor", "id", "Sensor", "cmd", ""]), json_values, max_size=3).map(
        lambda d: json.dumps(d).encode()),
)


@settings(max_examples=500, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(name=st.one_of(st.sampled_from(["read", "snapshot", "reload"]), st.text(max_size=80)), payload=payloads)
def test_command_parser_accepts_only_documented_commands(name, payload):
    """Any name and payload: the documented shape is accepted, everything else is a one-line CommandError."""
    try:
        args = parse_command(name, payload, SENSORS).args
    except CommandError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 300
        return
    assert name in ("read", "snapshot", "reload")
    assert set(args) <= {"id", "sensor"}
    assert args.get("sensor") in (None, "number", "other")
    assert name != "reload" or "sensor" not in args


MALFORMED = [("read", b"{"), ("read", b"\xff\xfe\x00"), ("read", b"null"), ("read", b'"number"'),
             ("read", b'{"sensor": ["number"]}'), ("read", b'{"sensor": {"$ne": 1}}'), ("snapshot", b"1e999"),
             ("snapshot", b'{"sensor": "number", "path": "/etc/passwd"}'), ("reload", b'{"config": "/tmp/x.toml"}'),
             ("read", b"[" * 600 + b"]" * 600), ("read", b'{"id": 1, "sensor": "number", "then": "reload"}'), ("shutdown", b""),
             ("READ", b""), ("read ", b""), ("exec", b'{"cmd": "rm -rf /"}')]


def test_malformed_commands_are_answered_and_the_daemon_reads_on(tmp_path, model, clip, broker, subscribe, daemons):
    sub = subscribe("digitcam/#")
    daemon = daemons(write_config(tmp_path, model, clip[0], broker, loop=True, fps=20))
    wait_until(lambda: states(sub), 60)
    for name, payload in MALFORMED:
        sub.publish(f"{TOPICS.base}/cmd/{name}", payload)
    wait_until(lambda: len(sub.payloads(TOPICS.command_result)) >= len(MALFORMED), 20)
    results = [json.loads(p) for p in sub.payloads(TOPICS.command_result)]
    assert [r["ok"] for r in results] == [False] * len(MALFORMED), results
    assert all(r["error"] and "\n" not in r["error"] for r in results)
    seen = len(states(sub))
    wait_until(lambda: len(states(sub)) > seen, 20)  # still reading
    assert daemon.proc.poll() is None and "Traceback" not in daemon.log()
