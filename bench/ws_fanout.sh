#!/usr/bin/env bash
# WebSocket fan-out: N clients of /ws/stream/{id} on one live stream (all on
# 127.0.0.1); reports connects, drops and the delay of each 1-second `metrics`
# message behind the server's collector tick (p50/p90/p99/max).
#   [SRC=file.flv] bench/ws_fanout.sh [CLIENTS=5000] [SECONDS=30]
# Needs: release builds (done here), ffmpeg (for the source file, unless SRC).
# Each client is one socket on both ends: the file-descriptor limit is raised
# below; if the hard limit is lower, raise it first (e.g. `ulimit -Hn 65536` as
# root, or LimitNOFILE= / limits.conf).
# Every client connects from 127.0.0.1: the server runs with
# websocket.max_clients_per_addr raised to CLIENTS (the default, 50, would
# refuse all but 50 of them, and the RSS growth over 50 clients looks like
# ~100+ KiB each). Memory per idle client alone: bench/ws_idle.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-5000}; SECS=${2:-30}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "file descriptors: $(ulimit -n)" >&2
cargo build --release -p streaming-server -p streaming-load
BIN=target/release/streaming-server
LOAD=target/release/streaming-load
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
SRC=${SRC:-$WORK/src.flv}
[ -s "$SRC" ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=640x360:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 -c:v libx264 -preset veryfast \
  -b:v 800k -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 64k "$SRC"
PORT=18191
printf '[websocket]\nmax_clients_per_addr = %d\n' "$CLIENTS" > "$WORK/config.toml"
export STREAMING_CONFIG=$WORK/config.toml STREAMING_DATA_DIR=$WORK/data STREAMING_HTTP_ADDR=127.0.0.1:$PORT STREAMING_RTMP_ADDR=127.0.0.1:11946 RUST_LOG=warn
$BIN serve > "$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
J=$($BIN keys create --name ws-bench --json)
ID=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["stream_id"])' "$J")
KEY=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["stream_key"])' "$J")
# The publisher runs past the measurement (ramp + run + wind-down).
$LOAD publish --rtmp "rtmp://127.0.0.1:11946/live/$KEY" --flv "$SRC" --loop \
  --duration "$((SECS + 40))s" > "$WORK/publish.json" 2>"$WORK/publish.err" &
sleep 5
kill -0 "$PID" 2>/dev/null || { echo "server exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
# Server CPU (user + system clock ticks of the process, its transcoder children
# apart) over the WebSocket run.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
child_secs() { { ps --ppid "$PID" -o times= 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}'; }
HZ=$(getconf CLK_TCK)
echo "load before: $(uptime)" >&2
RSS_BEFORE=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
C0=$(cpu_ticks "$PID"); K0=$(child_secs); T0=$(date +%s.%N)
RAMP=$(( CLIENTS / 1000 + 1 ))
$LOAD ws --url "ws://127.0.0.1:$PORT/ws/stream/$ID" --clients "$CLIENTS" \
  --duration "${SECS}s" --ramp "${RAMP}s" > "$WORK/ws.json"
C1=$(cpu_ticks "$PID"); K1=$(child_secs); T1=$(date +%s.%N)
echo "load after:  $(uptime)" >&2
CPU=$(python3 -c 'import sys;c0,c1,hz,t0,t1=map(float,sys.argv[1:]);print(round(100*(c1-c0)/hz/(t1-t0),1))' "$C0" "$C1" "$HZ" "$T0" "$T1")
KCPU=$(python3 -c 'import sys;k0,k1,t0,t1=map(float,sys.argv[1:]);print(round(100*(k1-k0)/(t1-t0),1))' "$K0" "$K1" "$T0" "$T1")
RSS=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
RSS_NOW=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
echo "server: $(grep -c . "$WORK/server.log" || true) log lines (RUST_LOG=warn); last: $(tail -n 2 "$WORK/server.log" | cut -c1-300)" >&2
python3 - "$WORK/ws.json" "$RSS" "$CPU" "$KCPU" "$RSS_NOW" "$RSS_BEFORE" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c, m = d["clients"], d["metrics_delay_ms"]
print(f"clients {c['requested']}: connected {c['connected']}, connect failures {c['connect_failures']}, "
      f"ended early {c['ended_early']} {c['ended_early_by_kind']}")
print(f"metrics messages {d['metrics_messages']}  delay ms p50 {m['p50']} p90 {m['p90']} p99 {m['p99']} "
      f"max {m['max']}  messages/client {d['messages_per_client']}")
print(f"server peak RSS {int(sys.argv[2]) // 1024} MiB (before the clients {int(sys.argv[6]) // 1024} MiB, "
      f"at end {int(sys.argv[5]) // 1024} MiB); "
      f"server CPU during the run {sys.argv[3]}% of one core (transcoder children {sys.argv[4]}%)")
d["server_peak_rss_kib"] = int(sys.argv[2])
d["server_cpu_percent"] = float(sys.argv[3])
d["transcoder_cpu_percent"] = float(sys.argv[4])
print(json.dumps(d))
PY
