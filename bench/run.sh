#!/usr/bin/env bash
# One interleaved run of ../shared/bench/proxy_bench.sh: direct and nginx (the anchors), the
# gateway on a shaped route and on a pass-through route (both inject an auth header), and the
# two client candidates as minimal raw-ASGI proxies (bench/clients/: aiohttp vs httpx).
# Usage (from anywhere): bash bench/run.sh [harness options, e.g. -r 3 -d 8]
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/proxy_bench.sh}
GW="GATEWAY_LOG_LEVEL=WARNING exec .venv/bin/gateway serve --config-dir bench/config"
UV="exec .venv/bin/uvicorn --loop uvloop --http httptools --no-access-log --log-level warning"
UV="$UV --app-dir bench/clients"
exec bash "$HARNESS" --out bench/out "$@" \
  --gw gateway-shaped "$GW --port 18090" http://127.0.0.1:18090/v1/items \
  --gw gateway-raw "$GW --port 18091" http://127.0.0.1:18091/raw/items \
  --gw asgi-aiohttp "$UV --port 18094 proxy_aiohttp:app" http://127.0.0.1:18094/v1/items \
  --gw asgi-httpx "$UV --port 18095 proxy_httpx:app" http://127.0.0.1:18095/v1/items
