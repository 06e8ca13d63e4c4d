"""One TFLite model behind its signature, the base of the recognizer and the locator: the interpreter on
the chosen runtime, the signature runner (inputs and outputs by name, never by tensor index, so a
re-exported model with reordered tensors still works), the one uint8 image input, dequantized outputs.
Each model verifies its own manifest first and words its own errors.
"""

from __future__ import annotations

import numpy as np

from device.errors import ModelError
from device.runtime import build_interpreter, runtime_info


def dequantize(value: np.ndarray, details: dict) -> np.ndarray:
    """An int8/uint8 output tensor -> float32 probabilities; float outputs pass through."""
    if value.dtype not in (np.int8, np.uint8):
        return value.astype(np.float32, copy=False)
    params = details.get("quantization_parameters") or {}
    scales = params.get("scales")
    zeros = params.get("zero_points")
    if scales is None or len(scales) == 0:
        scale, zero = details.get("quantization", (1.0, 0))
    else:
        scale, zero = float(scales[0]), int(zeros[0])
    return (value.astype(np.float32) - zero) * scale


def uint8_image_shape(details: dict, channels: int = 1) -> list | None:
    """The input's shape if it is uint8 ``[batch, height, width, channels]``, else None."""
    shape = list(details["shape"])
    ok = np.dtype(details["dtype"]) == np.uint8 and len(shape) == 4 and shape[3] == channels
    return shape if ok else None


class TFLiteModel:
    """The interpreter part shared by ``Recognizer`` and ``Locator``; call ``_open`` in ``__init__``."""

    def _open(self, model_path, threads: int, runtime: str, no_signature: str, prefer: str | None = None) -> dict:
        """Build the interpreter and its signature runner (``prefer`` if the model has it, else the first);
        returns the input details by name. A model without a signature is a ModelError saying ``no_signature``."""
        self.interpreter, self.runtime = build_interpreter(model_path, threads=threads, prefer=runtime)
        self.threads = threads
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise ModelError(no_signature)
        key = prefer if prefer in signatures else next(iter(signatures))
        self._runner = self.interpreter.get_signature_runner(key)
        self._output_details = self._runner.get_output_details()
        return self._runner.get_input_details()

    def runtime_info(self) -> dict:
        """The runtime this model runs on: package, version, delegate, threads (``device.runtime.runtime_info``)."""
        return runtime_info(self.interpreter, self.runtime, self.threads)

    def _run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """One invoke on the uint8 input -> every named output, dequantized to float32."""
        raw = self._runner(**{self._input_name: np.ascontiguousarray(image, dtype=np.uint8)})
        return {name: dequantize(value, self._output_details[name]) for name, value in raw.items()}
