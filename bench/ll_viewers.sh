#!/usr/bin/env bash
# LL-HLS under load, all on 127.0.0.1, one live stream (FFmpeg publishing a
# pre-encoded 720p30 file with 2 s GOPs, transcoding off so the server's CPU is
# delivery only):
#   idle      the stream with no viewer (baseline)
#   plain     N ordinary HLS viewers (streaming-load viewers --audio)
#   ll        N low-latency viewers (… --ll --audio: blocking reloads + hinted parts)
#   held_1    held blocking reloads, 1 per part   (streaming-load held --requests 1)
#   held_1000 held blocking reloads, 1,000 per part
# For each: server CPU % of one core (/proc utime+stime; pidstat's average too
# when sysstat is installed), peak PSS and RSS (/proc/PID/smaps_rollup, status),
# the load tool's request latencies, errors and (ll) parts/keeping-up figures,
# and for held the time from a part's production to each answer (p50/p99).
# Without LL-HLS on the server the LL phases are skipped (reported as null).
#   [SRC=file.flv] [PART_MS=500] [PROFILE=release] bench/ll_viewers.sh [VIEWERS=200] [SECONDS=30]
# Needs: ffmpeg, python3, curl; builds streaming-server and streaming-load here
# (PROFILE=dev for a quick smoke run with debug builds). The load tool runs on
# the same cores as the server: its own CPU is reported too.
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${1:-200}; SECS=${2:-30}; PROFILE=${PROFILE:-release}
HELD_ROUNDS=${HELD_ROUNDS:-20}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --profile "$PROFILE" -p streaming-server -p streaming-load >&2
DIR=${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
BIN=$DIR/streaming-server
LOAD=$DIR/streaming-load
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
SRC=${SRC:-$WORK/src720.flv}
[ -s "$SRC" ] || { echo "encoding a 720p30 3 Mb/s source (once, not measured)…" >&2
ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t 60 -c:v libx264 -preset veryfast -b:v 3M -maxrate 3M -bufsize 3M -g 60 -keyint_min 60 \
  -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k "$SRC"; }

PORT=18201; RTMP=11956
{
  echo "[http]"
  echo "max_connections = 100000"
  echo "max_connections_per_addr = 100000"   # every simulated viewer is 127.0.0.1
  echo "max_held_requests = 200000"          # LL viewers hold a reload and a part each
  echo "max_held_requests_per_addr = 200000"
  echo "[sessions]"
  echo "new_per_addr_per_sec = 100000"
  echo "[transcode]"
  echo "enabled = false"
  if [ -n "${PART_MS:-}" ]; then echo "[media]"; echo "part_duration_ms = $PART_MS"; fi
} > "$WORK/config.toml"
export STREAMING_DATA_DIR=$WORK/data STREAMING_HTTP_ADDR=127.0.0.1:$PORT STREAMING_RTMP_ADDR=127.0.0.1:$RTMP RUST_LOG=warn
$BIN serve --config "$WORK/config.toml" > "$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
kill -0 "$PID" 2>/dev/null || { echo "server exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
J=$($BIN keys create --name ll-bench --json)
ID=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["stream_id"])' "$J")
KEY=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["stream_key"])' "$J")
ffmpeg -v error -re -stream_loop -1 -i "$SRC" -c copy -f flv "rtmp://127.0.0.1:$RTMP/live/$KEY" 2>"$WORK/ffmpeg.log" &
MASTER="http://127.0.0.1:$PORT/hls/$ID/master.m3u8"
for _ in $(seq 1 100); do curl -fs "$MASTER" >/dev/null && break; sleep 0.2; done
sleep 6   # a few segments in the window
M=$(curl -fs "$MASTER")
MEDIA=$(awk '!/^#/ && NF {print; exit}' <<<"$M")
PLAYLIST=$(curl -fs "http://127.0.0.1:$PORT/hls/$ID/$MEDIA")
if grep -q '^#EXT-X-PART-INF' <<<"$PLAYLIST"; then LL=1; else LL=0; echo "no LL-HLS on this server: LL phases skipped" >&2; fi

HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# measure NAME CMD…: runs CMD (the load tool, or sleep) while sampling the server.
measure() {
  local name=$1; shift
  local pst=""
  if command -v pidstat >/dev/null; then pidstat -h -u -p "$PID" 1 > "$WORK/$name.pidstat" & pst=$!; fi
  local c0 t0; c0=$(ticks "$PID"); t0=$(date +%s.%N)
  "$@" > "$WORK/$name.json" 2> "$WORK/$name.err" &
  local vp=$! pss=0 rss=0 lt=0 v
  while kill -0 "$vp" 2>/dev/null; do
    v=$(awk '/^Pss:/{print $2}' "/proc/$PID/smaps_rollup"); [ "${v:-0}" -gt "$pss" ] && pss=$v
    v=$(awk '/^VmRSS/{print $2}' "/proc/$PID/status"); [ "${v:-0}" -gt "$rss" ] && rss=$v
    v=$(ticks "$vp"); [ "$v" -gt "$lt" ] && lt=$v
    sleep 0.5
  done
  wait "$vp" || echo "$name: exit $? ($(tail -n 3 "$WORK/$name.err"))" >&2
  local c1 t1; c1=$(ticks "$PID"); t1=$(date +%s.%N)
  [ -n "$pst" ] && kill "$pst" 2>/dev/null
  python3 - "$name" "$c0" "$c1" "$t0" "$t1" "$HZ" "$pss" "$rss" "$lt" "$WORK" <<'PY'
import json, sys
name, c0, c1, t0, t1, hz, pss, rss, lt, work = sys.argv[1:]
secs = float(t1) - float(t0)
out = {"server_cpu_percent": round(100 * (float(c1) - float(c0)) / float(hz) / secs, 1),
       "server_peak_pss_mib": round(int(pss) / 1024, 1), "server_peak_rss_mib": round(int(rss) / 1024, 1),
       "load_tool_cpu_percent": round(100 * float(lt) / float(hz) / secs, 1), "seconds": round(secs, 1)}
try:
    rows = [l.split() for l in open(f"{work}/{name}.pidstat") if l.strip() and not l.startswith(("#", "Linux"))]
    cpu = [float(r[7]) for r in rows if len(r) > 8]
    out["pidstat_cpu_percent_avg"] = round(sum(cpu) / len(cpu), 1) if cpu else None
except OSError:
    pass
try:
    d = json.loads(open(f"{work}/{name}.json").read())
except ValueError:
    d = None
if d:
    keep = ["requests", "errors", "latency_ms", "timings_ms", "ll", "held", "aborted_at_deadline"]
    out["load"] = {k: d[k] for k in keep if k in d}
    v = d.get("viewers")
    if v:
        out["load"]["segments_per_viewer"] = {"min": v["min_segments"], "max": v["max_segments"]}
json.dump(out, open(f"{work}/{name}.out", "w"))
PY
  sleep 3   # let the tool's connections close before the next phase
}

measure idle sleep 10
measure plain "$LOAD" viewers --url "$MASTER" --viewers "$VIEWERS" --duration "${SECS}s" --audio --ramp 2s
if [ "$LL" = 1 ]; then
  measure ll "$LOAD" viewers --url "$MASTER" --viewers "$VIEWERS" --duration "${SECS}s" --audio --ramp 2s --ll
  measure held_1 "$LOAD" held --url "$MASTER" --requests 1 --rounds "$HELD_ROUNDS" --duration 120s
  measure held_1000 "$LOAD" held --url "$MASTER" --requests 1000 --rounds "$HELD_ROUNDS" --duration 120s
fi
kill -0 "$PID" 2>/dev/null || { echo "server exited during the run:" >&2; tail -n 20 "$WORK/server.log" >&2; exit 1; }
echo "server log: $(grep -c . "$WORK/server.log" || true) lines at RUST_LOG=warn" >&2
python3 - "$WORK" "$VIEWERS" "$SECS" "$LL" "${PART_MS:-default}" "$PROFILE" <<'PY'
import json, os, sys
work, viewers, secs, ll, part_ms, profile = sys.argv[1:]
phases = {}
for name in ["idle", "plain", "ll", "held_1", "held_1000"]:
    p = f"{work}/{name}.out"
    phases[name] = json.load(open(p)) if os.path.exists(p) else None
for name, ph in phases.items():
    if not ph:
        print(f"{name:10} skipped", file=sys.stderr)
        continue
    line = f"{name:10} server CPU {ph['server_cpu_percent']:5}%  PSS {ph['server_peak_pss_mib']} MiB  RSS {ph['server_peak_rss_mib']} MiB  tool CPU {ph['load_tool_cpu_percent']}%"
    load = ph.get("load") or {}
    if "errors" in load:
        line += f"  errors {load['errors']['total']}"
    if "ll" in load:
        l = load["ll"]
        line += f"  parts {l['parts_fetched']} keeping up {l['keeping_up']}/{viewers}"
    if "held" in load:
        held = load["held"]
        h = held["after_production_ms"]
        line += (f"  after production ms p50 {h['p50']} p99 {h['p99']}"
                 f"  answered {held['answered']}/{held['sent']} (not held {held['sent_after_production']})")
    print(line, file=sys.stderr)
print(json.dumps({"viewers": int(viewers), "seconds": int(secs), "ll_offered": ll == "1",
                  "part_ms": part_ms, "profile": profile, "phases": phases}))
PY
