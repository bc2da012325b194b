#!/usr/bin/env bash
# `gateway serve --workers 2` against one worker, on this machine's cores (not pinned: the
# workers, wrk and the nginx upstream share them), Redis as the store both times. Rounds
# alternate; prints each run and the median ratio. Usage: bash bench/workers.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-8}
PORT=18130
mkdir -p /tmp/bench-nginx
nginx -p /tmp/bench-nginx/ -e /tmp/bench-nginx/upstream.error.log \
  -c "$(realpath ../shared/bench/upstream.conf)" &
NGINX=$!
trap 'kill $NGINX 2>/dev/null || true' EXIT
run() {  # workers -> req/s
  BENCH_STORE=redis://127.0.0.1:6379/15 UPSTREAM=http://127.0.0.1:18081 GATEWAY_LOG_LEVEL=WARNING \
    GATEWAY_DRAIN=0 setsid .venv/bin/gateway serve --config-dir bench/config --port $PORT \
    --no-watch --workers "$1" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/raw/items" >/dev/null && break; sleep 0.1; done
  wrk -t1 -c64 -d3s "http://127.0.0.1:$PORT/raw/items" >/dev/null
  wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$PORT/raw/items" | awk '/Requests\/sec/ {print $2}'
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  sleep 1
}
results=$(mktemp)
for round in $(seq "$ROUNDS"); do
  order="1 2"; ((round % 2 == 0)) && order="2 1"
  for workers in $order; do
    rps=$(run "$workers"); echo "round $round, $workers worker(s): $rps req/s"; echo "$workers $rps" >>"$results"
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
one = statistics.median(float(r[1]) for r in rows if r[0] == "1")
two = statistics.median(float(r[1]) for r in rows if r[0] == "2")
print(f"| workers | req/s (median) |\n|---|---|\n| 1 | {one:,.0f} |\n| 2 | {two:,.0f} |")
print(f"\n2 workers / 1: {two / one:.2f}x")
PY
