#!/usr/bin/env bash
# FFmpeg's speed (× real time) for the default ladder, with the exact flags the
# transcoder uses (crates/streaming-transcode/src/command.rs), from a 1080p30 and a
# 720p30 source, as fast as it can go (no -re): speed ≥ 1 means it keeps up live.
#   bench/ffmpeg_ladder_speed.sh [SECONDS=20]
set -euo pipefail
SECS=${1:-20}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
enc() { ffmpeg -v error -y -f lavfi -i "testsrc2=size=$1:rate=30" -t "$SECS" -c:v libx264 -preset veryfast \
  -b:v "$2" -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p -an -f flv "$W/$3.flv"; }
enc 1920x1080 6M src1080; enc 1280x720 3M src720
rung() { # name w h kbps
  echo -map 0:v:0 -vf "scale=$2:$3:flags=bicubic" -c:v libx264 -preset veryfast -tune zerolatency \
    -profile:v main -pix_fmt yuv420p -b:v "$4k" -maxrate "$(( $4 * 11 / 10 ))k" -bufsize "$(( $4 * 2 ))k" \
    -g 60 -sc_threshold 0 -force_key_frames source -fps_mode passthrough -enc_time_base -1 -an \
    -flvflags no_duration_filesize -f flv "$W/$1.out.flv"
}
run() { # label input rungs...
  local label=$1 input=$2; shift 2
  local t0=$(date +%s.%N)
  # shellcheck disable=SC2046
  ffmpeg -y -hide_banner -nostdin -loglevel error -analyzeduration 0 -probesize 32768 -copyts -f flv -i "$input" "$@"
  local t1=$(date +%s.%N)
  python3 -c "print('$label: speed %.2fx (%d s of video in %.1f s)' % ($SECS/($t1-$t0), $SECS, $t1-$t0))"
}
run "1080p30 source -> 720p + 480p" "$W/src1080.flv" $(rung 720p 1280 720 5000) $(rung 480p 854 480 2000)
run "720p30 source  -> 480p" "$W/src720.flv" $(rung 480p 854 480 2000)
