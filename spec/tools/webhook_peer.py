#!/usr/bin/python3
"""An HTTP peer for the http_client specs (standard library only): listens on
127.0.0.1 (port 0 = any free one), writes the bound port to PORTFILE and
appends every request it gets to OUT as a JSON line {method, path, headers
(lower-case names), body (latin-1), n (this path's count), sig_ok}.
Behaviour by path (n counts requests to that path, from 1):
  /ok                     200
  /fail/K/CODE[?ra=V]     CODE (with Retry-After: V; V=date: an HTTP date 1 s ahead) for n <= K, then 200
  /drop/K                 closes the connection without answering for n <= K, then 200
  /hang                   never answers (holds the connection for 60 s)
  /hmac                   200 when X-Signature (or X-Hub-Signature-256) is sha256=HMAC(SECRET, body), else 401
  /hmac_ts                the same over "<X-Timestamp>.<body>"
  /token                  OAuth2: Basic id:secret -> {"access_token": "tok-N", "expires_in": 3600}
  /protected              200 for the current token, 401 otherwise; /revoke makes the current one stale
  /rotating               the same, and each success makes the token stale
  /redirect -> /ok; /loop -> /loop (forever)
  GET /sse                events id 1..TOTAL ("data: {"n": i}"); the first connection drops after 3 events;
                          a connection with Last-Event-ID resumes after it; sends retry: 100
  GET /ndjson             3 JSON lines in chunks, the last without a newline
  GET /poll               {"n": N}
  GET /huge               64 MiB without a newline, then closes
  GET /malformed          a malformed event stream (see below), then closes
  GET /latin1             bytes that are not UTF-8, as lines
  GET /flood              up to 256 MiB of 100-byte lines as fast as the client reads; the bytes written so
                          far go to OUT.flood (every MiB)
Usage: webhook_peer.py PORTFILE OUT [SECRET] [TOTAL]"""
import base64
import email.utils
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = (sys.argv[3] if len(sys.argv) > 3 else "s3cret").encode()
TOTAL = int(sys.argv[4]) if len(sys.argv) > 4 else 10
lock = threading.Lock()
counts = {}
token = {"n": 1}


def count(key):
    with lock:
        counts[key] = counts.get(key, 0) + 1
        return counts[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, n, body, **extra):
        doc = {"method": self.command, "path": self.path, "n": n, "body": body.decode("latin-1"),
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        doc.update(extra)
        with lock, open(sys.argv[2], "a") as f:
            f.write(json.dumps(doc) + "\n")

    def answer(self, code, body=b"{}", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def handle_any(self):
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        n = count(path)
        extra = {}
        if parts[0] in ("hmac", "hmac_ts"):
            signed = body
            if parts[0] == "hmac_ts":
                signed = self.headers.get("X-Timestamp", "").encode() + b"." + body
            want = "sha256=" + hmac.new(SECRET, signed, hashlib.sha256).hexdigest()
            got = self.headers.get("X-Signature") or self.headers.get("X-Hub-Signature-256") or ""
            extra["sig_ok"] = hmac.compare_digest(want, got)
        self.record(n, body, **extra)
        if parts[0] == "ok":
            return self.answer(200)
        if parts[0] == "fail":
            k, code = int(parts[1]), int(parts[2])
            if n <= k:
                hs = []
                if query.startswith("ra="):
                    v = query[3:]
                    if v == "date":
                        v = email.utils.formatdate(time.time() + 1, usegmt=True)
                    hs.append(("Retry-After", v))
                return self.answer(code, b'{"error":"try later"}', hs)
            return self.answer(200)
        if parts[0] == "drop":
            if n <= int(parts[1]):
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            return self.answer(200)
        if parts[0] == "hang":
            time.sleep(60)
            return
        if parts[0] in ("hmac", "hmac_ts"):
            return self.answer(200 if extra["sig_ok"] else 401)
        if parts[0] == "token":
            auth = self.headers.get("Authorization", "")
            if auth != "Basic " + base64.b64encode(b"id:secret").decode():
                return self.answer(401)
            return self.answer(200, json.dumps({"access_token": "tok-%d" % token["n"], "token_type": "bearer",
                                                "expires_in": 3600}).encode())
        if parts[0] in ("protected", "rotating"):
            with lock:
                ok = self.headers.get("Authorization") == "Bearer tok-%d" % token["n"]
                if ok and parts[0] == "rotating":
                    token["n"] += 1
            return self.answer(200 if ok else 401)
        if parts[0] == "revoke":
            token["n"] += 1
            return self.answer(200)
        if parts[0] == "redirect":
            return self.answer(302, b"", [("Location", "/ok")])
        if parts[0] == "loop":
            return self.answer(302, b"", [("Location", "/loop")])
        if parts[0] == "poll":
            return self.answer(200, json.dumps({"n": n}).encode())
        if parts[0] in ("sse", "ndjson", "huge", "malformed", "latin1", "flood"):
            return self.stream(parts[0], n)
        self.answer(404)

    def stream(self, kind, n):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if kind in ("sse", "malformed") else "application/x-ndjson")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.close_connection = True
        w = self.wfile
        try:
            if kind == "sse":
                last = int(self.headers.get("Last-Event-ID") or 0)
                w.write(b": hello\nretry: 100\n\n")
                for i in range(last + 1, TOTAL + 1):
                    w.write(b"id: %d\nevent: tick\ndata: {\"n\": %d}\n\n" % (i, i))
                    w.flush()
                    if n == 1 and i == 3:
                        return   # the first connection drops mid-stream
                w.write(b"data: first line\ndata: second line\n\n")
                time.sleep(30)   # stays open; the spec stops first
            elif kind == "ndjson":
                for chunk in (b'{"a":1}\n{"a"', b':2}\r\n\n', b'{"a":3}'):
                    w.write(chunk)
                    w.flush()
                    time.sleep(0.05)
            elif kind == "huge":
                block = b"x" * 65536
                for _ in range(1024):
                    w.write(block)
            elif kind == "malformed":
                w.write(b"data\n\nevent: e\ndata:no space\nbogus: x\n:comment only\nid: 7\x00x\nretry: abc\n\n"
                        b"data: \xff\xfe not utf-8\n\n" + b"\r\n".join([b"data: crlf", b""]) + b"\r\n"
                        b"data: after\n\n")
                w.flush()
                time.sleep(30)
            elif kind == "flood":
                line = b"y" * 99 + b"\n"
                block = line * 10486
                for k in range(256):
                    w.write(block)
                    with open(sys.argv[2] + ".flood", "w") as f:
                        f.write(str((k + 1) * len(block)))
            elif kind == "latin1":
                w.write(b"caf\xe9\n\xff\xfe\n")
                w.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, sys.argv[1])
srv.serve_forever()
