"""The recognizer: one int8 TFLite model (``device/tflite_model.py``), built once, that turns crops into Readings."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from device.contract import (
    INPUT_CHANNELS,
    InputSpec,
    Reading,
    decode_outputs,
    head_of,
    prepare_batch,
)
from device.errors import ModelError
from device.manifest import Manifest, load_manifest
from device.tflite_model import TFLiteModel, uint8_image_shape

log = logging.getLogger(__name__)


def vote(readings: list[Reading], weights=None) -> int:
    """Readings of one number through several crops -> the index of the one to report: the most confident
    reading of the value whose readings sum to the most (weighted) confidence (so ``min_confidence`` keeps
    its meaning). ``weights``: one per reading (default 1 each)."""
    totals: dict = {}
    for reading, weight in zip(readings, weights or [1.0] * len(readings)):
        totals[reading.value] = totals.get(reading.value, 0.0) + weight * float(reading.confidence)
    winner = max(totals, key=totals.get)
    return max((i for i, r in enumerate(readings) if r.value == winner), key=lambda i: readings[i].confidence)


def calibration_temperature(manifest: dict, model_path: Path) -> float:
    """The manifest's ``calibration.temperature`` (1.0 when the model was not calibrated)."""
    value = (manifest.get("calibration") or {}).get("temperature", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.05 <= value <= 20.0:
        raise ModelError(f"model manifest {model_path.with_suffix('.json')}: calibration.temperature "
                         f"{value!r} is not a number in 0.05..20")
    return float(value)


class Recognizer(TFLiteModel):
    """Reads cropped numbers with one interpreter; ``read`` takes any crops, ``infer`` prepared tensors."""

    def __init__(self, model_path: str | Path, threads: int = 1, runtime: str = "auto"):
        self.model_path = Path(model_path)
        self.manifest: Manifest = load_manifest(self.model_path)
        inputs = self._open(self.model_path, threads, runtime, prefer="serving_default",
                            no_signature=f"model {self.model_path} has no signature; export it with digitcam export")
        if len(inputs) != 1:
            raise ModelError(f"model {self.model_path} has {len(inputs)} inputs, the contract wants 1")
        (self._input_name, details), = inputs.items()
        self.spec = self._check_input(details)
        try:
            self.head = head_of(self._output_details)
        except ValueError as exc:
            raise ModelError(f"model {self.model_path}: {exc}") from None
        if self.head != self.manifest.head:
            raise ModelError(f"model {self.model_path} has a {self.head} head, its manifest says {self.manifest.head}")
        self.temperature = calibration_temperature(self.manifest.data, self.model_path)
        log.info("recognizer %s (%s head, %dx%d) on %s", self.manifest.short, self.head, self.spec.width,
                 self.spec.height, self.runtime)

    def _check_input(self, details: dict) -> InputSpec:
        shape = uint8_image_shape(details, INPUT_CHANNELS)
        if shape is None or min(shape[1:3]) < 8:
            raise ModelError(f"model {self.model_path} input is {np.dtype(details['dtype']).name}"
                             f"{list(details['shape'])}, the contract wants uint8[batch, height, width, 1]")
        return InputSpec(height=int(shape[1]), width=int(shape[2]))

    def probabilities(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Prepared uint8 ``[n, h, w, 1]`` -> the model's named outputs as float probabilities, uncalibrated."""
        return self._run(batch)

    def infer(self, batch: np.ndarray) -> list[Reading]:
        """Prepared uint8 ``[n, h, w, 1]`` -> Readings; all crops of a frame go through one invoke."""
        return decode_outputs(self.probabilities(batch), self.temperature)

    def read(self, crops: list[np.ndarray]) -> tuple[list[Reading], float]:
        """Crops of any size -> (Readings, milliseconds spent in the interpreter)."""
        if not crops:
            return [], 0.0
        batch = prepare_batch(crops, self.spec)
        start = time.perf_counter()
        readings = self.infer(batch)
        return readings, (time.perf_counter() - start) * 1000.0

    def read_views(self, groups: list[list[np.ndarray]], weights=None) -> tuple[list[Reading], list[int], float]:
        """Groups of crops, each a few views of one number, in one invoke -> (one voted Reading per group,
        the index of the view in its group that the Reading came from, ms). ``weights``: per group, the
        views' vote weights (``vote``; default 1 each)."""
        flat = [view for group in groups for view in group]
        readings, ms = self.read(flat)
        out, picks, at = [], [], 0
        for i, group in enumerate(groups):
            pick = vote(readings[at : at + len(group)], None if weights is None else weights[i])
            out.append(readings[at + pick])
            picks.append(pick)
            at += len(group)
        return out, picks, ms

    def describe(self) -> dict:
        """What the model is, for state messages and logs."""
        return {"name": self.manifest.name, "version": self.manifest.version, "sha256": self.manifest.sha256[:12]}
