"""Which TFLite interpreter to use: ai-edge-litert where it exists, tflite-runtime elsewhere.

tflite-runtime 2.14 is the only runtime with 32-bit armv7 wheels (older Pis), and it needs numpy<2:
with numpy 2 its Interpreter fails when it is constructed, not at import. LiteRT is ~6x faster (XNNPACK).
"""

from __future__ import annotations

import logging

from device.errors import ModelError

log = logging.getLogger(__name__)


def interpreter_class(prefer: str = "auto"):
    """Return (Interpreter class, runtime name). ``prefer`` is 'auto', 'litert' or 'tflite-runtime'."""
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
    raise ModelError("no TFLite runtime: install ai-edge-litert (or tflite-runtime with numpy<2); " + "; ".join(errors))


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
