"""The default models, installed with the wheel as package ``digitcam_models``."""

from pathlib import Path

MODEL_PATH = Path(__file__).resolve().parent / "digitcam.tflite"
LOCATOR_PATH = Path(__file__).resolve().parent / "locator.tflite"
