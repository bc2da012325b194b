#!/usr/bin/env bash
# An MCP tool call against the same route over HTTP, in one interleaved run: the gateway
# (bench/config, pinned to CPU 1) proxies rawItems to the harness's nginx upstream (the
# fixed 1095-byte JSON body, on CPU 0 with wrk). Each round runs both, in turn-about order,
# at 1 and at 32 connections; the table gives medians and the MCP/HTTP ratios.
# Usage: bash bench/mcp.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-8}
PORT=18098
HERE=../shared/bench
need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x "$(command -v nginx || echo /usr/sbin/nginx)" ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
mkdir -p /tmp/bench-nginx
PIDS=()
trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
setsid taskset -c 0 "$NGINX" -p /tmp/bench-nginx/ -e /tmp/bench-nginx/upstream.error.log \
  -c "$(realpath "$HERE/upstream.conf")" &
PIDS+=($!)
UPSTREAM=http://127.0.0.1:18081 GATEWAY_LOG_LEVEL=WARNING \
  setsid taskset -c 1 .venv/bin/gateway serve --config-dir bench/config --port $PORT &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/raw/items" >/dev/null && break; sleep 0.1; done
curl -sf -X POST "http://127.0.0.1:$PORT/mcp" -H 'Content-Type: application/json' \
  -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-11-25' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rawItems","arguments":{}}}' |
  grep -q '"isError":false' || { echo "the MCP call failed" >&2; exit 1; }

run() {  # kind connections -> "rps p50_ms"
  local args=() out
  [ "$1" = mcp ] && args=(-s bench/mcp.lua)
  local url="http://127.0.0.1:$PORT/raw/items"
  [ "$1" = mcp ] && url="http://127.0.0.1:$PORT/mcp"
  out=$(taskset -c 0 wrk -t1 -c"$2" -d"${SECONDS_PER_RUN}s" --latency "${args[@]}" "$url")
  if grep -q Non-2xx <<<"$out"; then echo "non-2xx answers: $out" >&2; exit 1; fi
  printf '%s %s\n' "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "50%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")"
}

taskset -c 0 wrk -t1 -c8 -d3s "http://127.0.0.1:$PORT/raw/items" >/dev/null  # warm-up
taskset -c 0 wrk -t1 -c8 -d3s -s bench/mcp.lua "http://127.0.0.1:$PORT/mcp" >/dev/null
results=$(mktemp)
for round in $(seq "$ROUNDS"); do
  order="http mcp"; ((round % 2 == 0)) && order="mcp http"
  for c in 1 32; do
    for kind in $order; do echo "$kind $c $(run "$kind" "$c")" >>"$results"; done
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def median(kind, c, column):
    return statistics.median(float(r[column]) for r in rows if r[0] == kind and r[1] == c)
print("| call | req/s @c32 | p50 ms @c1 |")
print("|---|---|---|")
for kind, name in (("http", "`GET /raw/items`"), ("mcp", "MCP `tools/call rawItems`")):
    print(f"| {name} | {median(kind, '32', 2):,.0f} | {median(kind, '1', 3):.2f} |")
rps = median("mcp", "32", 2) / median("http", "32", 2)
p50 = median("mcp", "1", 3) / median("http", "1", 3)
print(f"\nMCP / HTTP: throughput {rps:.3f}, single-connection latency {p50:.2f}x")
PY
