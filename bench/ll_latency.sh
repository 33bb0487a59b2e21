#!/usr/bin/env bash
# Glass-to-glass latency matrix (issue 10): hls.js, dash.js and Shaka in
# headless Chromium, for each part duration × rendition, read from the
# pictures the players present (crates/streaming-server/tests/e2e_latency.rs
# and web/tests/latency.mjs; definitions of latency, stall and first frame in
# the test's module docs).
#
# Each cell is one run of the e2e_latency test with its benchmark knobs:
#   LATENCY_PART_MS=<part>    media.part_duration_ms
#   LATENCY_SOURCE=<WxH>      the published picture (clock publisher, x264
#                             ultrafast, 2 s GOP, 30 fps)
#   LATENCY_QUALITY=<q>       `source`: transcoder off, the players pinned to
#                             the source; `360p`: FFmpeg makes that one rung
#                             and the players are pinned to it (ABR off)
# One server (in the test process, on 127.0.0.1 with ephemeral ports), one
# live stream and one clock publisher per cell; the players run one after the
# other (hls.js 20 s window, dash.js 12 s, Shaka 6 s, each after a 4 s
# warm-up from the moment the pin took effect). Publish → first frame is
# measured at the start of each cell by an hls.js and a dash.js page opened
# before the publish (unpinned, on the source).
#
#   [PROFILE=release] [PARTS="200 500"] [QUALITIES="source 360p"]
#   [SOURCE=1280x720] [CELL_TIMEOUT=420] bench/ll_latency.sh
#
# Default matrix: parts of 200 and 500 ms (either side of the default 300 ms)
# × the source and a 360p FFmpeg rendition of a 1280x720 source (a rung is
# made only below the source's height). Prints one table on stdout (player ×
# part × rendition → glass-to-glass median and p95, stalls (≥ 0.3 s) and the
# longest, `waiting` events, frames in the window; then per cell publish →
# first frame and the rendition's behind_source_ms) and one JSON line per
# cell; the test's log of each cell stays in a temporary directory, named at
# the end. Needs what the
# test needs (node + web/node_modules, /usr/bin/chromium, ffmpeg); builds the
# test binary with PROFILE (the server runs in the test process: a release
# test build is a release server; PROFILE=dev for a quick smoke run). Each
# cell is bounded (CELL_TIMEOUT s, then killed); a failed cell is reported
# as such and the others still run. Idempotent: every cell starts from
# scratch (its own server, data dir, stream, publisher, Chromium profiles) and
# nothing is read back from an earlier run.
# The figures depend on the machine's load (players, publisher, server and
# FFmpeg share its cores): run it on a quiet machine, and compare cells of
# one run.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
PARTS=${PARTS:-"200 500"}
QUALITIES=${QUALITIES:-"source 360p"}
SOURCE=${SOURCE:-1280x720}
CELL_TIMEOUT=${CELL_TIMEOUT:-420}

TEST=(cargo test --profile "$PROFILE" -p streaming-server --test e2e_latency)
"${TEST[@]}" --no-run >&2
WORK=$(mktemp -d -t ll_latency.XXXXXX)
: > "$WORK/cells.jsonl"

for part in $PARTS; do
  for q in $QUALITIES; do
    cell="part ${part} ms, ${q}"
    log="$WORK/part${part}-${q}.log"
    echo "== $cell (source $SOURCE) …" >&2
    t0=$(date +%s)
    status=0
    LATENCY_PART_MS=$part LATENCY_QUALITY=$q LATENCY_SOURCE=$SOURCE \
      timeout --kill-after=15 "$CELL_TIMEOUT" \
      "${TEST[@]}" glass_to_glass_in_chromium -- --exact --nocapture > "$log" 2>&1 || status=$?
    echo "   exit $status after $(( $(date +%s) - t0 )) s; $(grep -m1 '^latency: LATENCY' "$log" | cut -c1-200 || true)" >&2
    python3 - "$log" "$part" "$q" "$status" >> "$WORK/cells.jsonl" <<'PY'
import json, sys
log, part, q, status = sys.argv[1:]
cell = None
for line in open(log, errors="replace"):
    if line.startswith("latency-json: "):
        cell = json.loads(line[len("latency-json: "):])
if cell is None:
    cell = {"part_ms": int(part), "quality": q, "players": {}}
cell["exit"] = int(status)
cell["log"] = log
print(json.dumps(cell))
PY
  done
done

python3 - "$WORK/cells.jsonl" "$PROFILE" "$SOURCE" <<'PY'
import json, sys
path, profile, source = sys.argv[1:]
cells = [json.loads(l) for l in open(path) if l.strip()]

def num(v, fmt="{:.3f}"):
    return "?" if v is None else fmt.format(v)

print(f"glass-to-glass, seconds (profile {profile}, source {source}, 2 s GOP, 30 fps)")
print(f"{'player':8} {'part':>5} {'rendition':9} {'median':>7} {'p95':>7} {'stalls':>6} {'longest':>7} {'waiting':>7} {'frames':>6}  note")
for player in ["hls.js", "dash.js", "shaka"]:
    for c in cells:
        p = (c.get("players") or {}).get(player) or {}
        note = []
        if c.get("exit"):
            note.append(f"run exit {c['exit']}")
        if p and p.get("ok") is not True:
            note.append("no result")
        pin = p.get("pinned") or {}
        if pin and pin.get("framesOnOther"):
            note.append(f"{pin['framesOnOther']} frames off the pin")
        print(f"{player:8} {c['part_ms']:>5} {c['quality']:9} {num(p.get('median')):>7} {num(p.get('p95')):>7} "
              f"{num(p.get('stalls'), '{}'):>6} {num(p.get('longestStall')):>7} {num(p.get('waiting'), '{}'):>7} "
              f"{num(p.get('samples'), '{}'):>6}  {'; '.join(note)}")
print()
print("publish → first frame (ms, unpinned pages opened before the publish) and the rendition's delay")
print(f"{'part':>5} {'rendition':9} {'hls.js':>7} {'dash.js':>7} {'behind_source_ms':>16}  served")
for c in cells:
    ff = c.get("first_frame_ms") or {}
    behind = "-" if c.get("quality") == "source" else num(c.get("behind_source_ms"), "{}")
    print(f"{c['part_ms']:>5} {c['quality']:9} {num(ff.get('hls.js'), '{}'):>7} {num(ff.get('dash.js'), '{}'):>7} "
          f"{behind:>16}  {c.get('served', '?')}")
PY
cat "$WORK/cells.jsonl"
echo "logs: $WORK" >&2
