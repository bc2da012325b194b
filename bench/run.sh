#!/usr/bin/env bash
# One interleaved run: direct vs nginx vs the gateway (shaped and pass-through routes).
# Usage (from the repository root): bash bench/run.sh [harness options, e.g. -r 3 -d 10]
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/proxy_bench.sh}
GW="GATEWAY_LOG_LEVEL=WARNING exec .venv/bin/gateway serve --config-dir bench/config"
exec bash "$HARNESS" --out bench/out "$@" \
  --gw gateway-shaped "$GW --port 18090" http://127.0.0.1:18090/v1/items \
  --gw gateway-raw "$GW --port 18091" http://127.0.0.1:18091/raw/items
