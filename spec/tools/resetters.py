#!/usr/bin/env python3
"""Clients that leave in the middle of a broadcast: ROUNDS times, CONNS SSE
(or --ws WebSocket) connections to PATH each read until they have had some
of the broadcast, then all reset at once (SO_LINGER 0: an RST, no FIN), so
that the server meets the reset while writing to them.

usage: resetters.py PORT PATH CONNS ROUNDS [--ws]
Prints one JSON line: {"rounds": rounds done, "read": connections that got
broadcast bytes before resetting}. Every wait is bounded (10 s per read).
"""
import base64
import json
import os
import socket
import struct
import sys

port, path, conns, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ws = "--ws" in sys.argv[5:]
done = read = 0
for _ in range(rounds):
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if ws:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        else:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n" % path).encode())
        socks.append(s)
    for s in socks:
        got = b""
        try:
            while len(got) < 4096:   # past the head: some broadcast bytes
                b = s.recv(65536)
                if not b:
                    break
                got += b
        except OSError:
            pass
        read += len(got) >= 4096
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    done += 1
print(json.dumps({"rounds": done, "read": read}))
