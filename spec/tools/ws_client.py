#!/usr/bin/python3
"""A WebSocket client for specs (Debian's python3-websockets, not ours).

usage: ws_client.py URL [--send TEXT]... [--send-bytes HEX]... [--recv N] [--wait SECONDS] [--stall SECONDS]
Sends each message in order (then, with --stall, stops reading for that long,
as a slow client), then prints every message received (one JSON
line each: {"text": ...} or {"binary": hex}) until N were received or the
wait ends; prints {"closed": code, "reason": ...} if the server closes.
"""
import asyncio
import json
import sys

import websockets


async def main():
    url, args = sys.argv[1], sys.argv[2:]
    sends, want, wait, stall = [], None, 3.0, 0.0
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
        elif args[i] == "--stall":
            stall = float(args[i + 1])
        i += 2
    # A stalling client must really stop reading: tiny buffers; others keep the defaults.
    small = {"max_queue": 1, "read_limit": 2**14} if stall else {}
    async with websockets.connect(url, max_size=None, ping_interval=None, **small) as ws:
        for s in sends:
            await ws.send(s)
        if stall:
            await asyncio.sleep(stall)
        got = 0
        try:
            while want is None or got < want:
                msg = await asyncio.wait_for(ws.recv(), timeout=wait)
                got += 1
                if stall:
                    continue   # a stalling client is tested for how it ends, not for its data
                if isinstance(msg, bytes):
                    print(json.dumps({"binary": msg.hex()}), flush=True)
                else:
                    print(json.dumps({"text": msg}), flush=True)
        except asyncio.TimeoutError:
            pass
        except websockets.ConnectionClosed as e:
            if stall:
                print(json.dumps({"received": got}), flush=True)
            print(json.dumps({"closed": e.code, "reason": e.reason}), flush=True)


asyncio.run(main())
