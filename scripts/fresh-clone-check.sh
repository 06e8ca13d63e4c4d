#!/usr/bin/env bash
# What a new user gets: `git clone` this repository's HEAD into an empty temp dir (no ../shared beside it,
# no DIGITCAM_DATA, an empty data cache), then exactly the README's two quick-start commands:
#   scripts/demo.sh                             (must print readings)
#   scripts/setup.sh --dev && scripts/test.sh   (must exit 0; skipped tests are listed with their reasons)
# Prints the time of each, the test counts and the skip reasons; exits non-zero if either fails.
#   scripts/fresh-clone-check.sh [--keep]      (--keep leaves the clone for a look)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/digitcam-fresh.XXXXXX)
chmod 755 "$WORK"  # tests that drop root to an unprivileged user must read the clone
[ "${1:-}" = "--keep" ] || trap 'rm -rf "$WORK"' EXIT
git clone --quiet "$REPO" "$WORK/digitcam"
cd "$WORK/digitcam"
[ ! -e ../shared ] || { echo "fresh-clone-check: $WORK/shared exists" >&2; exit 1; }
unset DIGITCAM_DATA DIGITCAM_MODEL
export DIGITCAM_CACHE="$WORK/cache" STATE_DIRECTORY="$WORK/state"

start=$(date +%s)
# The demo replays the bundled sample (72 frames at 10 frames/s) and stops at its end; the timeout is a guard.
set +e
timeout 600 scripts/demo.sh >"$WORK/demo.out" 2>"$WORK/demo.err"
demo_rc=$?
set -e
demo_s=$(( $(date +%s) - start ))
readings=$(grep -c '^{' "$WORK/demo.out" || true)
echo "demo: exit $demo_rc, $readings readings in ${demo_s}s (first: $(grep -m1 '^{' "$WORK/demo.out" || echo none))"

start=$(date +%s)
set +e
# -rs only adds the skip reasons to pytest's summary; the command is the README's.
PYTEST_ADDOPTS="-rs" bash -c 'scripts/setup.sh --dev && scripts/test.sh' >"$WORK/test.out" 2>&1
test_rc=$?
set -e
test_s=$(( $(date +%s) - start ))
grep -E '^SKIPPED' "$WORK/test.out" || true
echo "tests: exit $test_rc in ${test_s}s; $(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$WORK/test.out" | tr '\n' ';')"
if [ $demo_rc -ne 0 ] || [ "$readings" -eq 0 ] || [ $test_rc -ne 0 ]; then
  tail -40 "$WORK/test.out" >&2
  echo "fresh-clone-check: FAILED (demo exit $demo_rc with $readings readings, tests exit $test_rc)" >&2
  exit 1
fi
echo "fresh-clone-check: ok (demo ${demo_s}s, $readings readings; tests ${test_s}s)"
