#!/usr/bin/env bash
# Weixin benchmarks. 1) The test-build run (tests/weixin.rs, ignored test): inject → gateway
# latency for Weixin and WhatsApp side by side in one `bridgekeeper run`, and a burst of 1,000
# DMs queued at the fake iLink server while the connector is frozen, then drained. 2) The
# release binary's connector alone against the fake: its RSS idle and at its peak over the same
# burst. Needs the test venv (scripts/test.sh makes it): the fake runs on its Python.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d node-bridge/node_modules ] || (cd node-bridge && npm ci --no-audit --no-fund)
cargo nextest run --locked --run-ignored only -E 'test(/bench_weixin_/)' --no-capture 2>&1 |
  grep '^weixin bench'

cargo build --locked --release --quiet
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
target/hermes-venv/bin/python tests/fakes/ilink.py --ready-file "$dir/ready.json" \
  --recorder "$dir/rec.jsonl" --longpoll-ms 2000 >/dev/null 2>&1 &
for _ in $(seq 100); do [ -s "$dir/ready.json" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; print(json.load(open('$dir/ready.json'))[sys.argv[1]])" "$1"; }
base=$(field base_url); token=$(field token); account=$(field account_id)
admin=$(field admin_url); admin_token=$(field admin_token)
mkfifo "$dir/in"
WEIXIN_TOKEN=$token WEIXIN_ACCOUNT_ID=$account WEIXIN_BASE_URL=$base \
  target/release/bridgekeeper connector weixin <"$dir/in" >"$dir/out.jsonl" 2>/dev/null &
pid=$!
exec 3>"$dir/in"
sleep 2
rss() { awk "/^$1:/ { printf \"%.1f\", \$2 / 1024 }" "/proc/$pid/status"; }
idle=$(rss VmRSS)
kill -STOP "$pid"
python3 - "$admin" "$admin_token" <<'PY'
import json, sys, urllib.request
admin, token = sys.argv[1], sys.argv[2]
for i in range(1000):
    body = json.dumps({"from_user_id": "alice@im.wechat", "text": f"b{i}", "context_token": "c"}).encode()
    req = urllib.request.Request(f"{admin}/inject", data=body, headers={"X-Admin-Token": token})
    urllib.request.urlopen(req).read()
PY
kill -CONT "$pid"
# The connector waits for `recorded` notes (10 s at most per batch); alone, nobody sends them.
for _ in $(seq 1300); do
  [ "$(grep -c '"type":"inbound"' "$dir/out.jsonl")" -ge 1000 ] && break
  sleep 0.1
done
echo "weixin bench (release): connector RSS idle $idle MiB, peak over a burst of $(grep -c '"type":"inbound"' "$dir/out.jsonl") DMs $(rss VmHWM) MiB"
exec 3>&-
