#!/usr/bin/env bash
# Rate-limit overhead: the pass-through route with and without a limit, with the memory
# store and with Redis (one Lua call per request). Pinned like the harness: wrk on CPU 0,
# the gateway on CPU 1, the nginx upstream on CPU 0. Usage: bash bench/ratelimit.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-8}
mkdir -p /tmp/bench-nginx
taskset -c 0 nginx -p /tmp/bench-nginx/ -c "$PWD/../shared/bench/upstream.conf" &
NGINX=$!
trap 'kill $NGINX 2>/dev/null || true' EXIT
sleep 1
for store in memory:// redis://127.0.0.1:6379/15; do
  BENCH_STORE=$store UPSTREAM=http://127.0.0.1:18081 GATEWAY_LOG_LEVEL=WARNING \
    setsid taskset -c 1 .venv/bin/gateway serve --config-dir bench/config --port 18096 &
  GW=$!
  sleep 3
  for path in /raw/items /limited/items; do
    rps=$(taskset -c 0 wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:18096$path" | awk '/Requests\/sec/ {print $2}')
    p50=$(taskset -c 0 wrk -t1 -c1 -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:18096$path" | awk '$1 == "50%" {print $2}')
    echo "| $store | $path | $rps | $p50 |"
  done
  kill -- -"$GW" 2>/dev/null || kill "$GW"; wait "$GW" 2>/dev/null || true
done
