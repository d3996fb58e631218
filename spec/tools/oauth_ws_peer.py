#!/usr/bin/python3
"""A WebSocket server (Debian's python3-websockets) that admits an upgrade
only when its OAuth 1.0a HMAC-SHA1 signature verifies with oauthlib
(python3-oauthlib), for the websocket client's `oauth` spec.

  oauth_ws_peer.py PORT CONSUMER_SECRET TOKEN_SECRET

Prints JSON lines: {ev: "listening"}; {ev: "connection", nonce, params} for an
admitted upgrade (the server then sends "hello" and closes with 1000), or
{ev: "refused", auth, why} (answered 401).
"""
import asyncio
import json
import sys
from urllib.parse import urlsplit

import websockets
from oauthlib.common import Request
from oauthlib.oauth1.rfc5849 import signature, utils

port, consumer_secret, token_secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def out(o):
    print(json.dumps(o), flush=True)


def check(path, headers):
    auth = headers.get("Authorization", "")
    uri = "ws://127.0.0.1:%d%s" % (port, path)
    try:
        oauth = dict(utils.parse_authorization_header(auth))
        params = signature.collect_parameters(uri_query=urlsplit(uri).query, headers={"Authorization": auth},
                                              exclude_oauth_signature=True)
        req = Request(uri, http_method="GET", headers={"Authorization": auth})
        req.params = params
        req.signature = utils.unescape(oauth["oauth_signature"])
        ok = signature.verify_hmac_sha1(req, consumer_secret, token_secret)
    except Exception as e:  # a header oauthlib cannot read is refused too
        out({"ev": "refused", "auth": auth, "why": repr(e)})
        return False, None
    if not ok:
        out({"ev": "refused", "auth": auth, "why": "bad signature"})
        return False, None
    return True, {"nonce": oauth.get("oauth_nonce"), "params": sorted(k for k, _ in params)}


async def process_request(path, headers):
    ok, seen = check(path, headers)
    if not ok:
        return (401, [("Content-Type", "text/plain")], b"bad signature\n")
    out(dict(ev="connection", path=path, **seen))
    return None


async def handler(ws, path):
    await ws.send("hello")
    await ws.close(1000, "bye")


async def main():
    async with websockets.serve(handler, "127.0.0.1", port, process_request=process_request):
        out({"ev": "listening"})
        await asyncio.Future()


asyncio.run(main())
