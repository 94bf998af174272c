#!/usr/bin/env bash
# A hostile stranger against every receiver, from one run of the trickle tests built in release
# (tests/webhook.rs, tests/wecom.rs, tests/listeners.rs): 8 connections each send a request head,
# then the body one byte per TCP segment (a write every millisecond), reopening when cut, for
# 20 s; the listener's process RSS before and after, and the ratio. Run side by side in one
# invocation, so the four rows share the machine's load. Needs the test venv and node-bridge's
# modules (scripts/test.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d node-bridge/node_modules ] || (cd node-bridge && npm ci --no-audit --no-fund)
[ -x target/hermes-venv/bin/python ] || { echo "run scripts/test.sh once first (the Hermes venv)"; exit 1; }
cargo nextest run --locked --release -E 'test(/trickl/)' --no-capture 2>&1 |
  grep -E '^[A-Za-z_ -]+: RSS idle'
