#!/usr/bin/env python3
"""A client that asks for something and reads it slowly, or never (a plain
socket with a small receive buffer: client libraries read as they go), to
see how long the server keeps it.

usage: slow_reader.py PORT PATH [--ws] [--rcvbuf BYTES] [--read BYTES --every SECONDS]
                      [--await-metric TEXT] [--deadline SECONDS]
GETs PATH (--ws: as a WebSocket upgrade). Without --read it reads nothing
until /metrics contains TEXT (polled up to --deadline seconds, 60 by
default), then reads what is left until the server closes or is silent for
3 s. With --read it takes BYTES every SECONDS (a steady reader slower than
the server) until the server closes or the
whole Content-Length is read (or --deadline passes). Prints one JSON line:
{"status": HTTP status, "content_length": n or null, "body": body bytes read,
 "end": "eof" | "reset" | "silence" | "complete" | "deadline",
 "metric": bool, "seconds": time from the request to the end,
 "frames": WebSocket data frames read whole, "close": close code read or null}
"""
import json
import socket
import sys
import time

from flood import close_code, get, ws_frames

port, path = int(sys.argv[1]), sys.argv[2]
opts = {"--rcvbuf": "4096", "--read": "0", "--every": "0", "--await-metric": "", "--deadline": "60"}
ws = False
args = sys.argv[3:]
i = 0
while i < len(args):
    if args[i] == "--ws":
        ws = True
        i += 1
        continue
    opts[args[i]] = args[i + 1]
    i += 2
chunk, every, deadline = int(opts["--read"]), float(opts["--every"]), float(opts["--deadline"])

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# Before connecting, so that the window announced stays small.
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(opts["--rcvbuf"]))
s.connect(("127.0.0.1", port))
if ws:
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % path).encode())
else:
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
start = time.time()

metric = False
if opts["--await-metric"]:
    end = start + deadline
    while time.time() < end and not metric:
        metric = opts["--await-metric"] in get(port, "/metrics")[1]
        if not metric:
            time.sleep(0.1)

buf, how, content_length, head_len = b"", None, None, None
s.settimeout(3)
end = start + deadline
try:
    while how is None:
        if chunk and time.time() > end:
            how = "deadline"
            break
        # One period's share (all there is without --read).
        data, want = b"", chunk or (1 << 20)
        if chunk and content_length is not None:
            want = min(want, head_len + content_length - len(buf))
        while len(data) < want:
            more = s.recv(want - len(data))
            if not more:
                break
            data += more
            if not chunk:
                break
        if not data:
            how = "eof"
            break
        buf += data
        if head_len is None and b"\r\n\r\n" in buf:
            head, _ = buf.split(b"\r\n\r\n", 1)
            head_len = len(head) + 4
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    content_length = int(v)
        if chunk and content_length is not None and len(buf) - head_len >= content_length:
            how = "complete"
            break
        if chunk:
            time.sleep(every)
except socket.timeout:
    how = "silence"
except ConnectionResetError:
    how = "reset"
seconds = time.time() - start

status = int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/1.1 ") else None
body = buf[head_len:] if head_len is not None else b""

# WebSocket frames after the 101: data frames read whole, and a close frame.
got = ws_frames(body)[0] if ws and status == 101 else []
frames = sum(1 for op, _ in got if op in (0x0, 0x1, 0x2))
close = next((close_code(p) for op, p in got if op == 0x8), None)

print(json.dumps({"status": status, "content_length": content_length, "body": len(body), "end": how,
                  "metric": metric, "seconds": round(seconds, 3), "frames": frames, "close": close}))
