#!/usr/bin/python3
"""Publishes {"data": {"n": i}} to a sluice stream, one request at a time,
and prints "OFFSET N" for every publish the server acknowledged (flushed at
once), until COUNT publishes or the first error (the server went away).

usage: publisher.py URL COUNT
"""
import json
import sys
import urllib.request

url, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    body = json.dumps({"event": "n", "data": {"n": i}}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            off = json.load(r)["offset"]
    except Exception:
        break
    print(off, i, flush=True)
