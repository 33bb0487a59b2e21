#!/usr/bin/env bash
# Measures the server's CPU% and RSS while one 6 Mb/s 1080p30 stream is ingested
# and N simulated viewers poll it (all on 127.0.0.1).
#   [SRC=file.flv] bench/ingest_viewers.sh [VIEWERS=50] [SECONDS=30]
# Needs: a release build (cargo build --release -p streaming-server), ffmpeg, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${1:-50}; SECS=${2:-30}
BIN=target/release/streaming-server
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
SRC=${SRC:-$WORK/src1080.flv}
[ -s "$SRC" ] || { echo "encoding a 1080p30 6 Mb/s source (once, not measured)…" >&2
ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t $((SECS + 25)) -c:v libx264 -preset veryfast -b:v 6M -maxrate 6M -bufsize 6M -g 60 -keyint_min 60 \
  -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k "$SRC"; }
export STREAMING_DATA_DIR=$WORK/data STREAMING_HTTP_ADDR=127.0.0.1:18181 STREAMING_RTMP_ADDR=127.0.0.1:11936 RUST_LOG=warn
$BIN serve > "$WORK/server.log" 2>&1 &
PID=$!
sleep 1
J=$($BIN keys create --name bench --json)
ID=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["stream_id"])' "$J")
KEY=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["stream_key"])' "$J")
ffmpeg -v error -re -i "$SRC" -c copy -f flv "rtmp://127.0.0.1:11936/live/$KEY" &
sleep 8
ticks() { awk '{print $14+$15}' /proc/$PID/stat; }
HZ=$(getconf CLK_TCK)
T0=$(ticks); S0=$(date +%s.%N)
python3 bench/viewers.py "http://127.0.0.1:18181/hls/$ID/master.m3u8" --viewers "$VIEWERS" --seconds "$SECS" > "$WORK/viewers.json" &
VP=$!
MAXRSS=0
while kill -0 $VP 2>/dev/null; do
  R=$(awk '/VmRSS/{print $2}' /proc/$PID/status); [ "$R" -gt "$MAXRSS" ] && MAXRSS=$R
  sleep 0.5
done
T1=$(ticks); S1=$(date +%s.%N)
CPU=$(python3 -c "print(round(100*($T1-$T0)/$HZ/($S1-$S0),1))")
echo "{\"server_cpu_percent\": $CPU, \"server_max_rss_mib\": $((MAXRSS/1024)), \"viewers_summary\": $(cat "$WORK/viewers.json")}"
