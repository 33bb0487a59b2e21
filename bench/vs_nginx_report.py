"""The table of bench/vs_nginx.sh: one column per server, one row per figure.

Reads WORK/{server}-{phase}.{samples,json,pub.json,metrics} and prints the
table on stderr and one JSON object on stdout.
"""

import json
import os
import re
import sys

work, publishers, viewers, secs, kbps, audio = sys.argv[1:]
SERVERS = ["nginx", "ours"]
PHASES = ["publishers", "viewers", "ll"]


def load_json(path):
    try:
        text = open(path).read().strip()
        return json.loads(text.splitlines()[-1]) if text else None
    except (OSError, ValueError):
        return None


def samples(path):
    try:
        c0, c1, t0, t1, hz, peak, last, lt, b0a, b0t, b1a, b1t = open(path).read().split()
    except (OSError, ValueError):
        return None
    secs = float(t1) - float(t0)
    busy = float(b1a) - float(b0a)
    total = float(b1t) - float(b0t)
    ncpu = os.cpu_count() or 1
    return {
        "server_cpu_percent": round(100 * (float(c1) - float(c0)) / float(hz) / secs, 1),
        "server_peak_pss_mib": round(int(peak) / 1024, 1),
        "server_end_pss_mib": round(int(last) / 1024, 1),
        "load_tool_cpu_percent": round(100 * float(lt) / float(hz) / secs, 1),
        # Whole machine, in % of one core (200 = both cores busy).
        "machine_busy_percent": round(100 * ncpu * busy / total, 1) if total else None,
        "seconds": round(secs, 1),
    }


def store_bytes(path):
    """Bytes of media the server holds (streaming_store_bytes), if exported."""
    try:
        for line in open(path):
            m = re.match(r"^streaming_store_bytes(?:\{[^}]*\})?\s+([0-9.e+]+)", line)
            if m:
                return float(m.group(1))
    except OSError:
        pass
    return None


results = {}
for server in SERVERS:
    for phase in PHASES:
        base = f"{work}/{server}-{phase}"
        s = samples(base + ".samples")
        if s is None:
            continue
        r = dict(s)
        load = load_json(base + ".json")
        if load and "requests" in load:
            lat = load.get("latency_ms", {})
            r["segment_ms"] = lat.get("segment")
            r["playlist_ms"] = lat.get("playlist")
            r["part_ms"] = lat.get("part")
            r["playlist_blocking_ms"] = lat.get("playlist_blocking")
            r["startup_ms"] = load.get("timings_ms", {}).get("startup")
            r["requests"] = load["requests"]["total"]
            r["errors"] = load["errors"]["total"]
            r["error_kinds"] = load["errors"].get("by_kind", {})
            v = load.get("viewers", {})
            r["segments_per_viewer"] = [v.get("min_segments"), v.get("max_segments")]
            r["skipped_segments"] = v.get("skipped_segments")
            if "ll" in load:
                r["ll_keeping_up"] = load["ll"].get("keeping_up")
                r["ll_behind_s"] = load["ll"].get("behind_s")
        pub = load_json(base + ".pub.json")
        if pub:
            p = pub["publishers"]
            r["publishers"] = p["count"]
            r["publisher_max_lag_ms"] = p["max_lag_ms"]
            r["publisher_errors"] = pub["errors"]["total"]
        sb = store_bytes(base + ".metrics")
        if sb is not None:
            r["store_mib"] = round(sb / 1048576, 1)
        results[f"{server}-{phase}"] = r


def cell(server, phase, f):
    r = results.get(f"{server}-{phase}")
    if r is None:
        return "-"
    try:
        v = f(r)
    except (KeyError, TypeError):
        return "-"
    return "-" if v is None else str(v)


def pct(name, *qs):
    return lambda r: " / ".join(str(r[name][q]) for q in qs)


rows = [
    ("publishers", f"{publishers} publishers: server CPU (% of one core)", lambda r: r["server_cpu_percent"]),
    ("publishers", "  server PSS peak (MiB)", lambda r: r["server_peak_pss_mib"]),
    ("publishers", "  media held in memory (MiB)", lambda r: r.get("store_mib")),
    ("publishers", "  publisher max lag (ms) / errors", lambda r: f"{r['publisher_max_lag_ms']} / {r['publisher_errors']}"),
    ("publishers", "  whole machine busy (of 200)", lambda r: r["machine_busy_percent"]),
    ("viewers", f"{viewers} viewers: server CPU", lambda r: r["server_cpu_percent"]),
    ("viewers", "  server PSS peak (MiB)", lambda r: r["server_peak_pss_mib"]),
    ("viewers", "  segment GET p50 / p99 (ms)", pct("segment_ms", "p50", "p99")),
    ("viewers", "  playlist GET p50 / p99 (ms)", pct("playlist_ms", "p50", "p99")),
    ("viewers", "  startup p50 / p99 (ms)", pct("startup_ms", "p50", "p99")),
    ("viewers", "  requests / errors", lambda r: f"{r['requests']} / {r['errors']}"),
    ("viewers", "  segments per viewer min / max, skipped", lambda r: f"{r['segments_per_viewer'][0]} / {r['segments_per_viewer'][1]}, {r['skipped_segments']}"),
    ("viewers", "  load tool CPU", lambda r: r["load_tool_cpu_percent"]),
    ("viewers", "  whole machine busy (of 200)", lambda r: r["machine_busy_percent"]),
    ("ll", f"{viewers} LL-HLS viewers: server CPU", lambda r: r["server_cpu_percent"]),
    ("ll", "  server PSS peak (MiB)", lambda r: r["server_peak_pss_mib"]),
    ("ll", "  part GET p50 / p99 (ms)", pct("part_ms", "p50", "p99")),
    ("ll", "  blocking reload p50 / p99 (ms)", pct("playlist_blocking_ms", "p50", "p99")),
    ("ll", "  keeping up / errors", lambda r: f"{r['ll_keeping_up']} / {r['errors']}"),
    ("ll", "  load tool CPU", lambda r: r["load_tool_cpu_percent"]),
]

present = [s for s in SERVERS if any(k.startswith(s + "-") for k in results)]
names = {"nginx": "nginx-rtmp (1 worker)", "ours": "streaming-server"}
w0 = max(len(r[1]) for r in rows) + 2
print(f"{'':{w0}}" + "".join(f"{names[s]:>24}" for s in present), file=sys.stderr)
for phase, label, f in rows:
    if not any(f"{s}-{phase}" in results for s in present):
        continue
    print(f"{label:{w0}}" + "".join(f"{cell(s, phase, f):>24}" for s in present), file=sys.stderr)
for k, r in results.items():
    if r.get("error_kinds"):
        print(f"{k} errors: {r['error_kinds']}", file=sys.stderr)
print(json.dumps({
    "publishers": int(publishers), "viewers": int(viewers), "seconds": int(secs),
    "kbps": int(kbps), "ours_follow_audio": audio == "1", "results": results,
}))
