"""The committed default model runs through the device's interpreter wrapper on the runtime CI asks for.

scripts/test.sh runs this file twice: in .venv with ai-edge-litert (numpy 2) and in .venv-tflite with
tflite-runtime 2.14 and numpy<2, the pairing a 32-bit Raspberry Pi OS needs. No TensorFlow here.
"""

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.errors import ModelError
from device.recognize import Recognizer

RUNTIME = os.environ.get("DIGITCAM_RUNTIME", "litert")
MODEL = Path(__file__).resolve().parents[2] / "models" / "digitcam.tflite"


def _text_crop(text: str, seed: int) -> np.ndarray:
    """A clean dark-on-light number drawn with OpenCV, so this test needs nothing but cv2."""
    rng = np.random.default_rng(seed)
    img = np.full((48, 40 + 26 * len(text), 3), int(rng.integers(190, 250)), np.uint8)
    cv2.putText(img, text, (16, 38), cv2.FONT_HERSHEY_DUPLEX, 1.2, (20, 20, 20), 3, cv2.LINE_AA)
    return img


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(MODEL, runtime=RUNTIME)


def test_runs_on_the_requested_runtime(recognizer):
    assert recognizer.runtime == RUNTIME
    if RUNTIME == "tflite-runtime":
        assert int(np.__version__.split(".")[0]) < 2, "tflite-runtime 2.14 is only supported with numpy<2"


def test_model_is_full_int8_with_uint8_input(recognizer):
    details = recognizer.interpreter.get_input_details()[0]
    assert details["dtype"] == np.uint8
    tensor_types = {t["dtype"] for t in recognizer.interpreter.get_tensor_details()}
    assert np.int8 in tensor_types, "internal tensors must be int8"


def test_batch_equals_single_reads(recognizer):
    crops = [_text_crop(t, i) for i, t in enumerate(["2024", "518", "77031", "9"])]
    batch, ms = recognizer.read(crops)
    singles = [recognizer.read([c])[0][0] for c in crops]
    assert ms > 0
    assert [r.value for r in batch] == [r.value for r in singles]
    for b, s in zip(batch, singles):
        assert b.confidence == pytest.approx(s.confidence, abs=1e-6)
        assert 0.0 <= b.confidence <= 1.0


def test_reads_clean_numbers(recognizer):
    texts = ["2024", "518", "77031", "9", "360", "1847", "52", "40913"]
    readings, _ = recognizer.read([_text_crop(t, i) for i, t in enumerate(texts)])
    correct = sum(r.value == t for r, t in zip(readings, texts))
    assert correct >= 6, [r.value for r in readings]


def test_corrupt_model_is_a_one_line_model_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(MODEL.read_bytes()[: 4096])
    (tmp_path / "bad.json").write_text(MODEL.with_suffix(".json").read_text())
    with pytest.raises(ModelError) as exc:  # the checksum catches the truncation first
        Recognizer(bad, runtime=RUNTIME)
    assert "\n" not in str(exc.value)


@pytest.mark.skipif(RUNTIME == "tflite-runtime", reason="tflite-runtime 2.14 segfaults on a truncated flatbuffer; "
                    "there the manifest's sha256 check (test above) is the guard")
def test_truncated_model_with_a_matching_manifest_cannot_be_loaded(tmp_path):
    """Past the checksum, the runtime itself must refuse a broken file with one line, not a crash."""
    from device.contract import InputSpec
    from device.manifest import write_manifest

    bad = tmp_path / "short.tflite"
    bad.write_bytes(MODEL.read_bytes()[: 2048])
    write_manifest(bad, {"name": "short", "version": "0", "head": "ctc", "input": InputSpec().as_dict()})
    with pytest.raises(ModelError, match="cannot be loaded") as exc:
        Recognizer(bad, runtime=RUNTIME)
    assert "\n" not in str(exc.value)


def test_the_daemon_logs_the_platform_and_runtime_it_chose(tmp_path):
    """A real daemon start: the line names this machine and what was chosen (runtime, version, delegate, threads)."""
    import platform
    from importlib import metadata

    from device.runtime import PACKAGES
    from tests.support import REPO, run_cli, write_config

    config = write_config(tmp_path, MODEL, REPO / "samples" / "meter")
    config.write_text(config.read_text().replace("[device]\n", f'[device]\nruntime = "{RUNTIME}"\n', 1))
    done = run_cli("run", "--config", config, "--max-frames", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    package = PACKAGES[RUNTIME]
    delegate = "XNNPACK" if RUNTIME == "litert" else "built-in kernels"  # tflite-runtime 2.14: int8 on its own kernels
    line = next((s for s in done.stderr.splitlines() if "platform and runtime: " in s), done.stderr[-2000:])
    assert line.split("platform and runtime: ", 1)[1].startswith(f"{platform.machine()}, "), line
    assert line.endswith(f", Python {platform.python_version()}, {package} {metadata.version(package)}, {delegate}, 1 thread"), line


def test_the_platform_line_says_when_python_is_32_bit_on_a_64_bit_kernel():
    from device.runtime import platform_line

    plat = {"machine": "aarch64", "python_bits": 32, "os": "Raspbian GNU/Linux 12 (bookworm)", "python": "3.11.2"}
    runtime = {"name": "tflite-runtime", "version": "2.14.0", "delegate": "built-in kernels", "threads": 2}
    assert platform_line(plat, runtime) == ("aarch64 (32-bit Python), Raspbian GNU/Linux 12 (bookworm), Python 3.11.2, "
                                            "tflite-runtime 2.14.0, built-in kernels, 2 threads")
    assert platform_line({**plat, "machine": "armv7l"}, runtime).startswith("armv7l, Raspbian")


@pytest.mark.parametrize("machine, bits, fix", [
    ("armv7l", 32, "sudo apt install python3-numpy python3-opencv, then in a venv made with --system-site-packages: "
                   "pip install tflite-runtime==2.14.0"),
    ("aarch64", 32, "sudo apt install python3-numpy python3-opencv"),  # 32-bit Pi OS on a Pi 4/5's 64-bit kernel
    ("armv8l", 32, "pip install tflite-runtime==2.14.0"),
    ("aarch64", 64, "on aarch64: pip install ai-edge-litert"),
    ("x86_64", 64, "on x86_64: pip install ai-edge-litert"),
    ("armv6l", 32, "armv6l (Pi 1, Zero, Zero W) has no TFLite runtime on PyPI"),
])
def test_without_a_runtime_the_error_names_the_fix_for_the_machine(monkeypatch, machine, bits, fix):
    from device.runtime import interpreter_class

    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)  # None in sys.modules: the import raises ImportError
    with pytest.raises(ModelError) as exc:
        interpreter_class("auto", machine=machine, bits=bits)
    message = str(exc.value)
    assert fix in message and "\n" not in message, message
    assert message.startswith("no TFLite runtime (litert: "), message
    if "ai-edge-litert" in fix:
        assert "apt" not in message and "tflite-runtime==" not in message
