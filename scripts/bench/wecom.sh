#!/usr/bin/env bash
# WeCom benchmarks, from one run of the ignored test `bench_wecom_beside_whatsapp`
# (tests/wecom.rs) built in release: inject → gateway latency for the AI Bot (a callback pushed
# on the fake's WebSocket) and a self-built app (an encrypted callback POSTed by the fake)
# beside WhatsApp's in the same `bridgekeeper run`, and each WeCom connector's RSS idle and at
# its peak over a burst of 1,000 messages. Needs the test venv (the fake runs on its Python) and
# node-bridge's modules; scripts/test.sh makes both.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d node-bridge/node_modules ] || (cd node-bridge && npm ci --no-audit --no-fund)
[ -x target/hermes-venv/bin/python ] || { echo "run scripts/test.sh once first (the Hermes venv)"; exit 1; }
cargo nextest run --locked --release --run-ignored only -E 'test(/bench_wecom_/)' --no-capture 2>&1 |
  grep '^wecom bench'
