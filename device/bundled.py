"""Where the bundled models are: the one place ``cli``, ``service``, ``benchmark`` and the trainer look.

A wheel installs them as the package ``digitcam_models``; a clone has them in ``models/``. Nothing here
loads a model, so importing this module is free (it must not import ``device.cli``).
"""

from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
REPO_MODEL = MODELS_DIR / "digitcam.tflite"
REPO_LOCATOR = MODELS_DIR / "locator.tflite"


def default_model() -> Path:
    """--model, else $DIGITCAM_MODEL, else the bundled default model."""
    env = os.environ.get("DIGITCAM_MODEL")
    if env:
        return Path(env)
    try:
        from digitcam_models import MODEL_PATH  # the default model as installed from the wheel

        return Path(MODEL_PATH)
    except ImportError:
        return REPO_MODEL


def bundled_locator() -> Path:
    """The locator installed with the wheel (package ``digitcam_models``), else the repository's models/."""
    try:
        from digitcam_models import LOCATOR_PATH

        return Path(LOCATOR_PATH)
    except ImportError:
        return REPO_LOCATOR
