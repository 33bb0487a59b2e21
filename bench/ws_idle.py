#!/usr/bin/env python3
"""Memory of idle WebSocket clients: opens N clients of /ws/stream/{id} on a
running server (from loopback source addresses 127.0.1.x, 50 per address, the
server's per-address cap), reads and discards what they are sent (the
1-second `metrics` messages), and prints the server's PSS and RSS before and
after, and their difference per client.

    bench/ws_idle.py PID PORT STREAM_ID [CLIENTS=2000] [SETTLE_SECONDS=5]

Used by bench/ws_idle.sh (which starts a release server); the stream needs
no publisher (its clients get the audience-only `metrics` message).
"""
import base64
import os
import selectors
import socket
import sys
import time


def kib(pid, field, path):
    with open(path.format(pid=pid)) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory(pid):
    return (kib(pid, "Pss", "/proc/{pid}/smaps_rollup"),
            kib(pid, "VmRSS", "/proc/{pid}/status"))


def connect(port, stream, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((f"127.0.1.{1 + n // 50}", 0))
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws/stream/{stream} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    s.setblocking(False)
    return s


def drain(sel, seconds):
    """Reads everything the clients are sent for `seconds`; bytes read."""
    end, got = time.time() + seconds, 0
    while (left := end - time.time()) > 0:
        for key, _ in sel.select(timeout=min(left, 0.5)):
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
            got += len(data)
    return got


def main():
    pid, port, stream = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    settle = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
    # Two warm-up clients (first-use allocations of the WebSocket path).
    warm = [connect(port, stream, 10_000 + i) for i in range(2)]
    time.sleep(1.5)
    pss0, rss0 = memory(pid)
    sel = selectors.DefaultSelector()
    clients = []
    for i in range(n):
        s = connect(port, stream, i)
        sel.register(s, selectors.EVENT_READ)
        clients.append(s)
    got = drain(sel, settle)
    pss1, rss1 = memory(pid)
    alive = len(sel.get_map())
    print(f"{n} idle WebSocket clients ({alive} open after {settle:.0f} s, "
          f"{got // max(alive, 1)} bytes read each): "
          f"PSS {pss0} -> {pss1} KiB ({(pss1 - pss0) / n:.1f} KiB per client), "
          f"RSS {rss0} -> {rss1} KiB ({(rss1 - rss0) / n:.1f} KiB per client)")
    for s in clients + warm:
        s.close()


if __name__ == "__main__":
    main()
