#!/usr/bin/env bash
# One interleaved run of ../shared/bench/proxy_bench.sh: direct and nginx (the anchors), the
# gateway on a shaped route and on a pass-through route (both inject an auth header), the
# pass-through with access lines on, and with a Redis rate limit (that never trips), and
# the minimal raw-ASGI proxy on aiohttp (bench/clients/: the old floor). Needs a Redis on
# 127.0.0.1:6379 (db 15 is used).
# Usage (from anywhere): bash bench/run.sh [harness options, e.g. -r 3 -d 8]
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/proxy_bench.sh}
SERVE="exec .venv/bin/gateway serve --config-dir bench/config"
GW="GATEWAY_LOG_LEVEL=WARNING $SERVE"
UV="exec .venv/bin/uvicorn --loop uvloop --http httptools --no-access-log --log-level warning"
UV="$UV --app-dir bench/clients"
exec bash "$HARNESS" --out bench/out "$@" \
  --gw gateway-shaped "$GW --port 18090" http://127.0.0.1:18090/v1/items \
  --gw gateway-raw "$GW --port 18091" http://127.0.0.1:18091/raw/items \
  --gw gateway-raw-logged "BENCH_ACCESS_LOG=true GATEWAY_LOG_LEVEL=INFO $SERVE --port 18092" \
  http://127.0.0.1:18092/raw/items \
  --gw gateway-limited-redis "BENCH_STORE=redis://127.0.0.1:6379/15 $GW --port 18093" \
  http://127.0.0.1:18093/limited/items \
  --gw asgi-aiohttp "$UV --port 18094 proxy_aiohttp:app" http://127.0.0.1:18094/v1/items
