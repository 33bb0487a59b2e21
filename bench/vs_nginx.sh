#!/usr/bin/env bash
# Side by side with nginx-rtmp (Debian nginx-light + libnginx-mod-rtmp, one
# worker, HLS written to disk from the same publish), all on 127.0.0.1, one
# server at a time, the same fixture and the same Rust load tool:
#   publishers  K pass-through publishers (streaming-load publish --loop);
#               server CPU, PSS, whether every publisher kept real time
#   viewers     1 publisher + N viewers (streaming-load viewers: each polls its
#               media playlist about once per target duration and fetches
#               every new segment); server CPU, segment/playlist GET
#               percentiles, startup, errors, the load tool's own CPU and
#               the whole machine's busy time
#   ll          (this server only) the same N viewers with LL-HLS blocking
#               reloads and hinted parts (streaming-load viewers --ll)
# Transcoding is off (nginx-rtmp does not transcode): delivery and ingest only.
#
#   [PUBLISHERS=50] [VIEWERS=1000] [SECS=30] [KBPS=2500] [SERVERS="nginx ours"]
#   [PHASES="publishers viewers"] [AUDIO=1] [SRC=file.flv] bench/vs_nginx.sh
#
# AUDIO=1 (default): this server's viewers also follow the audio rendition, as
# players do (CMAF keeps audio and video apart; nginx-rtmp's MPEG-TS muxes
# them), so they make twice the requests for the same bytes.
# Prints a table on stderr and one JSON object on stdout.
# Needs: root for apt-get (nginx is installed once when missing), ffmpeg,
# python3, curl; builds streaming-server and streaming-load (release).
set -euo pipefail
cd "$(dirname "$0")/.."
PUBLISHERS=${PUBLISHERS:-50}; VIEWERS=${VIEWERS:-1000}; SECS=${SECS:-30}; KBPS=${KBPS:-2500}
SERVERS=${SERVERS:-"nginx ours"}; PHASES=${PHASES:-"publishers viewers"}; AUDIO=${AUDIO:-1}
WARM=${WARM:-10}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
. bench/lib.sh

RTMP_MOD=/usr/lib/nginx/modules/ngx_rtmp_module.so
if [[ " $SERVERS " == *" nginx "* ]] && { ! command -v nginx >/dev/null || [ ! -e "$RTMP_MOD" ]; }; then
  echo "installing nginx-light and libnginx-mod-rtmp (Debian; not started as a service)…" >&2
  # No service start during the install: this script runs its own nginx.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-rtmp >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-rtmp >&2; }
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
cargo build --release -p streaming-server -p streaming-load >&2
DIR=${CARGO_TARGET_DIR:-target}/release
BIN=$DIR/streaming-server
LOAD=$DIR/streaming-load
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; rm -rf "$WORK"' EXIT
SRC=${SRC:-$WORK/src.flv}
fixture "$SRC" "$KBPS" 60

HTTP_PORT=18301; RTMP_PORT=11966
HZ=$(getconf CLK_TCK)

# --- the two servers -------------------------------------------------------
PIDS=""; PLAYLIST_URL=""; RTMP_URLS=()

start_nginx() {
  mkdir -p "$WORK/nginx-hls" "$WORK/nginx-tmp"
  rm -rf "${WORK:?}/nginx-hls/"*
  cat > "$WORK/nginx.conf" <<EOF
load_module $RTMP_MOD;
user root;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 60000; }
rtmp {
  server {
    listen 127.0.0.1:$RTMP_PORT;
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path $WORK/nginx-hls;
      hls_fragment 2s;
      hls_playlist_length 12s;
    }
  }
}
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  client_body_temp_path $WORK/nginx-tmp/body;
  proxy_temp_path $WORK/nginx-tmp/proxy;
  fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
  scgi_temp_path $WORK/nginx-tmp/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:$HTTP_PORT;
    location /hls/ { alias $WORK/nginx-hls/; add_header Cache-Control no-cache; }
    location = /ready { return 200 "ok\n"; }
  }
}
EOF
  nginx -c "$WORK/nginx.conf" -p "$WORK" 2> "$WORK/nginx-start.log" || { cat "$WORK/nginx-start.log" >&2; exit 1; }
  wait_http "http://127.0.0.1:$HTTP_PORT/ready" || { cat "$WORK/nginx-error.log" >&2; exit 1; }
  local master; master=$(cat "$WORK/nginx.pid")
  PIDS="$master $(pgrep -P "$master" | tr '\n' ' ')"
  RTMP_URLS=()
  for i in $(seq 1 "$1"); do RTMP_URLS+=("rtmp://127.0.0.1:$RTMP_PORT/live/bench$i"); done
  PLAYLIST_URL="http://127.0.0.1:$HTTP_PORT/hls/bench1.m3u8"
}

stop_nginx() {
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  for _ in $(seq 1 50); do [ -f "$WORK/nginx.pid" ] || break; sleep 0.1; done
  rm -f "$WORK/nginx.pid"
}

start_ours() {
  rm -rf "$WORK/data"
  bench_config "$WORK/config.toml"
  STREAMING_DATA_DIR=$WORK/data STREAMING_HTTP_ADDR=127.0.0.1:$HTTP_PORT STREAMING_RTMP_ADDR=127.0.0.1:$RTMP_PORT \
    RUST_LOG=warn "$BIN" serve --config "$WORK/config.toml" > "$WORK/server.log" 2>&1 &
  PIDS=$!
  wait_http "http://127.0.0.1:$HTTP_PORT/ready" || true
  kill -0 "$PIDS" 2>/dev/null || { echo "server exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  RTMP_URLS=(); local first=""
  for i in $(seq 1 "$1"); do
    local id key
    read -r id key < <(new_key "$BIN" "$WORK/data" "bench$i")
    RTMP_URLS+=("rtmp://127.0.0.1:$RTMP_PORT/live/$key"); [ -n "$first" ] || first=$id
  done
  PLAYLIST_URL="http://127.0.0.1:$HTTP_PORT/hls/$first/master.m3u8"
}

stop_ours() { kill "$PIDS" 2>/dev/null || true; wait "$PIDS" 2>/dev/null || true; }

# --- measuring ---------------------------------------------------------------
# measure OUT CMD…: runs CMD (the load tool, or sleep) while sampling the server.
measure() {
  local out=$1; shift
  local c0 t0 b0 b1 c1 t1; c0=$(ticks "$PIDS"); t0=$(date +%s.%N); b0=$(busy)
  "$@" > "$out.json" 2> "$out.err" &
  local vp=$! peak=0 last=0 lt=0 v
  while kill -0 "$vp" 2>/dev/null; do
    last=$(pss "$PIDS"); [ "$last" -gt "$peak" ] && peak=$last
    v=$(ticks "$vp"); [ "$v" -gt "$lt" ] && lt=$v
    sleep 0.5
  done
  wait "$vp" || echo "$(basename "$out"): exit $? ($(tail -n 3 "$out.err"))" >&2
  c1=$(ticks "$PIDS"); t1=$(date +%s.%N); b1=$(busy)
  echo "$c0 $c1 $t0 $t1 $HZ $peak $last $lt $b0 $b1" > "$out.samples"
}

# wait_playlist URL: until the stream's first playlist lists a few segments.
wait_playlist() {
  for _ in $(seq 1 150); do
    local body; body=$(curl -fs "$1" || true)
    if [ -n "$body" ]; then
      local media; media=$(awk '!/^#/ && NF {print; exit}' <<<"$body")
      case "$media" in *.m3u8*) body=$(curl -fs "$(dirname "$1")/$media" || true);; esac
      [ "$(grep -c '^#EXTINF' <<<"$body")" -ge 3 ] && return 0
    fi
    sleep 0.2
  done
  echo "no playlist at $1" >&2; return 1
}

run_phase() {   # SERVER PHASE
  local server=$1 phase=$2 out="$WORK/$1-$2" k=1
  [ "$phase" = publishers ] && k=$PUBLISHERS
  "start_$server" "$k"
  local args=(); for u in "${RTMP_URLS[@]}"; do args+=(--rtmp "$u"); done
  # Long enough for the first segments, the warm-up and the measurement;
  # waited for (not killed) so that its summary says whether it kept real time.
  local total=$((WARM + SECS + 25))
  [ "$phase" != publishers ] && total=$((WARM + SECS + 45))
  "$LOAD" publish "${args[@]}" --flv "$SRC" --loop --duration "${total}s" > "$out.pub.json" 2> "$out.pub.err" &
  local pub=$!
  wait_playlist "$PLAYLIST_URL"
  sleep "$WARM"
  local extra=(); [ "$server" = ours ] && [ "$AUDIO" = 1 ] && extra+=(--audio)
  case "$phase" in
    publishers) measure "$out" sleep "$SECS" ;;
    viewers) measure "$out" "$LOAD" viewers --url "$PLAYLIST_URL" --viewers "$VIEWERS" --duration "${SECS}s" --ramp 2s "${extra[@]}" ;;
    ll) measure "$out" "$LOAD" viewers --url "$PLAYLIST_URL" --viewers "$VIEWERS" --duration "${SECS}s" --ramp 2s --ll "${extra[@]}" ;;
  esac
  if [ "$server" = ours ]; then
    curl -fs "http://127.0.0.1:$HTTP_PORT/metrics" > "$out.metrics" || true
  fi
  wait "$pub" || echo "publishers: exit $? ($(tail -n 3 "$out.pub.err"))" >&2
  "stop_$server"
  sleep 2
}

for phase in $PHASES; do
  for server in $SERVERS; do
    [ "$phase" = ll ] && [ "$server" = nginx ] && continue
    echo "== $server: $phase" >&2
    run_phase "$server" "$phase"
  done
done

python3 bench/vs_nginx_report.py "$WORK" "$PUBLISHERS" "$VIEWERS" "$SECS" "$KBPS" "$AUDIO"
