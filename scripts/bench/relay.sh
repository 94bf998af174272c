#!/usr/bin/env bash
# The relay benchmark: 20,000 delivered messages buffered while no gateway is connected
# (bridgekeeper's RSS then, beside an idle one), then drained by a WebSocket client that acks
# each one. Prints one line of figures. Uses the test build (see tests/relay.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo nextest run --locked --run-ignored only -E 'test(/bench_relay_/)' --no-capture 2>&1 |
  grep '^relay bench'
