#!/usr/bin/env bash
# Set up digitcam on a fresh Debian/Ubuntu machine: system packages, a venv in .venv, the package.
#   scripts/setup.sh          the daemon and one-shot reader (device extra only)
#   scripts/setup.sh --dev    also the trainer and test tools, mosquitto, fonts, tesseract, ansible,
#                             and .venv-tflite (tflite-runtime + numpy<2) for the fallback-runtime test
# On 32-bit armv7 (armv7l) PyPI has no numpy or OpenCV wheels: they come from apt (python3-numpy,
# python3-opencv) into a venv with --system-site-packages, and tflite-runtime 2.14 is the runtime.
# 32-bit Raspberry Pi OS on a Pi 4/5 boots a 64-bit kernel: `uname -m` says aarch64 to its armhf userland,
# and pip would resolve the wheel's markers for aarch64 (ai-edge-litert, opencv-python-headless: no 32-bit
# wheels). There the package goes in with --no-deps and scripts/device_requirements.py armv7l beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
PY=${PYTHON:-python3}
MACHINE=$(uname -m)
KERNEL=$MACHINE
if [ "$MACHINE" = aarch64 ] && [ "$(dpkg --print-architecture 2>/dev/null || true)" = armhf ]; then
  MACHINE=armv7l  # what the userland is
fi
VENV_OPTS=()
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

if [ "$MACHINE" = armv7l ]; then
  if [ $DEV -eq 1 ]; then
    echo "setup: --dev needs TensorFlow, which has no 32-bit armv7 (armv7l) wheels: develop on x86-64 or aarch64" >&2
    exit 2
  fi
  VENV_OPTS=(--system-site-packages)  # numpy and OpenCV from apt
fi

if command -v apt-get >/dev/null; then
  "$PY" -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  if [ "$MACHINE" = armv7l ]; then apt_install python3-numpy python3-opencv; fi
  if [ $DEV -eq 1 ]; then
    apt_install mosquitto mosquitto-clients fonts-dejavu-core fonts-liberation fonts-freefont-ttf \
      fonts-urw-base35 fonts-dseg fonts-noto-core tesseract-ocr ansible ansible-lint systemd \
      fonts-ocr-a fonts-ocr-b fonts-opendin fonts-b612 fonts-bebas-neue fonts-roboto-unhinted fonts-open-sans \
      fonts-cantarell fonts-league-spartan fonts-jura fonts-3270 fonts-comic-neue fonts-hack fonts-inconsolata \
      fonts-lato fonts-dosis fonts-courier-prime fonts-adf-mekanus chromium chromium-driver
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv "${VENV_OPTS[@]}" .venv
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
elif [ "$MACHINE" != "$KERNEL" ]; then
  echo "setup: 32-bit userland on a 64-bit $KERNEL kernel: installing the armv7l requirements"
  .venv/bin/pip install -q --no-deps -e .
  mapfile -t REQUIREMENTS < <(.venv/bin/python scripts/device_requirements.py armv7l)
  .venv/bin/pip install -q "${REQUIREMENTS[@]}"
else
  .venv/bin/pip install -q -e '.[device]'
fi
echo "setup: done ($(.venv/bin/python --version))"
