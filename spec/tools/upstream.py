#!/usr/bin/env python3
"""An HTTP/1.1 upstream for specs and benchmarks that misbehaves on request.

  upstream.py PORT     (0: any free port; "ready PORT" is printed once it listens)
  upstream.py PORT CERT KEY [CERT KEY ...]   the same over TLS with the first
                       certificate; each further one on a port of its own and
                       a listener that never answers a handshake (it never
                       accepts): "tls MUTE PORT2 ..." is printed before "ready"

Paths (query ?ms=N etc.):
  /delay?ms=N     200 {"n":..., "inflight":...} after N ms (counts requests in flight)
  /gate?file=F    200 once file F exists (looked for every 20 ms, up to 120 s): a spec opens it
  /echo           200 with the request as JSON: method, path, headers, body
  /status?code=N  that status, a small body
  /retry-after    429 with Retry-After: 1
  /drop           closes the connection without answering
  /slow?ms=N      headers at once, then the body one byte every N ms (10 bytes)
  /huge?mb=N      a 200 of N MiB
  /endless        a chunked body that never ends
  /garbage        a status line that is not HTTP
  /bigheaders     a 200 with 200 KB of header lines
  /loop           a redirect to itself
  /redirect?code=N&to=URL  that redirect status with Location: URL (may be relative)
  /half           Content-Length 100, 10 bytes of it, then the connection closes
  /cut            as /half, but the connection is dropped (over TLS: no close_notify)
  /cuteof         as /eof, but the connection is dropped (over TLS: no close_notify)
  /hugeheader     a header line that never ends
  /eof            a 200 without a length: the body ends when the connection does
  /never          reads the request and never answers
  /pipelined      a 200 "ok" followed by bytes nobody asked for
  /chunked        a chunked 200 "hello, world" in three chunks with an extension
  /close          a 200 with Connection: close, then the connection closes
  /dropsecond     the second and later requests of a connection: closed without an answer
  /idle?ms=N      200 {"conn": its connection's number}; the connection is then closed (FIN; &rst=1:
                  RST) once idle for N ms (0: at once, whatever came meanwhile unread); each request's
                  and each close's connection and time (monotonic s) are kept in /stats "idle"
                  ({"conn", "t", "method", "body"}) and "idle_closed" ({"conn", "t"})
  /idlegate?n=N   200 once N connections of /idle were closed (looked for every 20 ms, up to 120 s)
  /tick           200; the arrival time (monotonic s) of each /tick and /once429 is kept in /stats "ticks"
  /once429?key=K  the first request of key K: 429 with Retry-After as an HTTP date 2 s ahead; then /echo
  /token          an OAuth2 token answer {"access_token": "tok<N>"}, N counting in /stats "tokens"
  /bytes          a body and an X-Bin header that are not UTF-8
  /repeat         X-Multi three times in three cases, then 40 other names, then X-H1 and X-H40 again
  /early          a 103 Early Hints with its own headers, then the 200
  /stats          {"requests": all paths' (this /stats too), "paths": {path: requests}, "max_inflight":..., "connections":..., "resumed": TLS sessions resumed, "sni": each TLS handshake's server name (null: none)}
  /reset          zeroes the counters
Connections are kept alive (HTTP/1.1), as nginx does.
"""
import asyncio
import email.utils
import json
import os
import socket
import ssl
import sys
import time
import urllib.parse

stats = {"requests": 0, "paths": {}, "inflight": 0, "max_inflight": 0, "connections": 0, "ticks": [], "tokens": 0, "resumed": 0, "sni": [],
         "idle": [], "idle_closed": []}
seen429 = set()


def response(status, body=b"", headers=None, reason="OK"):
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    for k, v in (headers or {}).items():
        head.append(f"{k}: {v}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def until(cond):
    """Waits until cond() holds, looking every 20 ms, for at most 120 s."""
    for _ in range(6000):
        if cond():
            return
        await asyncio.sleep(0.02)


async def handle(reader, writer):
    stats["connections"] += 1
    conn = stats["connections"]
    idle_ms, idle_rst = None, False
    tls_object = writer.get_extra_info("ssl_object")
    if tls_object and tls_object.session_reused:
        stats["resumed"] += 1
    served = 0
    try:
        while True:
            if idle_ms is not None:
                try:
                    if idle_ms == 0:   # what a request sent meanwhile may have put in the buffer is not read
                        raise asyncio.TimeoutError
                    line = await asyncio.wait_for(reader.readline(), idle_ms / 1000)
                except asyncio.TimeoutError:
                    stats["idle_closed"].append({"conn": conn, "t": time.monotonic()})
                    if idle_rst:
                        writer.transport.abort()
                    return
            else:
                line = await reader.readline()
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers = {}
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, v = h.decode("latin-1").split(":", 1)
                headers[k.strip().lower()] = v.strip()
            body = b""
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            url = urllib.parse.urlsplit(target)
            q = dict(urllib.parse.parse_qsl(url.query))
            path = url.path
            stats["requests"] += 1
            stats["paths"][path] = stats["paths"].get(path, 0) + 1
            served += 1
            if path in ("/tick", "/once429"):
                stats["ticks"].append(time.monotonic())
            if path == "/delay":
                stats["inflight"] += 1
                stats["max_inflight"] = max(stats["max_inflight"], stats["inflight"])
                try:
                    await asyncio.sleep(int(q.get("ms", "50")) / 1000)
                finally:
                    stats["inflight"] -= 1
                out = json.dumps({"n": q.get("n"), "inflight": stats["inflight"] + 1}).encode()
                writer.write(response(200, out, {"Content-Type": "application/json"}))
            elif path == "/gate":
                await until(lambda: os.path.exists(q.get("file", "")))
                writer.write(response(200, b"open", {}))
            elif path == "/idlegate":
                await until(lambda: len(stats["idle_closed"]) >= int(q.get("n", "1")))
                writer.write(response(200, b"closed", {}))
            elif path == "/once429" and q.get("key") not in seen429:
                seen429.add(q.get("key"))
                when = email.utils.formatdate(time.time() + 2, usegmt=True)
                writer.write(response(429, b"later", {"Retry-After": when}, "Too Many Requests"))
            elif path == "/tick":
                writer.write(response(200, b'{"tick":true}', {"Content-Type": "application/json"}))
            elif path == "/token":
                stats["tokens"] += 1
                out = json.dumps({"access_token": f"tok{stats['tokens']}", "token_type": "bearer",
                                  "expires_in": 3600}).encode()
                writer.write(response(200, out, {"Content-Type": "application/json"}))
            elif path == "/repeat":
                lines = ["X-Multi: a", "x-multi: b", "X-MULTI: c"] + [f"X-H{i}: {i}" for i in range(1, 41)] + ["X-H1: again", "X-H40: again"]
                writer.write(("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + "".join(l + "\r\n" for l in lines) + "\r\nok").encode())
            elif path == "/early":
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nX-Both: early\r\n\r\n"
                             b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Both: final\r\n\r\nok")
            elif path == "/bytes":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Bin: \xff\xfe\r\n\r\n\xff\x00\xfe\xc3")
            elif path in ("/echo", "/once429"):
                out = json.dumps({"method": method, "path": target, "headers": headers,
                                  "body": body.decode("utf-8", "replace")}).encode()
                writer.write(response(200, out, {"Content-Type": "application/json", "X-Multi": "a"}))
            elif path == "/status":
                code = int(q.get("code", "500"))
                writer.write(response(code, b'{"error":"as asked"}', reason="Asked"))
            elif path == "/retry-after":
                writer.write(response(429, b"slow down", {"Retry-After": "1"}, "Too Many Requests"))
            elif path == "/drop":
                writer.close()
                return
            elif path == "/slow":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
                for _ in range(10):
                    await writer.drain()
                    await asyncio.sleep(int(q.get("ms", "100")) / 1000)
                    writer.write(b"x")
            elif path == "/huge":
                n = int(q.get("mb", "64")) << 20
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
                chunk = b"y" * 65536
                for _ in range(n // 65536):
                    writer.write(chunk)
                    await writer.drain()
            elif path == "/endless":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"10000\r\n" + b"z" * 65536 + b"\r\n"
                while True:
                    writer.write(chunk)
                    await writer.drain()
            elif path == "/garbage":
                writer.write(b"SPROCKETS 99 WHAT\r\n\r\n\x00\xff garbage\r\n")
                await writer.drain()
                writer.close()
                return
            elif path == "/bigheaders":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
                for i in range(2000):
                    writer.write(f"X-Filler-{i}: {'f' * 100}\r\n".encode())
                writer.write(b"\r\nok")
            elif path == "/loop":
                writer.write(response(302, b"", {"Location": "/loop"}, "Found"))
            elif path == "/redirect":
                writer.write(response(int(q.get("code", "302")), b"moved", {"Location": q.get("to", "/echo")}, "Moved"))
            elif path == "/half":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                await writer.drain()
                writer.close()
                return
            elif path in ("/cut", "/cuteof"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789" if path == "/cut" else
                             b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
                await writer.drain()
                writer.transport.abort()
                return
            elif path == "/hugeheader":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Huge: ")
                while True:
                    writer.write(b"h" * 65536)
                    await writer.drain()
            elif path == "/eof":
                writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
                await writer.drain()
                writer.close()
                return
            elif path == "/never":
                stats["inflight"] += 1
                try:
                    await reader.read()   # until the client goes
                finally:
                    stats["inflight"] -= 1
                return
            elif path == "/pipelined":
                writer.write(response(200, b"ok") + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")
            elif path == "/chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5;ext=1\r\nhello\r\n2\r\n, \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
            elif path == "/close":
                writer.write(response(200, b"bye", {"Connection": "close"}))
                await writer.drain()
                writer.close()
                return
            elif path == "/dropsecond":
                if served > 1:
                    writer.close()
                    return
                writer.write(response(200, json.dumps({"conn": conn}).encode()))
            elif path == "/idle":
                idle_ms, idle_rst = int(q.get("ms", "100")), q.get("rst") == "1"
                stats["idle"].append({"conn": conn, "t": time.monotonic(), "method": method,
                                      "body": body.decode("utf-8", "replace")})
                writer.write(response(200, json.dumps({"conn": conn}).encode(), {"Content-Type": "application/json"}))
            elif path == "/stats":
                writer.write(response(200, json.dumps(stats).encode(), {"Content-Type": "application/json"}))
            elif path == "/reset":
                for k in ("requests", "max_inflight", "connections", "tokens", "resumed"):
                    stats[k] = 0
                for k in ("ticks", "sni", "idle", "idle_closed"):
                    stats[k] = []
                stats["paths"] = {}
                writer.write(response(200, b"{}"))
            else:
                writer.write(response(404, b"not found", reason="Not Found"))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


def tls(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def sni(_obj, name, _ctx):
        stats["sni"].append(name)
    ctx.sni_callback = sni
    return ctx


async def main(port, certs):
    ctxs = [tls(certs[i], certs[i + 1]) for i in range(0, len(certs), 2)]
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024, ssl=ctxs[0] if ctxs else None)
    if ctxs:
        mute = socket.create_server(("127.0.0.1", 0))
        others = [await asyncio.start_server(handle, "127.0.0.1", 0, ssl=c) for c in ctxs[1:]]
        print("tls", mute.getsockname()[1], *[o.sockets[0].getsockname()[1] for o in others], flush=True)
    # port 0: the kernel picks a free one, printed here (no race with other
    # servers of a shared machine for a port picked beforehand)
    print("ready", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2:]))
