#!/usr/bin/env bash
# Regenerates the seed files (fuzz/corpus/*/seed-*) from a 1 s FFmpeg capture:
# 128x96 x264 (GOP 1 s) + AAC-LC 48 kHz stereo in FLV, exactly what FFmpeg
# writes. Files the fuzzer found (hash names) are kept. Needs ffmpeg and g++
# (libfuzzer-sys builds libFuzzer even for the example).
set -euo pipefail
cd "$(dirname "$0")"
command -v ffmpeg >/dev/null || { echo "ffmpeg is required: apt-get install -y ffmpeg" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i testsrc2=size=128x96:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 1 \
  -c:v libx264 -preset ultrafast -g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p -b:v 100k \
  -c:a aac -b:a 32k -ac 2 -f flv "$tmp/seed.flv"
rm -f corpus/*/seed-*
cargo run --quiet --example make_seeds -- "$tmp/seed.flv" corpus
echo "corpus: $(find corpus -type f | wc -l) files, $(du -sb corpus | cut -f1) bytes"
