#!/usr/bin/env bash
# The test command: the whole suite with ai-edge-litert, then the runtime test again on tflite-runtime + numpy<2.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q "$@"
if [ -x .venv-tflite/bin/python ] && [ $# -eq 0 ]; then
  DIGITCAM_RUNTIME=tflite-runtime .venv-tflite/bin/python -m pytest -q -p no:cacheprovider tests/device/test_runtime.py
fi
