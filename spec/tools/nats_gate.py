#!/usr/bin/env python3
"""A TCP gate in front of a server: while HOLD exists, connections are
accepted and never answered (a handshake that times out on an overloaded
server); once HOLD is gone, new connections are proxied to the server.
Prints each connection it held to stdout ("held N") as it accepts it.

usage: nats_gate.py LISTEN_PORT SERVER_PORT HOLD
Runs until killed.
"""
import asyncio
import os
import sys

listen, server, hold = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = 0


async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        w.close()


async def serve(r, w):
    global held
    if os.path.exists(hold):
        held += 1
        print("held", held, flush=True)
        try:
            while await r.read(65536):   # never answered, until the client gives up
                pass
        except (ConnectionError, OSError):
            pass
        w.close()
        return
    try:
        sr, sw = await asyncio.open_connection("127.0.0.1", server)
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, sw), pipe(sr, w))


async def main():
    srv = await asyncio.start_server(serve, "127.0.0.1", listen)
    async with srv:
        await srv.serve_forever()


asyncio.run(main())
