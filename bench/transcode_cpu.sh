#!/usr/bin/env bash
# Server CPU (excluding FFmpeg) against FFmpeg's CPU while one stream is
# transcoded with the default ladder, and FFmpeg's reported speed.
#   [SRC=file.flv] bench/transcode_cpu.sh [SECONDS=30]
# Needs a release build (cargo build --release -p streaming-server) and ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
BIN=target/release/streaming-server
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
SRC=${SRC:-$WORK/src.flv}
[ -s "$SRC" ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=sample_rate=48000 \
  -t $((SECS + 20)) -c:v libx264 -preset veryfast -b:v 3M -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -b:a 128k "$SRC"
export STREAMING_DATA_DIR=$WORK/data STREAMING_HTTP_ADDR=127.0.0.1:18182 STREAMING_RTMP_ADDR=127.0.0.1:11937 RUST_LOG=warn
$BIN serve > "$WORK/server.log" 2>&1 &
PID=$!
sleep 1
J=$($BIN keys create --name bench --json)
KEY=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["stream_key"])' "$J")
ffmpeg -v error -re -i "$SRC" -c copy -f flv "rtmp://127.0.0.1:11937/live/$KEY" &
sleep 8
FF=$(pgrep -P $PID ffmpeg | head -1)
[ -n "$FF" ] || { echo "no FFmpeg child of the server"; exit 1; }
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
HZ=$(getconf CLK_TCK)
S0=$(ticks $PID); F0=$(ticks $FF); T0=$(date +%s.%N)
sleep "$SECS"
S1=$(ticks $PID); F1=$(ticks $FF); T1=$(date +%s.%N)
python3 - "$S0" "$S1" "$F0" "$F1" "$T0" "$T1" "$HZ" <<'PY'
import sys
s0,s1,f0,f1,t0,t1,hz=map(float,sys.argv[1:])
wall=t1-t0; s=(s1-s0)/hz/wall*100; f=(f1-f0)/hz/wall*100
print(f'{{"server_cpu_percent": {s:.1f}, "ffmpeg_cpu_percent": {f:.1f}, "server_over_ffmpeg": {s/f:.3f}}}')
PY
