#!/usr/bin/env bash
# Signed webhooks verified, de-duplicated and durably queued per second, on one core.
# The gateway is pinned to CPU 1, wrk to CPU 0 (redis-server is not pinned: it shares the
# two cores). Each process also runs its queue worker (a no-op handler), so the numbers are
# for the whole pipeline: receive -> verify -> dedupe+XADD (one Lua call) -> 200, and the
# worker's XREADGROUP -> handler -> XACK+XDEL.
# Usage: bash bench/webhooks.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
BODY='{"type":"notification_event","id":"notif_bench","topic":"conversation.user.replied","data":{"type":"notification_event_data","item":{"type":"conversation","id":"215"}}}'
BENCH_SIGNATURE="sha1=$(printf '%s' "$BODY" | openssl dgst -sha1 -hmac bench-secret-123 -r | cut -d' ' -f1)"
export BENCH_SIGNATURE
redis-cli -n 15 flushdb >/dev/null
for store in redis://127.0.0.1:6379/15 memory://; do
  BENCH_STORE=$store UPSTREAM=http://127.0.0.1:18081 GATEWAY_LOG_LEVEL=WARNING \
    setsid taskset -c 1 .venv/bin/gateway serve --config-dir bench/config --port 18097 &
  GW=$!
  sleep 3
  for connections in 1 32; do
    out=$(taskset -c 0 wrk -t1 -c"$connections" -d"${SECONDS_PER_RUN}s" --latency \
      -s bench/webhooks.lua "http://127.0.0.1:18097/hooks/bench")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    echo "| $store | c$connections | $rps | $p50 | $p99 | ${non2xx:-0} |"
  done
  sleep 2
  curl -s http://127.0.0.1:18097/health | python3 -c 'import json,sys; h=json.load(sys.stdin)["webhooks"]; print("   processed:", h["processed"], "pending:", h["pending"])'
  kill -- -"$GW" 2>/dev/null || kill "$GW"; wait "$GW" 2>/dev/null || true
done
