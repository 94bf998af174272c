#!/usr/bin/env bash
# The relay benchmarks (tests/relay.rs, test build): 20,000 delivered messages buffered while no
# gateway is connected (bridgekeeper's RSS then, beside an idle one), drained by a WebSocket
# client that acks each one; and the latency fake server → gateway through the stdio link, the
# relay and the drop-in API polled once a second, in one run (about a minute).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo nextest run --locked --run-ignored only -E 'test(/bench_relay_|bench_latency_/)' --no-capture 2>&1 |
  grep -E '^(relay|latency) bench'
