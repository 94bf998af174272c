#!/usr/bin/env bash
# The Hermes plugin beside Hermes' own Telegram adapter (tests/hermes_plugin.rs, ignored test):
# two real gateways in one run, each answering the same Telegram DMs (crabline) with the fake
# model; latency from inject to the answer at the fake, and each gateway's process-tree RSS.
# BENCH_PLUGIN_PAUSE_MS=0 sends the rounds back to back (default 5000 between rounds).
# Needs the test venv (bash scripts/test.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d node-bridge/node_modules ] || (cd node-bridge && npm ci --no-audit --no-fund)
cargo nextest run --locked --run-ignored only -E 'test(/bench_plugin_/)' --no-capture 2>&1 |
  grep '^plugin bench'
