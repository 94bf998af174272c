#!/usr/bin/env bash
# Runs every benchmark side by side with its baseline and prints one table; with --write it also
# replaces the table in docs/benchmarks.md. Release build; needs node-bridge's packages for the
# real-path rows (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --bins
[ -d node-bridge/node_modules ] || (cd node-bridge && npm ci --no-audit --no-fund)
table=$(mktemp)
target/release/bench-harness "$table"
if [ "${1:-}" = "--write" ]; then
  python3 - "$table" docs/benchmarks.md <<'PY'
import sys, re
table = open(sys.argv[1]).read()
doc = open(sys.argv[2]).read()
start, end = "<!-- table:start -->", "<!-- table:end -->"
doc = re.sub(re.escape(start) + ".*?" + re.escape(end), start + "\n" + table + end, doc, flags=re.S)
open(sys.argv[2], "w").write(doc)
PY
  echo "docs/benchmarks.md updated" >&2
fi
rm -f "$table"
