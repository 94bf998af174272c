#!/usr/bin/env bash
# Recovery times with the real stack (fake WhatsApp server, Baileys, node-bridge), measured by
# the end-to-end tests that provoke them, N runs each (default 5): a frozen node-bridge found
# hung (SIGSTOP → connection open again), and a frozen server found deaf (the server resumes
# → connection open again). Prints median and maximum. Test-sized thresholds (see the tests).
# With --baseline it then runs the same two situations once with bridgekeeper's own checks off,
# which leaves what the old bridge.js has (Baileys' keepalive, reconnect on close; nothing
# watching a stuck process): about two and a half minutes more.
set -euo pipefail
cd "$(dirname "$0")/../.."
baseline=false
if [ "${1:-}" = --baseline ]; then baseline=true; shift; fi
runs=${1:-5}
[ -d node-bridge/node_modules ] || (cd node-bridge && npm ci --no-audit --no-fund)
measure() {
  local filter=$1 marker=$2
  for _ in $(seq "$runs"); do
    cargo nextest run --locked -E "test(/$filter/)" --no-capture 2>&1 |
      sed -n "s/.*$marker \([0-9.]*\)\(m\?s\).*/\1 \2/p" |
      awk '{ print ($2 == "ms") ? $1 / 1000 : $1 }'
  done | sort -n | awk -v what="$3" '{ v[NR] = $1 } END {
    if (NR == 0) { print what ": no measurement"; exit 1 }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%s: median %.2f s, max %.2f s over %d runs\n", what, m, v[NR], NR }'
}
measure a_frozen_node_bridge_is_found_hung "connection open again after" \
  "hung node-bridge (ping 300 ms, timeout 600 ms) → connection open again"
measure a_deaf_server_is_noticed "deaf server: open again" \
  "deaf server (transport_inactive 2 s) resumes → connection open again"
if $baseline; then
  cargo nextest run --locked --run-ignored only -E 'test(/baseline_/)' --no-capture 2>&1 |
    grep '^baseline '
fi
