#!/usr/bin/env python3
"""Sends one request (METHOD PATH, body from a file) and, while it is
outstanding, GET /ping one after the other on a keep-alive connection.
Prints JSON: the request's status and body, how many pings were answered
while it was outstanding (counted only once the request was fully sent),
and the slowest ping sent meanwhile in milliseconds, the last one included
(for bench/, never asserted).

usage: ping_during.py PORT METHOD PATH BODY_FILE [MAX_PINGS]"""
import http.client
import json
import sys
import threading
import time

port, method, path, body_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
max_pings = int(sys.argv[5]) if len(sys.argv) > 5 else 100000
with open(body_file, "rb") as f:
    body = f.read()

sent = threading.Event()
done = threading.Event()
result = {}


def post():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.putrequest(method, path)
    c.putheader("Content-Length", str(len(body)))
    c.endheaders()
    c.send(body)
    sent.set()
    r = c.getresponse()
    result["status"] = r.status
    result["body"] = r.read().decode("utf-8", "replace")[:2000]
    done.set()


t = threading.Thread(target=post)
t.start()
sent.wait(120)
p = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
pings, slowest = 0, 0.0
while not done.is_set() and pings < max_pings:
    t0 = time.monotonic()
    p.request("GET", "/ping")
    r = p.getresponse()
    r.read()
    slowest = max(slowest, (time.monotonic() - t0) * 1000)
    # a ping answered after the request's answer proves nothing
    if done.is_set():
        break
    if r.status == 200:
        pings += 1
t.join(120)
result["pings"] = pings
result["slowest_ping_ms"] = round(slowest, 1)
print(json.dumps(result))
