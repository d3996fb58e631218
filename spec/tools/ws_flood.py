#!/usr/bin/env python3
"""A WebSocket client that sends and does not read (a plain socket: client
libraries read as they go), to see what the server keeps for it.

usage: ws_flood.py PORT PATH [--kind binary|text|ping] [--size BYTES] [--count N]
                   [--pid PID] [--stall SECONDS] [--await-metric TEXT]
Upgrades PATH, then sends N masked frames of SIZE bytes without reading,
until all are sent or the socket took nothing for --stall seconds (2 by
default: the server stopped reading). Then GETs /ping on a second
connection, and with --await-metric waits (up to 30 s) until /metrics
contains TEXT. Only then reads what the server sent (until it closes or is
silent for 3 s). Prints one JSON line:
{"sent": k, "stalled": bool, "max_rss_kib": peak VmRSS of PID while sending,
 "ping": status of /ping, "metric": bool, "frames": data frames read,
 "pongs": k, "close": close code read or null}
"""
import json
import socket
import struct
import sys
import time

from flood import close_code, get, send_without_reading, ws_frames

port, path = int(sys.argv[1]), sys.argv[2]
opts = {"--kind": "binary", "--size": "262144", "--count": "1000", "--pid": "0", "--stall": "2", "--await-metric": ""}
args = sys.argv[3:]
for i in range(0, len(args), 2):
    opts[args[i]] = args[i + 1]
kind, size, count = opts["--kind"], int(opts["--size"]), int(opts["--count"])
pid, stall = int(opts["--pid"]), float(opts["--stall"])


s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % path).encode())
head = b""
while b"\r\n\r\n" not in head:
    chunk = s.recv(1)
    if not chunk:
        break
    head += chunk
if not head.startswith(b"HTTP/1.1 101 "):
    print(json.dumps({"error": head.decode("latin-1")}))
    sys.exit(1)

opcode, payload = {"binary": (0x2, b"\xff"), "text": (0x1, b"a"), "ping": (0x9, b"p")}[kind]
payload = payload * size
if size < 126:
    header = struct.pack("!BBI", 0x80 | opcode, 0x80 | size, 0)
elif size < 65536:
    header = struct.pack("!BBHI", 0x80 | opcode, 0x80 | 126, size, 0)
else:
    header = struct.pack("!BBQI", 0x80 | opcode, 0x80 | 127, size, 0)
frame = header + payload   # mask key 0: the payload goes as is
sent, stalled, max_rss = send_without_reading(s, frame, count, pid, stall)
ping = get(port, "/ping")[0]
metric = False
if opts["--await-metric"]:
    end = time.time() + 30
    while time.time() < end and not metric:
        metric = opts["--await-metric"] in get(port, "/metrics")[1]
        if not metric:
            time.sleep(0.1)

# What the server sent: data frames, pongs, and the close frame.
frames, pongs, close, buf = 0, 0, None, b""
s.setblocking(True)
s.settimeout(3)
try:
    while close is None:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got, buf = ws_frames(buf + chunk)
        for op, payload in got:
            if op == 0x8:
                close = close_code(payload)
            elif op == 0xA:
                pongs += 1
            elif op in (0x0, 0x1, 0x2):
                frames += 1
except (socket.timeout, OSError):
    pass
print(json.dumps({"sent": sent, "stalled": stalled, "max_rss_kib": max_rss, "ping": ping, "metric": metric,
                  "frames": frames, "pongs": pongs, "close": close}))
