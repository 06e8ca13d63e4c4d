#!/usr/bin/env bash
# The README's first command: set up the daemon (no TensorFlow needed) and run it on the bundled sample.
# Readings are printed as JSON lines; they are also published to MQTT at $DIGITCAM_MQTT_HOST:$DIGITCAM_MQTT_PORT
# (default localhost:1883) when a broker is there, and spooled for later delivery when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/digitcam run --config samples/digitcam.toml --print "$@"
