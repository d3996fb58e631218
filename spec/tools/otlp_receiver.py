#!/usr/bin/python3
"""A minimal OTLP/HTTP (JSON) receiver for the specs: listens on 127.0.0.1
(port 0 = any free one), writes the bound port to PORTFILE, and appends every
POST /v1/traces body to OUT as one JSON line. Answers 200 {} (or 400 when the
body is not JSON, 404 for other paths). Usage: otlp_receiver.py PORTFILE OUT"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            return self.answer(404)
        try:
            doc = json.loads(body)
        except ValueError:
            return self.answer(400)
        doc["_content_type"] = self.headers.get("Content-Type")
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps(doc) + "\n")
        self.answer(200)

    def answer(self, code):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


srv = HTTPServer(("127.0.0.1", 0), Handler)
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, sys.argv[1])
srv.serve_forever()
