#!/usr/bin/env bash
# The README's first command: set up the daemon (no TensorFlow needed) and run it on the bundled sample.
# Readings are printed as JSON lines; they are also published to the MQTT broker on localhost:1883 when one is
# running (see samples/digitcam.toml), and kept in the spool for later delivery when none is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/digitcam run --config samples/digitcam.toml --print "$@"
