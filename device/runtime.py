"""Which TFLite interpreter to use: ai-edge-litert where it exists, tflite-runtime elsewhere; and the one line
that says what was chosen, on which platform (the daemon logs it at start, ``digitcam bench --json`` reports it).

tflite-runtime 2.14 is the only runtime with 32-bit armv7 wheels (older Pis), and it needs numpy<2:
with numpy 2 its Interpreter fails when it is constructed, not at import. LiteRT is ~6x faster (XNNPACK).
"""

from __future__ import annotations

import logging
import os
import platform
import struct
from importlib import metadata
from pathlib import Path

from device.errors import ModelError

log = logging.getLogger(__name__)

PACKAGES = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}  # runtime -> its pip package
ARMHF_FIX = ("sudo apt install python3-numpy python3-opencv, then in a venv made with --system-site-packages: "
             "pip install tflite-runtime==2.14.0 (PyPI has no numpy or OpenCV wheels for 32-bit ARM)")


def pointer_bits() -> int:
    return struct.calcsize("P") * 8


def is_32bit_arm(machine: str, bits: int) -> bool:
    """A 32-bit ARM userland: ``armv7l`` itself, or 32-bit Raspberry Pi OS on a Pi 4/5, whose default 64-bit
    kernel makes ``uname -m`` say ``aarch64`` (or ``armv8l`` under ``linux32``) to a 32-bit Python."""
    return machine.startswith("arm") or (machine == "aarch64" and bits == 32)


def install_fix(machine: str | None = None, bits: int | None = None) -> str:
    """How to get a TFLite runtime on ``machine`` (default: this one), in one line."""
    machine = machine or platform.machine()
    bits = bits or pointer_bits()
    if machine.startswith("armv6"):
        return f"{machine} (Pi 1, Zero, Zero W) has no TFLite runtime on PyPI: digitcam needs an armv7 or 64-bit Pi"
    if is_32bit_arm(machine, bits):
        return f"on 32-bit ARM ({machine}, {bits}-bit Python): {ARMHF_FIX}"
    return f"on {machine}: pip install ai-edge-litert (or pip install 'digitcam[device]')"


def interpreter_class(prefer: str = "auto", machine: str | None = None, bits: int | None = None):
    """Return (Interpreter class, runtime name). ``prefer`` is 'auto', 'litert' or 'tflite-runtime'; ``machine``
    and ``bits`` (default: this machine's) choose the fix the error names when no runtime can be imported."""
    errors = []
    order = {"auto": ("litert", "tflite-runtime"), "litert": ("litert",), "tflite-runtime": ("tflite-runtime",)}
    if prefer not in order:
        raise ModelError(f"unknown runtime {prefer!r}: want auto, litert or tflite-runtime")
    for name in order[prefer]:
        try:
            if name == "litert":
                from ai_edge_litert.interpreter import Interpreter
            else:
                from tflite_runtime.interpreter import Interpreter
            return Interpreter, name
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise ModelError(f"no TFLite runtime ({'; '.join(errors)}): {install_fix(machine, bits)}")


def build_interpreter(model_path, threads: int = 1, prefer: str = "auto"):
    """Build the interpreter once; a corrupt file becomes a one-line ModelError."""
    cls, name = interpreter_class(prefer)
    try:
        interpreter = cls(model_path=str(model_path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelError(f"model {model_path} cannot be loaded by {name}: {first}") from None
    log.debug("loaded %s with %s, %d thread(s)", model_path, name, threads)
    return interpreter, name


def delegate(interpreter) -> str:
    """'XNNPACK' when a delegate took over part of the graph (the only one the runtimes apply by themselves),
    else 'built-in kernels' (tflite-runtime 2.14 keeps int8 models on its own kernels). The runtimes apply it
    at the first invoke: ask after a read."""
    try:
        ops = interpreter._get_ops_details()
    except (AttributeError, RuntimeError, ValueError):
        return "unknown"
    return "XNNPACK" if any(op.get("op_name") == "DELEGATE" for op in ops) else "built-in kernels"


def runtime_info(interpreter, name: str, threads: int) -> dict:
    """The runtime as a Pi owner should report it: package, version, delegate, threads."""
    package = PACKAGES.get(name, name)
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = "?"
    return {"name": package, "version": version, "delegate": delegate(interpreter), "threads": threads}


def os_name(path: Path = Path("/etc/os-release")) -> str:
    try:
        fields = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    except OSError:
        return platform.system()
    return fields.get("PRETTY_NAME", platform.system()).strip().strip('"')


def first_field(path: str, key: str) -> str | None:
    """The value of the first ``key : value`` line of ``path`` (/proc/cpuinfo), None if there is none."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def platform_info() -> dict:
    """This machine: its architecture (and the Python's bitness, which can differ on 32-bit Pi OS), OS, Python,
    CPU and board (a Pi names itself in /proc/cpuinfo's ``Model``)."""
    return {"machine": platform.machine(), "python_bits": pointer_bits(), "os": os_name(),
            "python": platform.python_version(),
            "cpu": first_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
            "board": first_field("/proc/cpuinfo", "Model"), "cores": os.cpu_count()}


def platform_line(plat: dict, runtime: dict) -> str:
    """One line: 'aarch64, Debian GNU/Linux 12 (bookworm), Python 3.11.2, ai-edge-litert 2.3.0, XNNPACK, 1 thread'."""
    machine = plat["machine"] + (" (32-bit Python)" if plat["python_bits"] == 32 and "64" in plat["machine"] else "")
    threads = f"{runtime['threads']} thread" + ("s" if runtime["threads"] != 1 else "")
    return (f"{machine}, {plat['os']}, Python {plat['python']}, {runtime['name']} {runtime['version']}, "
            f"{runtime['delegate']}, {threads}")
