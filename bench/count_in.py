#!/usr/bin/env python3
"""Waits until the input_received counter of a sluice (or Benthos) /metrics
reaches N; prints the last count. One process polling over one kept-alive
connection: a curl started 50-100 times a second took a third of a core
from the process it measured on a 2-core machine, which the raw clients it
is compared with never paid.

usage: count_in.py PORT N SECONDS [PID [STILL]]
  stops at N, after SECONDS, once process PID is gone, or once the count
  stood still for STILL seconds after it started (core NATS drops what a
  slow consumer missed: that never comes).
"""
import http.client
import os
import sys
import time

port, n, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
pid = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "0" else 0
still = float(sys.argv[5]) if len(sys.argv) > 5 else 0


def count(conn):
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    got = 0
    for line in body.splitlines():
        if line.startswith("input_received"):
            got += int(float(line.rsplit(" ", 1)[1]))
    return got


end = time.monotonic() + limit
got, last, since, conn = 0, -1, time.monotonic(), None
while time.monotonic() < end:
    try:
        conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        got = count(conn)
    except (OSError, http.client.HTTPException, ValueError):
        conn = None
    if got >= n:
        break
    if pid:
        try:
            os.kill(pid, 0)
        except OSError:
            break
    now = time.monotonic()
    if got != last:
        last, since = got, now
    elif still and got > 0 and now - since >= still:
        break
    time.sleep(0.005)
print(got)
