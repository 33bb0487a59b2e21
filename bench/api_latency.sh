#!/usr/bin/env bash
# Latency of GET /api/v1/streams/{id} under 200 concurrent requests, on
# SQLite and on PostgreSQL, with oha (`cargo install oha`). Uses the release
# binary; PostgreSQL at 127.0.0.1:5432 (a scratch database, dropped after).
#   bench/api_latency.sh [REQUESTS]      (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
BIN=target/release/streaming-server
[ -x "$BIN" ] || cargo build --release -p streaming-server --bin streaming-server
command -v oha >/dev/null || { echo "install oha: cargo install oha" >&2; exit 1; }
TOKEN=bench-token
WORK=$(mktemp -d)
DB="bench_$$"
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

run() { # NAME DATABASE_URL
  local name=$1 url=$2 port=18480
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  RUST_LOG=warn STREAMING_ADMIN_TOKEN=$TOKEN DATABASE_URL=$url "$BIN" serve \
    --data-dir "$WORK/data" --http-addr 127.0.0.1:$port --rtmp-addr 127.0.0.1:0 >"$WORK/$name.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.2; done
  local id
  id=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"name":"bench"}' "http://127.0.0.1:$port/api/v1/streams" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  # Warm-up, then the measured run.
  oha -n 2000 -c 200 --no-tui --output-format quiet -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/api/v1/streams/$id"
  oha -n "$N" -c 200 --no-tui --output-format json -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$port/api/v1/streams/$id" >"$WORK/$name.json"
  python3 - "$name" "$WORK/$name.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
print(f"{name:9s} requests/s {s['requestsPerSec']:8.0f}  p50 {p['p50']*1000:6.2f} ms  p99 {p['p99']*1000:6.2f} ms  "
      f"max {s['slowest']*1000:6.1f} ms  success {s['successRate']*100:.1f}%  status {codes}")
PY
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

echo "GET /api/v1/streams/{id}, $N requests, 200 concurrent, $(nproc) cores"
run sqlite "sqlite:$WORK/data/streaming.db"
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $DB"
run postgres "postgres://postgres@127.0.0.1:5432/$DB"
