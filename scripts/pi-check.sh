#!/usr/bin/env bash
# Prove digitcam on a Raspberry Pi's own architecture, without a Pi: a Debian bookworm userland for arm64
# (64-bit Pi OS) or armhf (32-bit) run with QEMU's user-mode emulator. Runs there the device test suite,
# `digitcam read --json` on the bundled sample frames, a locator scene and real meter crops, and the daemon
# demo on the bundled sample, then compares every reading with the same commands on this x86 machine.
#
#   scripts/pi-check.sh [arm64|armhf] [--reads-only]      (root; needs network for apt and PyPI once)
#
# arm64 must match x86 exactly (value, box, digits; confidence within one int8 step, 1/256). armhf runs
# another runtime, tflite-runtime 2.14, whose int8 results differ from LiteRT's on any machine (measured on
# x86 with model 2.0: one of 12 real crops reads '6' instead of '0'), so its reference is the same pairing
# on x86 (.venv-tflite: tflite-runtime, numpy<2, OpenCV 4.10): values and digits must match, confidences
# within one step, boxes within 2 px (Debian's OpenCV 4.6 resizes a little differently: measured 1 px).
# Nothing is registered with the kernel: no
# binfmt_misc; each emulated program is started through a wrapper that runs qemu-ARCH-static -L USERLAND,
# and `-0 "$0"` makes the wrapper the programs' sys.executable, so the Pythons they start are emulated too.
#   QEMU_CPU          the emulated CPU (default cortex-a72 = Pi 4 for arm64, cortex-a15 for armhf)
#   PI_CHECK_CACHE    where userlands, the emulator and pip's cache live (default /var/cache/digitcam/pi-check)
#   PI_CHECK_RUN      the name of this run's folder there (site, wrapper, outputs; default "run")
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ARCH=${1:-arm64}
READS_ONLY=0
[ "${2:-}" = "--reads-only" ] && READS_ONLY=1
START=$(date +%s)
# Not under /root: a device test drops to an unprivileged user and runs the emulated python from here.
CACHE=${PI_CHECK_CACHE:-/var/cache/digitcam/pi-check}
say() { echo "pi-check $ARCH: $*"; }
fail() { echo "pi-check $ARCH: FAILED: $*" >&2; exit 1; }

case "$ARCH" in
  arm64) QEMU=qemu-aarch64-static; CPU=${QEMU_CPU:-cortex-a72}; TRIPLET=aarch64-linux-gnu
         EXTRA_DEBS="python3-pil"; BOX_PX=0; CONFIDENCE=0.004; RUNTIME=litert PACKAGE=ai-edge-litert ;;
  armhf) QEMU=qemu-arm-static; CPU=${QEMU_CPU:-cortex-a15}; TRIPLET=arm-linux-gnueabihf
         EXTRA_DEBS="python3-pil,python3-numpy,python3-opencv"; BOX_PX=2; CONFIDENCE=0.004; RUNTIME=tflite-runtime PACKAGE=tflite-runtime ;;
  *) echo "usage: scripts/pi-check.sh [arm64|armhf] [--reads-only]" >&2; exit 2 ;;
esac
# What is compared: the reading itself. The locator's runner-up candidates are not: int8 kernels are not
# bit-exact between x86 and ARM, and an unsure runner-up (confidence < 0.5) can read differently (measured
# on arm64: '013' at 0.46 on x86, '1013' at 0.28 emulated, same box), while every reading matched.
FIELDS="image,error,sensor,frame,value,box,confidence,digits,reading,flags"
[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap --mode=root)"
HOST_PY="$REPO/.venv/bin/python"
[ -x "$HOST_PY" ] || fail "$HOST_PY is missing: run scripts/setup.sh --dev first"
REF_PY=$HOST_PY  # the x86 run to compare with: the same runtime
[ "$ARCH" = armhf ] && REF_PY="$REPO/.venv-tflite/bin/python"
[ -x "$REF_PY" ] || fail "$REF_PY is missing: run scripts/setup.sh --dev first"

# ---- the emulator and the userland, made once ------------------------------------------------------
ROOT="$CACHE/$ARCH/root"
EMU="$CACHE/qemu/usr/bin/$QEMU"
if [ ! -x "$EMU" ] || ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq  # a fresh machine may have no package lists yet
fi
if [ ! -x "$EMU" ]; then
  say "unpacking qemu-user-static (never registered with binfmt_misc)"
  mkdir -p "$CACHE/qemu-deb" && rm -f "$CACHE"/qemu-deb/*.deb
  (cd "$CACHE/qemu-deb" && apt-get download -qq qemu-user-static)
  dpkg-deb -x "$CACHE"/qemu-deb/qemu-user-static_*.deb "$CACHE/qemu"
fi
DEBS="python3,libstdc++6,$EXTRA_DEBS"
if [ "$(cat "$CACHE/$ARCH/debs" 2>/dev/null)" != "$DEBS" ]; then
  command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
  say "making a bookworm $ARCH userland with $DEBS"
  rm -rf "$ROOT" && mkdir -p "$CACHE/$ARCH"
  mmdebstrap --quiet --mode=root --variant=extract --architectures="$ARCH" --include="$DEBS" bookworm "$ROOT"
  # extract runs no maintainer scripts: make the BLAS/LAPACK alternatives links numpy needs
  for lib in "$ROOT/usr/lib/$TRIPLET"/{blas,lapack}/lib*.so.3; do
    [ -e "$lib" ] && ln -sf "$(basename "$(dirname "$lib")")/$(basename "$lib")" "$ROOT/usr/lib/$TRIPLET/$(basename "$lib")"
  done
  echo "$DEBS" > "$CACHE/$ARCH/debs"
fi
# qemu -L serves this file as /proc/cpuinfo: LiteRT reads it, and segfaults on the host's x86 one.
mkdir -p "$ROOT/proc"
cp "$REPO/scripts/pi-cpuinfo-$ARCH" "$ROOT/proc/cpuinfo"
# qemu -L looks a path up in the userland first: armhf's python3-opencv pulls in fonts-dejavu-core, whose
# /usr/share/fonts would hide the host's fonts, and the tests that render text (trainer.render) would draw
# other crops than on x86 (measured: 29 crops in DejaVu alone, 21 read whole, against 30 and 24 on x86 with
# every armhf package version). Without it both read the host's fonts, as the arm64 userland does.
rm -rf "$ROOT/usr/share/fonts"

# ---- the project's wheel and its device dependencies, as a Pi gets them ----------------------------
RUN="$CACHE/$ARCH/${PI_CHECK_RUN:-run}"
SITE="$RUN/site" PIPLOG="$RUN/pip.log"
rm -rf "$RUN" && mkdir -p "$RUN/wheel"
"$HOST_PY" -m pip wheel -q --no-deps --no-build-isolation -w "$RUN/wheel" "$REPO" >/dev/null 2>"$PIPLOG" \
  || fail "building the wheel: $(tail -1 "$PIPLOG")"
WHEEL=$(ls "$RUN"/wheel/digitcam-*.whl)
PIP=("$HOST_PY" -m pip install -q --disable-pip-version-check --no-warn-conflicts --cache-dir "$CACHE/pip"
     --target "$SITE" --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311)
version() { "$HOST_PY" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
TOOLS=(pytest pytest-timeout hypothesis)  # test tools only: any version
if [ "$ARCH" = arm64 ]; then
  # the same versions as the x86 run, so that a difference is the architecture's
  PLATFORMS=(); for v in 2_17 2_27 2_28 2_31 2_34 2_35 2_36; do PLATFORMS+=(--platform "manylinux_${v}_aarch64"); done
  "${PIP[@]}" "${PLATFORMS[@]}" "$WHEEL[device]" "numpy==$(version numpy)" \
    "opencv-python-headless==$(version opencv-python-headless)" "ai-edge-litert==$(version ai-edge-litert)" \
    "paho-mqtt==$(version paho-mqtt)" "${TOOLS[@]}" 2>"$PIPLOG" || fail "pip: $(tail -1 "$PIPLOG")"
else
  # pyproject's armv7l markers: tflite-runtime and paho-mqtt from PyPI, numpy and OpenCV from apt (above).
  # --no-deps: pip cannot see the userland's apt numpy, and evaluates markers for this x86 host.
  "${PIP[@]}" --platform manylinux_2_34_armv7l --platform linux_armv7l --no-deps "$WHEEL" "tflite-runtime==2.14.0" \
    2>"$PIPLOG" || fail "pip: $(tail -1 "$PIPLOG")"
  "${PIP[@]}" --platform any "paho-mqtt==$(version paho-mqtt)" "${TOOLS[@]}" 2>"$PIPLOG" \
    || fail "pip: $(tail -1 "$PIPLOG")"
fi

# ---- the wrapper: an emulated python3 ----------------------------------------------------------------
PY="$RUN/python3"
cat > "$PY" <<EOF
#!/bin/sh
# python3 of the $ARCH userland, emulated; -0 makes this file its sys.executable (emulated children).
export QEMU_CPU=$CPU PYTHONHOME="$ROOT/usr" PYTHONPATH="$SITE:$ROOT/usr/lib/python3/dist-packages\${PYTHONPATH:+:\$PYTHONPATH}"
exec "$EMU" -L "$ROOT" -0 "\$0" "$ROOT/usr/bin/python3.11" "\$@"
EOF
chmod +x "$PY"
machine=$("$PY" -c "import platform; print(platform.machine())")
say "emulated $machine ($CPU), digitcam $(basename "$WHEEL"), runtime $RUNTIME"

# ---- the same commands on x86 and emulated, from outside the repository (the installed wheel) -------
OUT="$RUN/out" && mkdir -p "$OUT"
FRAMES=$(ls "$REPO"/samples/meter/*.jpg | awk 'NR % 8 == 1')
CROPS=$(ls "$REPO"/tests/fixtures/meter_digits/images/*.jpg | sed -n 1,12p)  # sed reads all: no SIGPIPE
run_reads() {  # $1: python, $2: output prefix; a command that fails is recorded, its lines compared as they are
  (cd "$OUT" && "$1" -m device.cli read --json $FRAMES "$REPO/docs/sheets/locate_test.jpg" >"$2.read.jsonl" \
     2>"$2.read.err") || echo "$2 read exited $?: $(tail -1 "$OUT/$2.read.err")" >>"$OUT/failed"
  (cd "$OUT" && "$1" -m device.cli read --json --no-locate $CROPS >"$2.crops.jsonl" 2>"$2.crops.err") \
     || echo "$2 read --no-locate exited $?: $(tail -1 "$OUT/$2.crops.err")" >>"$OUT/failed"
  (cd "$OUT" && STATE_DIRECTORY="$OUT/$2.state" timeout 600 "$1" -m device.cli run \
     --config "$REPO/samples/digitcam.toml" --print >"$2.demo.jsonl" 2>"$2.demo.err") \
     || echo "$2 demo exited $?: $(tail -1 "$OUT/$2.demo.err")" >>"$OUT/failed"
}
run_reads "$REF_PY" x86
DIGITCAM_RUNTIME=$RUNTIME run_reads "$PY" "$ARCH"
grep -q "on $RUNTIME" "$OUT/$ARCH.read.err" || fail "the emulated reader did not use $RUNTIME: $(head -1 "$OUT/$ARCH.read.err")"
# the emulated daemon's own account of what it runs on: this machine and the runtime's pip package
started=$(sed -n '/platform and runtime: /{s/.*platform and runtime: //p;q}' "$OUT/$ARCH.demo.err" || true)
case "$started" in
  "$machine, "*", $PACKAGE "*) ;;
  *) echo "pi-check $ARCH: the emulated daemon did not log '$machine, ..., $PACKAGE ...': '${started:-no line}'" >>"$OUT/failed" ;;
esac
bad=0
for part in read crops demo; do
  python3 "$REPO/scripts/pi_compare.py" "$OUT/x86.$part.jsonl" "$OUT/$ARCH.$part.jsonl" --box-px $BOX_PX \
    --confidence $CONFIDENCE --fields "$FIELDS" --label "$part" | tee "$OUT/$part.compare" || bad=1
done
readings=$(cat "$OUT/$ARCH".{read,crops,demo}.jsonl | grep -c '^{' || true)
if [ -s "$OUT/failed" ]; then
  sed "s/^/pi-check $ARCH: /" "$OUT/failed"
  bad=1
fi

# ---- the device test suite, emulated -----------------------------------------------------------------
tests="device tests not run (--reads-only)"
if [ $READS_ONLY -eq 0 ]; then
  # A test that failed is run once more: a few daemon tests wait 20 s for an emulated Python to start on
  # a loaded machine. Both results are reported; a test that fails twice fails the check.
  pytest_run() {  # $1: log name, then pytest arguments
    local log=$1; shift
    (cd "$REPO" && DIGITCAM_RUNTIME=$RUNTIME timeout 1800 "$PY" -m pytest -q -rs -o cache_dir="$RUN/pytest-cache" \
       "$@" >"$OUT/$log" 2>&1)
  }
  summary() { grep -E "[0-9]+ (passed|failed).* in " "$OUT/$1" | tail -1 | tr -d '=' | sed 's/^ *//'; }
  set +e
  pytest_run tests.log tests/device
  test_rc=$?
  tests="device tests: $(summary tests.log)"
  if [ $test_rc -ne 0 ]; then
    pytest_run tests-rerun.log --last-failed tests/device
    test_rc=$?
    tests="$tests; failed ones again: $(summary tests-rerun.log)"
  fi
  set -e
  [ $test_rc -eq 0 ] || { tail -30 "$OUT/tests-rerun.log" >&2; bad=1; tests="FAILED $tests"; }
fi

took=$(( $(date +%s) - START ))
if [ $bad -ne 0 ]; then
  fail "readings or tests differ from x86 on emulated $machine ($CPU): see above and $OUT; $tests; ${took}s"
fi
say "ok: $readings readings identical to x86 (boxes within $BOX_PX px, confidence within $CONFIDENCE); daemon on $started; $tests; ${took}s"
