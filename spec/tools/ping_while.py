#!/usr/bin/env python3
"""GET /ping one after the other on a keep-alive connection until FILE has N
lines (or SECS seconds pass). Prints JSON: pings answered before FILE was
complete, the slowest and the 99th percentile in ms (for bench/ and loose
spec bounds), and the lines FILE had when the first and last pings were
answered (proof the pings overlapped the work).

usage: ping_while.py PORT FILE N [SECS]"""
import http.client
import json
import sys
import time

port, path, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
secs = float(sys.argv[4]) if len(sys.argv) > 4 else 120


def lines():
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
times, first, last, reconnects = [], None, None, []
end = time.monotonic() + secs
while time.monotonic() < end:
    n = lines()
    if n >= want:
        break
    t0 = time.monotonic()
    try:
        c.request("GET", "/ping")
        r = c.getresponse()
        r.read()
    except (http.client.HTTPException, OSError) as e:
        # a server may close a kept-alive connection this process left idle
        # (a loaded machine can stall it for seconds): a new one, counted
        reconnects.append(type(e).__name__)
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        continue
    times.append((time.monotonic() - t0) * 1000)
    if first is None:
        first = n
    last = n
    time.sleep(0.002)
times.sort()
print(json.dumps({"pings": len(times), "slowest_ms": times[-1] if times else None,
                  "p99_ms": times[int(len(times) * 0.99)] if times else None,
                  "lines_at_first": first, "lines_at_last": last, "lines": lines(),
                  "reconnects": reconnects}))
