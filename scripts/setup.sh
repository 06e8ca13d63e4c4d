#!/usr/bin/env bash
# Set up digitcam on a fresh Debian/Ubuntu machine: system packages, a venv in .venv, the package.
#   scripts/setup.sh          the daemon and one-shot reader (device extra only)
#   scripts/setup.sh --dev    also the trainer and test tools, mosquitto, fonts, tesseract, ansible,
#                             and .venv-tflite (tflite-runtime + numpy<2) for the fallback-runtime test
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

if command -v apt-get >/dev/null; then
  "$PY" -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  if [ $DEV -eq 1 ]; then
    apt_install mosquitto mosquitto-clients fonts-dejavu-core fonts-liberation fonts-freefont-ttf \
      fonts-urw-base35 fonts-dseg fonts-noto-core tesseract-ocr ansible ansible-lint systemd \
      fonts-ocr-a fonts-ocr-b fonts-opendin fonts-b612 fonts-bebas-neue fonts-roboto-unhinted fonts-open-sans \
      fonts-cantarell fonts-league-spartan fonts-jura fonts-3270 fonts-comic-neue fonts-hack fonts-inconsolata \
      fonts-lato fonts-dosis fonts-courier-prime fonts-adf-mekanus chromium chromium-driver
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
if [ $DEV -eq 1 ]; then
  .venv/bin/pip install -q -e '.[device,train,dev,bench]'
  .venv/bin/pip install -q --no-deps rapidocr-onnxruntime  # bench peer; --no-deps keeps opencv headless
  if [ ! -x .venv-tflite/bin/python ]; then
    "$PY" -m venv .venv-tflite
  fi
  .venv-tflite/bin/pip install -q 'numpy<2' 'tflite-runtime==2.14.*' 'opencv-python-headless<4.11' 'paho-mqtt>=2' pytest pytest-timeout
  .venv-tflite/bin/pip install -q --no-deps -e .
else
  .venv/bin/pip install -q -e '.[device]'
fi
echo "setup: done ($(.venv/bin/python --version))"
