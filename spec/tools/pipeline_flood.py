#!/usr/bin/env python3
"""Pipelines many requests on one socket behind a request that waits, and
counts the answers (a plain socket: no client library would pipeline so).

usage: pipeline_flood.py PORT FIRST_PATH N [--pid PID] [--path /ping] [--deadline SECONDS] [--no-read] [--half-close]
Sends `GET FIRST_PATH`, then N `GET /ping` on the same connection, all at once
(a writer thread), while reading every answer. Prints one JSON line:
{"answers": k, "first": status of the first answer, "pongs": k,
 "statuses": {status: count}, "max_rss_kib": peak VmRSS of PID seen while it ran}
Bounded: gives up after --deadline seconds (60 by default). With
--half-close the writer shuts its side down once everything is sent.
With --no-read it never reads: it sends until the socket took nothing for
2 s (the server stopped reading) or all N are sent, GETs /ping on a second
connection, and prints {"sent": k, "stalled": bool, "max_rss_kib": ..., "ping": status}.
"""
import json
import re
import select
import socket
import sys
import threading
import time

from flood import get, rss_kib, send_without_reading

port, first, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
args = sys.argv[4:]
pid, path, deadline = None, "/ping", 60.0
no_read, half_close = "--no-read" in args, "--half-close" in args
args = [a for a in args if a not in ("--no-read", "--half-close")]
for i in range(0, len(args), 2):
    if args[i] == "--pid":
        pid = int(args[i + 1])
    elif args[i] == "--path":
        path = args[i + 1]
    elif args[i] == "--deadline":
        deadline = float(args[i + 1])


s = socket.create_connection(("127.0.0.1", port), timeout=5)
# Blocking: the writer may wait long while the server (rightly) reads no
# further; the reader waits with select instead of a socket timeout.
s.settimeout(None)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ping = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
head = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % first).encode()
stop = threading.Event()


def flood_without_reading():
    s.sendall(head)
    sent, stalled, max_rss = send_without_reading(s, ping, n, pid)
    status = get(port, "/ping")[0]
    print(json.dumps({"sent": sent, "stalled": stalled, "max_rss_kib": max_rss, "ping": status}))
    sys.exit(0)


if no_read:
    flood_without_reading()


def writer():
    try:
        s.sendall(head)
        batch = ping * 1000
        left = n
        while left > 0 and not stop.is_set():
            k = min(left, 1000)
            s.sendall(batch if k == 1000 else ping * k)
            left -= k
        if half_close:
            s.shutdown(socket.SHUT_WR)
    except OSError:
        pass


t = threading.Thread(target=writer, daemon=True)
t.start()

status_re = re.compile(rb"HTTP/1\.1 (\d{3}) ")
length_re = re.compile(rb"\r\nContent-Length: (\d+)\r\n")
statuses, first_status, answers, pongs = {}, None, 0, 0
max_rss = rss_kib(pid) if pid else 0
buf = b""
end = time.time() + deadline
last_rss = 0.0
while answers < n + 1 and time.time() < end:
    chunk = None
    try:
        if select.select([s], [], [], 1.0)[0]:
            chunk = s.recv(1 << 20)
    except OSError:
        break
    if chunk == b"":
        break
    if chunk:
        buf += chunk
    # Whole answers only: each ends with its Content-Length body.
    off = 0
    while True:
        m = status_re.match(buf, off)
        if not m:
            break
        he = buf.find(b"\r\n\r\n", off)
        if he < 0:
            break
        cl = length_re.search(buf, off, he + 2)
        blen = int(cl.group(1)) if cl else 0
        if len(buf) < he + 4 + blen:
            break
        code = int(m.group(1))
        body = buf[he + 4 : he + 4 + blen]
        off = he + 4 + blen
        if first_status is None:
            first_status = code
        answers += 1
        statuses[code] = statuses.get(code, 0) + 1
        if body == b"pong":
            pongs += 1
    buf = buf[off:]
    if pid and time.time() - last_rss > 0.05:
        max_rss = max(max_rss, rss_kib(pid))
        last_rss = time.time()
stop.set()
if pid:
    max_rss = max(max_rss, rss_kib(pid))
print(json.dumps({"answers": answers, "first": first_status, "pongs": pongs,
                  "statuses": {str(k): v for k, v in statuses.items()}, "max_rss_kib": max_rss}))
