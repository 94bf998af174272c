#!/usr/bin/env bash
# Builds bridgekeeper (release) and runs the daemon with examples/demo.yaml: gateway-link events
# appear on stdout, requests are read from stdin (Ctrl-D stops it). bridge.log and status.json
# go to state/demo/; `target/release/bridgekeeper status --config examples/demo.yaml` shows them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins
exec target/release/bridgekeeper run --config examples/demo.yaml
