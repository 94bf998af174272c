#!/usr/bin/env bash
# Runs every test: formatting and lints, the Rust unit, protocol and integration tests, and the
# node-bridge tests when that package exists. Installs what it needs (crates via cargo, Node
# packages via `npm ci`, the real Hermes relay client via pip into target/hermes-venv, reused
# while tests/hermes-requirements.txt is unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings

if [ -f node-bridge/package-lock.json ]; then
  (cd node-bridge && npm ci --no-audit --no-fund && npm test)
fi

venv=target/hermes-venv
if ! cmp -s tests/hermes-requirements.txt "$venv/installed-requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r tests/hermes-requirements.txt
  cp tests/hermes-requirements.txt "$venv/installed-requirements.txt"
fi

# The install test installs the release binary (stripped, under 20 MB) from a clone.
cargo build --release --locked --quiet --bin bridgekeeper

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast
fi
