# Shared helpers of the bench/ scripts (sourced, not run).

# CPU ticks (utime + stime) of the processes PIDS (space-separated).
ticks() { local t=0 p; for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
# PSS in KiB of the processes PIDS (the memory they cost, shared pages split).
pss() { local t=0 p v; for p in $1; do v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0); t=$((t + ${v:-0})); done; echo "$t"; }
# RSS in KiB of PID.
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# The whole machine's busy and total jiffies (from /proc/stat).
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
# A value from a Prometheus text page: metric NAME (no labels) in FILE or stdin.
metric() { awk -v n="$1" '$1 == n {print $2; exit}' "${2:-/dev/stdin}"; }

# fixture FILE KBPS SECONDS: a 720p30 H.264/AAC FLV with 2 s GOPs (once).
fixture() {
  [ -s "$1" ] && return 0
  echo "encoding a 720p30 $2 kb/s source with 2 s GOPs (once, not measured)…" >&2
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t "$3" -c:v libx264 -preset veryfast -b:v "$2k" -maxrate "$2k" -bufsize "$2k" -g 60 -keyint_min 60 \
    -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k -f flv "$1"
}

# bench_config FILE: a streaming-server config for load on 127.0.0.1 (every
# simulated client shares one address, so the per-address limits are raised)
# with transcoding off (delivery and ingest only).
bench_config() {
  cat > "$1" <<CONF
[http]
max_connections = 100000
max_connections_per_addr = 100000
max_held_requests = 200000
max_held_requests_per_addr = 200000
[ingest]
max_connections = 1000
max_pending_per_addr = 1000
[sessions]
new_per_addr_per_sec = 100000
max_live = 100000
[transcode]
enabled = false
[metrics]
public = true
CONF
}

# wait_http URL: until it answers (10 s at most).
wait_http() { for _ in $(seq 1 50); do curl -fs "$1" >/dev/null && return 0; sleep 0.2; done; return 1; }

# new_key BIN DATA_DIR NAME: prints "stream_id stream_key" of a new stream.
new_key() {
  STREAMING_DATA_DIR=$2 "$1" keys create --name "$3" --json \
    | python3 -c 'import json,sys;j=json.load(sys.stdin);print(j["stream_id"], j["stream_key"])'
}
