#!/usr/bin/env bash
# Telegram benchmarks. 1) The test-build run (tests/telegram.rs, ignored test): inject →
# gateway latency for Telegram and WhatsApp side by side in one `bridgekeeper run`, and a burst
# of 1,000 DMs queued at the fake while the connector is frozen, then drained. 2) The release
# binary's connector alone against the fake: its RSS idle and at its peak over the same burst.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d node-bridge/node_modules ] || (cd node-bridge && npm ci --no-audit --no-fund)
cargo nextest run --locked --run-ignored only -E 'test(/bench_telegram_/)' --no-capture 2>&1 |
  grep '^telegram bench'

cargo build --locked --release --quiet
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
node-bridge/node_modules/.bin/crabline --json serve telegram --ready-file "$dir/ready.json" \
  --recorder "$dir/rec.jsonl" >/dev/null 2>&1 &
for _ in $(seq 100); do [ -s "$dir/ready.json" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; d=json.load(open('$dir/ready.json')); print(eval(sys.argv[1]))" "$1"; }
root=$(field "d['endpoints']['apiRoot']"); inbound=$(field "d['endpoints']['adminInboundUrl']")
token=$(field "d['botToken']"); admin=$(field "d['adminToken']")
mkfifo "$dir/in"
TELEGRAM_BOT_TOKEN=$token TELEGRAM_API_ROOT=$root target/release/bridgekeeper connector telegram \
  <"$dir/in" >"$dir/out.jsonl" 2>/dev/null &
pid=$!
exec 3>"$dir/in"
sleep 2
rss() { awk "/^$1:/ { printf \"%.1f\", \$2 / 1024 }" "/proc/$pid/status"; }
idle=$(rss VmRSS)
kill -STOP "$pid"
for i in $(seq 1000); do
  curl -s -o /dev/null -X POST -H "X-Crabline-Admin-Token: $admin" \
    -H 'content-type: application/json' -d "{\"chatId\":\"100001\",\"text\":\"b$i\",\"fromId\":100001}" "$inbound"
done
kill -CONT "$pid"
for _ in $(seq 300); do
  [ "$(grep -c '"type":"inbound"' "$dir/out.jsonl")" -ge 1000 ] && break
  sleep 0.1
done
echo "telegram bench (release): connector RSS idle $idle MiB, peak over a burst of $(grep -c '"type":"inbound"' "$dir/out.jsonl") DMs $(rss VmHWM) MiB"
exec 3>&-
