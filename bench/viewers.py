#!/usr/bin/env python3
"""Simulated HLS viewers for measurements (stdlib only; 127.0.0.1 only).

Each viewer polls the master and media playlists like a player (about once a
target duration), fetches every new video and audio segment once, and stops
after --seconds. Prints one JSON summary line.

    python3 bench/viewers.py http://127.0.0.1:8080/hls/ID/master.m3u8 --viewers 50 --seconds 30
"""
import argparse, json, threading, time, urllib.request, urllib.parse

def fetch(url, stats):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
        stats["requests"] += 1
        stats["bytes"] += len(body)
        stats["latency"].append(time.monotonic() - t0)
        return body
    except Exception:
        stats["errors"] += 1
        return None

def viewer(master_url, deadline, stats):
    master = fetch(master_url, stats)
    if master is None:
        return
    lines = master.decode().splitlines()
    media = [l for l in lines if l and not l.startswith("#")]
    media += [l.split('URI="')[1].split('"')[0] for l in lines if l.startswith("#EXT-X-MEDIA") and 'URI="' in l]
    playlists = [urllib.parse.urljoin(master_url, m) for m in media]
    seen = set()
    while time.monotonic() < deadline:
        for pl in playlists:
            text = fetch(pl, stats)
            if text is None:
                continue
            for l in text.decode().splitlines():
                if l.startswith("#EXT-X-MAP"):
                    u = urllib.parse.urljoin(pl, l.split('URI="')[1].split('"')[0])
                elif l and not l.startswith("#"):
                    u = urllib.parse.urljoin(pl, l)
                else:
                    continue
                if u not in seen:
                    seen.add(u)
                    fetch(u, stats)
        time.sleep(1.0)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("master")
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    a = ap.parse_args()
    host = urllib.parse.urlparse(a.master).hostname
    assert host in ("127.0.0.1", "localhost", "::1"), "load goes to this machine only"
    deadline = time.monotonic() + a.seconds
    all_stats = []
    threads = []
    for _ in range(a.viewers):
        s = {"requests": 0, "bytes": 0, "errors": 0, "latency": []}
        all_stats.append(s)
        t = threading.Thread(target=viewer, args=(a.master, deadline, s), daemon=True)
        t.start(); threads.append(t)
    for t in threads:
        t.join(a.seconds + 10)
    lat = sorted(x for s in all_stats for x in s["latency"])
    pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None
    print(json.dumps({
        "viewers": a.viewers, "seconds": a.seconds,
        "requests": sum(s["requests"] for s in all_stats),
        "errors": sum(s["errors"] for s in all_stats),
        "megabytes": round(sum(s["bytes"] for s in all_stats) / 1e6, 1),
        "latency_ms_p50": pct(0.5), "latency_ms_p99": pct(0.99),
    }))

if __name__ == "__main__":
    main()
