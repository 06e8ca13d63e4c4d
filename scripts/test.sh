#!/usr/bin/env bash
# The test command: the whole suite with ai-edge-litert, then the runtime test again on tflite-runtime + numpy<2
# (the pairing 32-bit Raspberry Pi OS needs), in the .venv-tflite that `scripts/setup.sh --dev` makes.
# Extra arguments go to the first pytest run only (and skip the second).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q "$@"
if [ $# -eq 0 ]; then
  if [ ! -x .venv-tflite/bin/python ]; then
    echo "scripts/test.sh: .venv-tflite is missing: run scripts/setup.sh --dev" >&2
    exit 1
  fi
  DIGITCAM_RUNTIME=tflite-runtime .venv-tflite/bin/python -m pytest -q -p no:cacheprovider --noconftest \
    tests/device/test_runtime.py
fi
