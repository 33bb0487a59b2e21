#!/usr/bin/env bash
# Memory of an idle WebSocket client: a release server with one stream (no
# publisher), N clients of /ws/stream/{id} that read what they are sent and
# nothing else; prints the server's PSS and RSS growth per client.
#   bench/ws_idle.sh [CLIENTS=2000] [SETTLE_SECONDS=5]
# Needs: a release build (done here), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-2000}; SETTLE=${2:-5}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -p streaming-server
BIN=${CARGO_TARGET_DIR:-target}/release/streaming-server
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=18192
export STREAMING_DATA_DIR=$WORK/data STREAMING_HTTP_ADDR=127.0.0.1:$PORT STREAMING_RTMP_ADDR=127.0.0.1:11947 RUST_LOG=warn
$BIN serve > "$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
J=$($BIN keys create --name ws-idle --json)
ID=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["stream_id"])' "$J")
python3 bench/ws_idle.py "$PID" "$PORT" "$ID" "$CLIENTS" "$SETTLE"
