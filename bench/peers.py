"""The engines a user would pick instead of digitcam, each wrapped to read one crop and return its digits.

Every reader has a ``name`` and ``read(image) -> str``: the decimal digits it saw, in order, '' for
none. Each engine is built once and then only called per image, as a long-running reader would use it,
so the per-image times measure reading and not start-up.

* ``TesseractDigits``: Debian's ``tesseract-ocr`` (libtesseract 5, LSTM engine, ``eng`` data) through
  its C API with ctypes, the way tesserocr drives it, instead of one ``tesseract`` process per image
  as pytesseract does (which adds the engine's start-up, ~0.34 s of CPU per call here, to every image
  and would flatter digitcam).
* ``RapidOcrDigits``: ``rapidocr-onnxruntime`` (PP-OCRv4 ONNX models inside the wheel), either its
  full pipeline (detect, classify, recognize) or its recognition model alone on the crop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

import cv2
import numpy as np

log = logging.getLogger(__name__)

DIGITS = "0123456789"
# Tesseract's page segmentation modes worth trying on a crop holding one number.
TESSERACT_PSMS = (6, 7, 8, 10, 13)
PSM_NAMES = {6: "block", 7: "line", 8: "word", 10: "char", 13: "raw line"}


def digits_of(text: str | None) -> str:
    """Keep only the decimal digits of an engine's text output."""
    return "".join(c for c in (text or "") if c in DIGITS)


def _gray(image: np.ndarray) -> np.ndarray:
    """RGB or grey uint8 -> grey uint8 (luma; the peers get the same pixels digitcam gets)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _bgr(image: np.ndarray) -> np.ndarray:
    """RGB or grey uint8 -> BGR uint8, the order OpenCV-based engines expect."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def _load_libtesseract() -> ctypes.CDLL:
    """libtesseract with the C API's argument types declared, so pointers are not truncated to ints."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one thread, read by OpenMP when the library loads
    path = ctypes.util.find_library("tesseract") or "libtesseract.so.5"
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise RuntimeError(f"libtesseract not found ({exc}): install tesseract-ocr") from None
    handle = ctypes.c_void_p
    lib.TessBaseAPICreate.restype = handle
    lib.TessBaseAPIInit3.argtypes = [handle, ctypes.c_char_p, ctypes.c_char_p]
    lib.TessBaseAPISetVariable.argtypes = [handle, ctypes.c_char_p, ctypes.c_char_p]
    lib.TessBaseAPISetPageSegMode.argtypes = [handle, ctypes.c_int]
    lib.TessBaseAPISetImage.argtypes = [handle, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.TessBaseAPISetSourceResolution.argtypes = [handle, ctypes.c_int]
    lib.TessBaseAPIGetUTF8Text.argtypes = [handle]
    lib.TessBaseAPIGetUTF8Text.restype = ctypes.c_void_p  # freed with TessDeleteText, so not c_char_p
    lib.TessDeleteText.argtypes = [ctypes.c_void_p]
    lib.TessBaseAPIClear.argtypes = [handle]
    lib.TessBaseAPIEnd.argtypes = [handle]
    lib.TessBaseAPIDelete.argtypes = [handle]
    lib.TessVersion.restype = ctypes.c_char_p
    return lib


class TesseractDigits:
    """Tesseract's LSTM engine, loaded once, reading one crop with a digit whitelist and a page mode.

    The crop goes in as plain grey pixels: scaling it to 32, 48 or 64 px tall and adding a border
    (Tesseract's ImproveQuality advice) was tried on 100 images per set and was no better, mostly worse.
    """

    def __init__(self, psm: int = 7, lang: str = "eng"):
        self._lib = _load_libtesseract()
        self._api = self._lib.TessBaseAPICreate()
        if self._lib.TessBaseAPIInit3(self._api, None, lang.encode()) != 0:
            raise RuntimeError(f"tesseract cannot load language {lang!r}: install tesseract-ocr-{lang}")
        self._lib.TessBaseAPISetVariable(self._api, b"tessedit_char_whitelist", DIGITS.encode())
        self._lib.TessBaseAPISetPageSegMode(self._api, psm)
        self.psm = psm
        self.name = f"tesseract psm {psm} ({PSM_NAMES.get(psm, '?')})"
        self.version = self._lib.TessVersion().decode()

    def read(self, image: np.ndarray) -> str:
        gray = np.ascontiguousarray(_gray(image))
        h, w = gray.shape
        self._lib.TessBaseAPISetImage(self._api, gray.ctypes.data, w, h, 1, w)
        self._lib.TessBaseAPISetSourceResolution(self._api, 300)
        ptr = self._lib.TessBaseAPIGetUTF8Text(self._api)
        text = ctypes.string_at(ptr).decode("utf-8", "replace") if ptr else ""
        if ptr:
            self._lib.TessDeleteText(ptr)
        self._lib.TessBaseAPIClear(self._api)
        return digits_of(text)

    def close(self) -> None:
        if self._api:
            self._lib.TessBaseAPIEnd(self._api)
            self._lib.TessBaseAPIDelete(self._api)
            self._api = None

    def __del__(self):
        self.close()


class RapidOcrDigits:
    """RapidOCR on one thread: the full pipeline (``detect=True``) or its recognition model alone."""

    def __init__(self, detect: bool, threads: int = 1):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise RuntimeError("RapidOCR missing: pip install rapidocr-onnxruntime (the bench extra)") from None
        self._engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=threads)
        self.detect = detect
        self.name = "rapidocr full" if detect else "rapidocr rec-only"

    def read(self, image: np.ndarray) -> str:
        result, _ = self._engine(_bgr(image), use_det=self.detect, use_cls=self.detect, use_rec=True)
        if not result:
            return ""
        # full pipeline: [box, text, score] per line, top to bottom; rec only: [text, score]
        texts = [item[1] if self.detect else item[0] for item in result]
        return digits_of("".join(texts))

    def close(self) -> None:
        pass
