#!/usr/bin/python3
"""A WebSocket client for specs (Debian's python3-websockets, not ours).

usage: ws_client.py URL [--send TEXT]... [--send-bytes HEX]... [--recv N] [--wait SECONDS]
Sends each message in order, then prints every message received (one JSON
line each: {"text": ...} or {"binary": hex}) until N were received or the
wait ends; prints {"closed": code, "reason": ...} if the server closes.
"""
import asyncio
import json
import sys

import websockets


async def main():
    url, args = sys.argv[1], sys.argv[2:]
    sends, want, wait = [], None, 3.0
    i = 0
    while i < len(args):
        if args[i] == "--send":
            sends.append(args[i + 1])
        elif args[i] == "--send-bytes":
            sends.append(bytes.fromhex(args[i + 1]))
        elif args[i] == "--recv":
            want = int(args[i + 1])
        elif args[i] == "--wait":
            wait = float(args[i + 1])
        i += 2
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        for s in sends:
            await ws.send(s)
        got = 0
        try:
            while want is None or got < want:
                msg = await asyncio.wait_for(ws.recv(), timeout=wait)
                got += 1
                if isinstance(msg, bytes):
                    print(json.dumps({"binary": msg.hex()}), flush=True)
                else:
                    print(json.dumps({"text": msg}), flush=True)
        except asyncio.TimeoutError:
            pass
        except websockets.ConnectionClosed as e:
            print(json.dumps({"closed": e.code, "reason": e.reason}), flush=True)


asyncio.run(main())
