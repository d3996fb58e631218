#!/usr/bin/env python3
"""Slowloris: sends bytes one at a time, to see when the server gives up.

usage: trickle.py PORT EVERY TEXT [FIRST]
Sends FIRST at once if given, then TEXT one byte every EVERY seconds (Python
escapes such as \\r\\n are decoded in both), watching the socket between
bytes; stops at the server's first answer or close, or when every byte is
sent and 3 s more pass. Prints one JSON line: {"sent": bytes of TEXT sent
before the server answered or closed, "total": len(TEXT), "status": HTTP
status answered or null, "closed": bool}
"""
import json
import select
import socket
import sys
import time

def unescape(arg):
    return arg.encode("latin-1").decode("unicode_escape").encode("latin-1")


port, every, text = int(sys.argv[1]), float(sys.argv[2]), unescape(sys.argv[3])
first = unescape(sys.argv[4]) if len(sys.argv) > 4 else b""

s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(first)
sent, answer, closed = 0, b"", False


def watch(seconds):
    """Reads what comes within seconds; True once the server answered or closed."""
    global answer, closed
    end = time.time() + seconds
    while True:
        left = end - time.time()
        if left <= 0:
            return False
        if not select.select([s], [], [], left)[0]:
            return False
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            closed = True
            return True
        answer += data
        if b"\r\n\r\n" in answer:
            # The answer's head: read what follows until the server closes.
            s.settimeout(3)
            try:
                while True:
                    more = s.recv(65536)
                    if not more:
                        closed = True
                        break
                    answer += more
            except socket.timeout:
                pass
            except OSError:
                # A reset is a close too: a server that closes with bytes
                # of ours unread (the byte sent as its timer fired) resets.
                closed = True
            return True


done = False
for b in text:
    try:
        s.sendall(bytes([b]))
    except OSError:
        closed = True
        break
    sent += 1
    if watch(every):
        done = True
        break
if not done and not closed:
    watch(3)
status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
print(json.dumps({"sent": sent, "total": len(text), "status": status, "closed": closed}))
