"""The model contract: how a crop becomes the model's input and how the model's outputs become a Reading.

This module is the single place where pixels are prepared and outputs are decoded. The trainer imports
``prepare_crop`` and the label encoders from here, so a model is trained on exactly the arrays the
device will feed it (tests/trainer/test_contract_parity.py proves it).

Input: one uint8 tensor ``[batch, height, width, 1]`` of raw grey pixels 0..255. Scaling to floats
happens inside the model, so camera pixels go straight in.

Outputs (read by name, never by index), one of two heads:

* ``length`` ``[batch, MAX_DIGITS + 1]`` softmax over 0..8 digits, and ``digits``
  ``[batch, MAX_DIGITS, NUM_CLASSES + 1]`` one softmax per position (class 10 = blank / no digit);
  the Goodfellow et al. 2013 multi-digit head.
* ``ctc`` ``[batch, steps, NUM_CLASSES + 1]`` per-column softmax, class 10 = CTC blank; decoded greedily.

A number has 1..MAX_DIGITS digits; "no number" is length 0 and decodes to ``value = None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

MAX_DIGITS = 8
NUM_CLASSES = 10  # the digits 0-9
BLANK = NUM_CLASSES  # class index of "no digit here" (per-position head) and the CTC blank
INPUT_HEIGHT = 32
INPUT_WIDTH = 128
INPUT_CHANNELS = 1
PREPROCESS_VERSION = "gray-letterbox-stretch-v1"
HEADS = ("length_digits", "ctc")

# The contrast stretch maps these percentiles of the crop to 0 and 255; robust to a few specular pixels.
_STRETCH_LOW_PCT = 2.0
_STRETCH_HIGH_PCT = 98.0
_MIN_CONTRAST = 8.0  # below this the crop is flat (a blank wall); it is not amplified into noise


@dataclass(frozen=True)
class InputSpec:
    """What the model expects; read from the model's own input tensor and checked against the contract."""

    height: int = INPUT_HEIGHT
    width: int = INPUT_WIDTH
    channels: int = INPUT_CHANNELS
    dtype: str = "uint8"
    preprocess: str = PREPROCESS_VERSION

    def as_dict(self) -> dict:
        return {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "dtype": self.dtype,
            "preprocess": self.preprocess,
        }


@dataclass(frozen=True)
class DigitReading:
    digit: str
    confidence: float


@dataclass
class Reading:
    """One decoded number: the stable result type passed from recognizer to smoother to publisher."""

    value: str | None
    confidence: float
    digits: list[DigitReading] = field(default_factory=list)
    box: tuple[int, int, int, int] | None = None  # x, y, w, h in the frame

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "confidence": round(float(self.confidence), 4),
            "box": list(self.box) if self.box is not None else None,
            "digits": [{"digit": d.digit, "confidence": round(float(d.confidence), 4)} for d in self.digits],
        }


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any 2-D, 1-, 3- or 4-channel uint8/uint16/float image to one uint8 grey plane.

    The channel mean is used, not a weighted luma, so RGB and BGR inputs give the same grey image and
    neither the trainer (PIL, RGB) nor the device (OpenCV, BGR) can get the order wrong.
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint16:  # 16 bits per channel (a 16-bit PNG or TIFF): scale to 8 first, then as uint8
        arr = (arr >> 8).astype(np.uint8)
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        elif arr.dtype == np.uint8:  # the common case, in integers: the truncated mean, 10x cheaper
            total = np.add(arr[:, :, 0], arr[:, :, 1], dtype=np.uint16)
            total += arr[:, :, 2]
            return (total // 3).astype(np.uint8)
        else:
            arr = arr.mean(axis=2)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"not an image: array of shape {np.asarray(image).shape}")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        hi = 1.0 if float(np.nanmax(arr)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(arr) * (255.0 / hi), 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _letterbox(gray: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale to fit inside height x width keeping the aspect ratio, centred, padded with the edge median.

    An empty crop (a box of zero width or height, e.g. from a garbled locator output) becomes a blank
    input, which reads as "no number", instead of a division by zero on the frame thread."""
    h, w = gray.shape
    if h == 0 or w == 0:
        return np.zeros((height, width), np.uint8)
    scale = min(height / h, width / w)
    new_h = max(1, min(height, round(h * scale)))
    new_w = max(1, min(width, round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(gray, (new_w, new_h), interpolation=interp)
    if new_h == height and new_w == width:
        return resized
    edge = np.concatenate([resized[0], resized[-1], resized[:, 0], resized[:, -1]])
    fill = int(np.median(edge))
    top = (height - new_h) // 2
    left = (width - new_w) // 2
    return cv2.copyMakeBorder(
        resized, top, height - new_h - top, left, width - new_w - left, cv2.BORDER_CONSTANT, value=fill
    )


def _percentiles_u8(gray: np.ndarray, pcts) -> list[np.float64]:
    """``np.percentile(gray, pcts)`` (linear interpolation) for uint8 images, from a 256-bin histogram.

    Exactly numpy's values at a quarter of the cost: the k-th smallest pixel is the first grey level whose
    cumulative count exceeds k.
    """
    cum = np.bincount(gray.ravel(), minlength=256).cumsum()
    n = int(cum[-1])
    out = []
    for p in pcts:
        pos = (n - 1) * (np.float64(p) / 100)
        k = int(np.floor(pos))
        gamma = pos - k
        a = np.float64(np.searchsorted(cum, k, side="right"))
        b = np.float64(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
        # numpy's own lerp, rounding included, so the stretch LUT is bit-identical
        out.append(b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma)
    return out


def _stretch(gray: np.ndarray) -> np.ndarray:
    """Map the 2nd..98th percentile to 0..255 so dim, hazy and bright crops look alike to the model."""
    lo, hi = _percentiles_u8(gray, (_STRETCH_LOW_PCT, _STRETCH_HIGH_PCT))
    if hi - lo < _MIN_CONTRAST:
        return gray
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return lut[gray]


def prepare_crop(image: np.ndarray, spec: InputSpec = InputSpec()) -> np.ndarray:
    """One crop (any size, grey or colour) -> the model's input ``[height, width, 1]`` uint8."""
    gray = to_gray(image)
    boxed = _letterbox(gray, spec.height, spec.width)
    return _stretch(boxed)[:, :, None]


def prepare_batch(crops: list[np.ndarray], spec: InputSpec = InputSpec()) -> np.ndarray:
    """Several crops -> ``[n, height, width, 1]`` uint8, for one interpreter call per frame."""
    return np.stack([prepare_crop(c, spec) for c in crops])


# ---- labels ---------------------------------------------------------------------------------------


def check_label(label: str) -> str:
    """A label is '' (no number) or 1..MAX_DIGITS decimal digits."""
    if len(label) > MAX_DIGITS or not (label == "" or label.isdigit()) or not label.isascii():
        raise ValueError(f"bad label {label!r}: want 0..{MAX_DIGITS} digits")
    return label


def encode_length_digits(label: str) -> tuple[int, np.ndarray]:
    """Label -> (length, per-position classes padded with BLANK) for the length/digits head."""
    check_label(label)
    positions = np.full(MAX_DIGITS, BLANK, dtype=np.int32)
    positions[: len(label)] = [int(c) for c in label]
    return len(label), positions


def encode_ctc(label: str) -> np.ndarray:
    """Label -> CTC target, padded with -1 to MAX_DIGITS."""
    check_label(label)
    target = np.full(MAX_DIGITS, -1, dtype=np.int32)
    target[: len(label)] = [int(c) for c in label]
    return target


# ---- decoding -------------------------------------------------------------------------------------


def decode_length_digits(length: np.ndarray, digits: np.ndarray) -> Reading:
    """One sample's ``length`` [MAX+1] and ``digits`` [MAX, 11] probabilities -> Reading.

    Confidence is the probability of the whole decoded string under the model: p(length) times the
    probability of each digit shown, so one doubtful digit makes the whole reading doubtful.
    """
    length = np.asarray(length, dtype=np.float64)
    digits = np.asarray(digits, dtype=np.float64)
    n = int(np.argmax(length))
    confidence = float(length[n])
    out = []
    for pos in range(n):
        probs = digits[pos, :NUM_CLASSES]
        d = int(np.argmax(probs))
        p = float(probs[d])
        out.append(DigitReading(str(d), p))
        confidence *= p
    value = "".join(r.digit for r in out) or None
    return Reading(value=value, confidence=confidence, digits=out)


def calibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities as if the logits had been divided by ``temperature`` (per row, last axis).

    p ** (1/T), renormalised, is exactly softmax(logits / T), so a calibration fitted on validation data
    (the manifest's ``calibration.temperature``) applies to the model's uint8 softmax outputs directly;
    the argmax, and so the value read, never changes.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return probs
    scaled = np.power(np.maximum(probs, 0.0), 1.0 / temperature)
    return scaled / np.maximum(scaled.sum(axis=-1, keepdims=True), 1e-12)


def decode_ctc(probs: np.ndarray, temperature: float = 1.0) -> Reading:
    """One sample's ``ctc`` [steps, 11] probabilities -> Reading by greedy (best path) decoding.

    The reading's confidence is the product of each digit's best column probability and of the weakest
    blank column, so a faint extra digit lowers it as well (this is what calibration fits). A digit's own
    confidence is its best column's margin: that probability less the strongest *other digit* in the same
    column. A wheel caught half-way between two digits puts its mass on both, so its digit says "rolling"
    even when the reading as a whole is likely right (docs/MODEL.md, the rolling-wheel convention).
    ``temperature`` is the model's calibration (see ``calibrated``).
    """
    probs = calibrated(probs, temperature)
    best = probs.argmax(axis=1)
    rival = np.sort(probs[:, :NUM_CLASSES], axis=1)
    out: list[DigitReading] = []
    tops: list[float] = []  # each digit's best column probability, for the reading's confidence
    blank_conf = 1.0
    prev = BLANK
    for t, cls in enumerate(best):
        p = float(probs[t, cls])
        if cls == BLANK:
            blank_conf = min(blank_conf, p)
        else:
            margin = p - float(rival[t, -2])  # cls is the column's best digit, so the runner-up is second
            if cls != prev:
                out.append(DigitReading(str(int(cls)), margin))
                tops.append(p)
            else:  # the same digit continues over several columns: keep its best column
                out[-1] = DigitReading(out[-1].digit, max(out[-1].confidence, margin))
                tops[-1] = max(tops[-1], p)
        prev = cls
    out, tops = out[:MAX_DIGITS], tops[:MAX_DIGITS]
    confidence = blank_conf * float(np.prod(tops)) if out else blank_conf
    value = "".join(r.digit for r in out) or None
    return Reading(value=value, confidence=confidence, digits=out)


def decode_outputs(outputs: dict[str, np.ndarray], temperature: float = 1.0) -> list[Reading]:
    """Named batch outputs of either head -> one Reading per sample (``temperature``: CTC calibration)."""
    if "ctc" in outputs:
        return [decode_ctc(p, temperature) for p in outputs["ctc"]]
    if "length" in outputs and "digits" in outputs:
        return [decode_length_digits(ln, dg) for ln, dg in zip(outputs["length"], outputs["digits"])]
    raise ValueError(f"model outputs {sorted(outputs)} fit neither head: want 'ctc' or 'length'+'digits'")


def head_of(output_names) -> str:
    """Which head a model has, from its output names."""
    names = set(output_names)
    if "ctc" in names:
        return "ctc"
    if {"length", "digits"} <= names:
        return "length_digits"
    raise ValueError(f"model outputs {sorted(names)} fit neither head: want 'ctc' or 'length'+'digits'")
