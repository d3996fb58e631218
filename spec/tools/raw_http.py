#!/usr/bin/env python3
"""Sends raw bytes to an HTTP server and prints everything it answers.

usage: raw_http.py PORT [--pause SECONDS] PART [PART ...]
Each PART is sent as is (Python escapes such as \\r\\n are decoded); --pause
waits between parts. Reads until the server closes or 3 s pass in silence.
"""
import socket
import sys
import time

port = int(sys.argv[1])
parts, pause = [], 0.0
args = sys.argv[2:]
i = 0
while i < len(args):
    if args[i] == "--pause":
        pause = float(args[i + 1])
        i += 2
        continue
    parts.append(args[i].encode("latin-1").decode("unicode_escape").encode("latin-1"))
    i += 1

s = socket.create_connection(("127.0.0.1", port), timeout=3)
for k, p in enumerate(parts):
    if k and pause:
        time.sleep(pause)
    try:
        s.sendall(p)
    except OSError:
        break
out = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
except socket.timeout:
    out += b"\n<silence>"
except OSError:
    pass
sys.stdout.buffer.write(out)
