#!/usr/bin/env bash
# Runs every test: formatting and lints, the Rust unit, protocol and integration tests, and the
# node-bridge tests when that package exists. Installs what it needs (crates via cargo, Node
# packages via `npm ci`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings

if [ -f node-bridge/package-lock.json ]; then
  (cd node-bridge && npm ci --no-audit --no-fund && npm test)
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast
fi
