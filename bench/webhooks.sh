#!/usr/bin/env bash
# Signed webhooks verified, de-duplicated and durably queued per second, on one core.
# The gateway is pinned to CPU 1, wrk to CPU 0; redis-server is not pinned (it shares the
# two cores). Rows:
#   static POST      the same process answering a POST from memory (the ceiling)
#   receive-only     queue.consume=false: receive -> verify -> dedupe+XADD (one Lua call,
#                    pipelined with the other requests of the same loop turn) -> 200
#   receive+process  the same, with this process's worker handling every event (no-op
#                    handler: XREADGROUP -> handler -> XACK+XDEL) on the same core
# Usage: bash bench/webhooks.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
BODY='{"type":"notification_event","id":"notif_bench","topic":"conversation.user.replied","data":{"type":"notification_event_data","item":{"type":"conversation","id":"215"}}}'
BENCH_SIGNATURE="sha1=$(printf '%s' "$BODY" | openssl dgst -sha1 -hmac bench-secret-123 -r | cut -d' ' -f1)"
export BENCH_SIGNATURE
PORT=18097
GW=
trap '[ -n "$GW" ] && kill "$GW" 2>/dev/null || true' EXIT

run_wrk() {  # path connections -> "| rps | p50 | p99 | non-2xx"
  local out
  out=$(taskset -c 0 wrk -t1 -c"$2" -d"${SECONDS_PER_RUN}s" --latency -s bench/webhooks.lua \
    "http://127.0.0.1:$PORT$1")
  printf '| %s | %s | %s | %s |' "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$(awk '/Non-2xx/ {print $5}' <<<"$out" | grep . || echo 0)"
}

echo "| store | mode | path | conns | req/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|---|---|"
for setup in "redis://127.0.0.1:6379/15 false" "redis://127.0.0.1:6379/15 true" "memory:// true"; do
  read -r store consume <<<"$setup"
  redis-cli -n 15 flushdb >/dev/null
  BENCH_CONSUME=$consume BENCH_STORE=$store GATEWAY_LOG_LEVEL=WARNING \
    setsid taskset -c 1 .venv/bin/gateway serve --config-dir bench/config --port $PORT &
  GW=$!
  sleep 3
  mode=$([ "$consume" = true ] && echo receive+process || echo receive-only)
  if [ "$consume" = false ]; then
    for c in 1 32; do echo "| - | static POST | /static/ack | $c $(run_wrk /static/ack $c)"; done
  fi
  for c in 1 32; do echo "| $store | $mode | /hooks/bench | $c $(run_wrk /hooks/bench $c)"; done
  curl -s "http://127.0.0.1:$PORT/health" | python3 -c 'import json, sys
h = json.load(sys.stdin)["webhooks"]
print("<!-- " + " ".join(sys.argv[1:]) + ": processed %s, still queued %s -->" % (h["processed"], h["pending"]))' "$store" "$mode"
  kill -TERM "$GW"; wait "$GW" 2>/dev/null || true
done
