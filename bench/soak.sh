#!/usr/bin/env bash
# Soak: S pass-through publishers and N viewers (N/S per stream) for M
# minutes, all on 127.0.0.1, transcoding off. Every 10 s it samples the
# server's RSS, PSS, CPU and streaming_store_bytes (the media it holds). After
# a warm-up that fills the window (10 segments of 2 s by default) memory must
# stay flat: it reports the first and last sample after the warm-up, the
# range, the load tools' errors and whether every publisher kept real time.
#   [STREAMS=20] [VIEWERS=1000] [MINUTES=30] [KBPS=2500] [SRC=file.flv] bench/soak.sh
# Prints a summary on stderr, one JSON object on stdout (samples included).
# Needs: ffmpeg, python3, curl; builds streaming-server and streaming-load (release).
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-20}; VIEWERS=${VIEWERS:-1000}; MINUTES=${MINUTES:-30}; KBPS=${KBPS:-2500}
WARM=${WARM:-60}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
. bench/lib.sh
cargo build --release -p streaming-server -p streaming-load >&2
DIR=${CARGO_TARGET_DIR:-target}/release
BIN=$DIR/streaming-server
LOAD=$DIR/streaming-load
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
SRC=${SRC:-$WORK/src.flv}
fixture "$SRC" "$KBPS" 60
PORT=18311; RTMP=11976
bench_config "$WORK/config.toml"
STREAMING_DATA_DIR=$WORK/data STREAMING_HTTP_ADDR=127.0.0.1:$PORT STREAMING_RTMP_ADDR=127.0.0.1:$RTMP \
  RUST_LOG=warn "$BIN" serve --config "$WORK/config.toml" > "$WORK/server.log" 2>&1 &
PID=$!
wait_http "http://127.0.0.1:$PORT/ready" || { cat "$WORK/server.log" >&2; exit 1; }
IDS=(); ARGS=()
for i in $(seq 1 "$STREAMS"); do
  read -r id key < <(new_key "$BIN" "$WORK/data" "soak$i")
  IDS+=("$id"); ARGS+=(--rtmp "rtmp://127.0.0.1:$RTMP/live/$key")
done
RUN=$((MINUTES * 60))
"$LOAD" publish "${ARGS[@]}" --flv "$SRC" --loop --duration "$((WARM + RUN + 30))s" > "$WORK/pub.json" 2> "$WORK/pub.err" &
PUB=$!
for id in "${IDS[@]}"; do wait_http "http://127.0.0.1:$PORT/hls/$id/master.m3u8" || { echo "stream $id did not start" >&2; exit 1; }; done
echo "warming up for ${WARM}s (the window fills)…" >&2
sleep "$WARM"
PER=$(( (VIEWERS + STREAMS - 1) / STREAMS )); VP=()
for id in "${IDS[@]}"; do
  "$LOAD" viewers --url "http://127.0.0.1:$PORT/hls/$id/master.m3u8" --viewers "$PER" --audio \
    --duration "${RUN}s" --ramp 10s > "$WORK/viewers-$id.json" 2> "$WORK/viewers-$id.err" &
  VP+=($!)
done
HZ=$(getconf CLK_TCK)
echo "t_s rss_kib pss_kib store_bytes cpu_percent" > "$WORK/samples.txt"
T0=$(date +%s); C0=$(ticks "$PID")
while [ $(( $(date +%s) - T0 )) -lt "$RUN" ]; do
  sleep 10
  kill -0 "$PID" 2>/dev/null || { echo "server exited:" >&2; tail -n 20 "$WORK/server.log" >&2; exit 1; }
  C1=$(ticks "$PID"); T=$(( $(date +%s) - T0 ))
  SB=$(curl -fs "http://127.0.0.1:$PORT/metrics" | metric streaming_store_bytes || echo 0)
  echo "$T $(rss "$PID") $(pss "$PID") ${SB:-0} $(python3 -c "print(round(100*($C1-$C0)/$HZ/10,1))")" >> "$WORK/samples.txt"
  C0=$C1
done
for p in "${VP[@]}"; do wait "$p" || true; done
wait "$PUB" || true
python3 - "$WORK" "$STREAMS" "$VIEWERS" "$MINUTES" "$KBPS" <<'PY'
import glob, json, sys
work, streams, viewers, minutes, kbps = sys.argv[1:]
rows = [l.split() for l in open(f"{work}/samples.txt").read().splitlines()[1:]]
s = [dict(t=int(r[0]), rss=int(r[1]), pss=int(r[2]), store=float(r[3]), cpu=float(r[4])) for r in rows]
errors, requests, startup = 0, 0, []
kinds = {}
for f in glob.glob(f"{work}/viewers-*.json"):
    try:
        j = json.loads(open(f).read().strip().splitlines()[-1])
    except (ValueError, IndexError):
        errors += 1; kinds["load_tool_no_summary"] = kinds.get("load_tool_no_summary", 0) + 1
        continue
    errors += j["errors"]["total"]; requests += j["requests"]["total"]
    for k, v in j["errors"].get("by_kind", {}).items():
        kinds[k] = kinds.get(k, 0) + v
try:
    pub = json.loads(open(f"{work}/pub.json").read().strip().splitlines()[-1])
except (ValueError, IndexError):
    pub = None
first, last = s[0], s[-1]
rss = [x["rss"] for x in s]
out = {
    "streams": int(streams), "viewers": int(viewers), "minutes": int(minutes), "kbps": int(kbps),
    "rss_first_mib": round(first["rss"] / 1024, 1), "rss_last_mib": round(last["rss"] / 1024, 1),
    "rss_min_mib": round(min(rss) / 1024, 1), "rss_max_mib": round(max(rss) / 1024, 1),
    "rss_last_vs_first_percent": round(100 * (last["rss"] - first["rss"]) / first["rss"], 1),
    "rss_max_vs_first_percent": round(100 * (max(rss) - first["rss"]) / first["rss"], 1),
    "pss_last_mib": round(last["pss"] / 1024, 1),
    "store_first_mib": round(first["store"] / 1048576, 1), "store_last_mib": round(last["store"] / 1048576, 1),
    "pss_over_store": round(last["pss"] * 1024 / last["store"], 2) if last["store"] else None,
    "cpu_percent_avg": round(sum(x["cpu"] for x in s) / len(s), 1),
    "viewer_requests": requests, "viewer_errors": errors, "error_kinds": kinds,
    "publisher_max_lag_ms": pub["publishers"]["max_lag_ms"] if pub else None,
    "publisher_errors": pub["errors"]["total"] if pub else None,
    "samples": s,
}
flat = abs(out["rss_last_vs_first_percent"]) <= 5 and out["rss_max_vs_first_percent"] <= 5
print(f"soak {minutes} min, {streams} streams, {viewers} viewers: RSS {out['rss_first_mib']} → {out['rss_last_mib']} MiB "
      f"({out['rss_last_vs_first_percent']:+}%, max {out['rss_max_vs_first_percent']:+}%) {'flat' if flat else 'NOT FLAT'}; "
      f"store {out['store_first_mib']} → {out['store_last_mib']} MiB, PSS/store {out['pss_over_store']}; "
      f"CPU {out['cpu_percent_avg']}%; viewer requests {requests}, errors {errors} {kinds or ''}; "
      f"publisher max lag {out['publisher_max_lag_ms']} ms", file=sys.stderr)
out["flat_within_5_percent"] = flat
print(json.dumps(out))
PY
