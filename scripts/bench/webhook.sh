#!/usr/bin/env bash
# Webhook benchmarks, from one run of the ignored test `bench_webhook_beside_whatsapp_and_hermes`
# (tests/webhook.rs) built in release: POST → gateway latency for the webhook receiver beside
# WhatsApp's inject → gateway in the same `bridgekeeper run`, and beside Hermes' own webhook
# adapter (from the test venv) on the same machine; accepted deliveries a second from 8 posters,
# ours and Hermes'; the receiver's RSS idle, after the bursts, and under 10,000 forged POSTs and
# 1,000 slow clients. Needs the test venv and node-bridge's modules (scripts/test.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d node-bridge/node_modules ] || (cd node-bridge && npm ci --no-audit --no-fund)
[ -x target/hermes-venv/bin/python ] || { echo "run scripts/test.sh once first (the Hermes venv)"; exit 1; }
cargo nextest run --locked --release --run-ignored only -E 'test(/bench_webhook_/)' --no-capture 2>&1 |
  grep '^webhook bench'
