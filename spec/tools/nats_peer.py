#!/usr/bin/env python3
"""A NATS peer for the specs, on nats-py (PyPI), nobody's code here.

  nats_peer.py pub URL SUBJECT N [--js] [--size B] [--start K] [--header K=V] [--file F] [--acked PATH] [--rate R]
      publishes N messages "m<i>" (padded to B bytes) or the bytes of F, R a second at most; with
      --js waits for each PubAck and appends the acked payloads to PATH as they come
  nats_peer.py sub URL SUBJECT N [--queue Q] [--timeout S] [--ready PATH]
      prints N messages as JSON lines {subject, data, len, headers} (data: UTF-8, bad bytes escaped)
  nats_peer.py stream URL NAME SUBJECT... [--max-msgs N]   creates a file stream (or updates it); with
      --max-msgs N >= 0 it holds N messages at most and refuses more (discard new), -1 lifts that
  nats_peer.py info URL NAME                    the stream's state as JSON
  nats_peer.py consumer URL STREAM DURABLE      the consumer's info as JSON
  nats_peer.py pullconsumer URL STREAM DURABLE  creates a durable pull consumer (explicit acks, ack_wait 2 s)
  nats_peer.py pushconsumer URL STREAM DURABLE SUBJECT   a durable push consumer delivering to SUBJECT
  nats_peer.py dump URL STREAM                  every message of the stream, as sub prints them
  nats_peer.py kvbucket URL BUCKET              creates a key-value bucket (or keeps it)
  nats_peer.py kvput URL BUCKET KEY VALUE       puts a key (VALUE "@F": the bytes of file F)
  nats_peer.py kvget URL BUCKET KEY             prints the key's value as JSON {data, len}, or {"missing": true}
"""
import argparse
import asyncio
import json
import sys

import nats
import nats.js.errors


def line(subject, data, headers):
    return json.dumps({"subject": subject, "data": data.decode("utf-8", "backslashreplace"),
                       "len": len(data), "headers": dict(headers or {})})


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd")
    p.add_argument("url")
    p.add_argument("args", nargs="*")
    p.add_argument("--js", action="store_true")
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--file")
    p.add_argument("--acked")
    p.add_argument("--rate", type=float, default=0)
    p.add_argument("--queue", default="")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--ready", help="sub: a file written once the subscription is in place")
    p.add_argument("--max-msgs", type=int, default=None)
    a = p.parse_args()
    nc = await nats.connect(a.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                            connect_timeout=5, allow_reconnect=True)
    js = nc.jetstream()
    if a.cmd == "pub":
        subject, n = a.args[0], int(a.args[1])
        headers = dict(h.split("=", 1) for h in a.header) or None
        acked = open(a.acked, "a") if a.acked else None
        for i in range(a.start, a.start + n):
            data = open(a.file, "rb").read() if a.file else ("m%d" % i).encode().ljust(a.size, b".")
            if a.js:
                for _ in range(100):
                    try:
                        await js.publish(subject, data, headers=headers, timeout=2)
                        break
                    except Exception:
                        await asyncio.sleep(0.1)
                else:
                    sys.exit("no PubAck for m%d" % i)
                if acked:
                    acked.write(data.decode("utf-8", "backslashreplace") + "\n")
                    acked.flush()
            else:
                await nc.publish(subject, data, headers=headers)
            if a.rate:
                await asyncio.sleep(1 / a.rate)
        await nc.flush()
    elif a.cmd in ("sub", "dump"):
        if a.cmd == "sub":
            subject, n = a.args[0], int(a.args[1])
            sub = await nc.subscribe(subject, queue=a.queue)
            await nc.flush()
            if a.ready:
                open(a.ready, "w").write("ready\n")
        else:
            info = await js.stream_info(a.args[0])
            n = info.state.messages
            sub = await js.subscribe("", stream=a.args[0], ordered_consumer=True) if n else None
        got = 0
        while got < n:
            try:
                m = await sub.next_msg(timeout=a.timeout)
            except Exception:
                break
            print(line(m.subject, m.data, m.headers), flush=True)
            got += 1
    elif a.cmd == "stream":
        from nats.js.api import DiscardPolicy
        limits = {} if a.max_msgs is None else {"max_msgs": a.max_msgs, "discard": DiscardPolicy.NEW}
        try:
            await js.add_stream(name=a.args[0], subjects=a.args[1:], **limits)
        except Exception:
            await js.update_stream(name=a.args[0], subjects=a.args[1:], **limits)
    elif a.cmd == "info":
        info = await js.stream_info(a.args[0])
        print(json.dumps({"messages": info.state.messages}))
    elif a.cmd == "consumer":
        ci = await js.consumer_info(a.args[0], a.args[1])
        print(json.dumps({"num_ack_pending": ci.num_ack_pending, "num_pending": ci.num_pending,
                          "num_redelivered": ci.num_redelivered, "delivered": ci.delivered.stream_seq,
                          "ack_floor": ci.ack_floor.stream_seq, "push": bool(ci.config.deliver_subject),
                          "num_waiting": ci.num_waiting}))
    elif a.cmd == "pullconsumer":
        from nats.js.api import AckPolicy, ConsumerConfig
        await js.add_consumer(a.args[0], ConsumerConfig(durable_name=a.args[1], ack_policy=AckPolicy.EXPLICIT,
                                                        ack_wait=2))
    elif a.cmd == "pushconsumer":
        from nats.js.api import AckPolicy, ConsumerConfig
        await js.add_consumer(a.args[0], ConsumerConfig(durable_name=a.args[1], ack_policy=AckPolicy.EXPLICIT,
                                                        deliver_subject=a.args[2]))
    elif a.cmd == "kvbucket":
        await js.create_key_value(bucket=a.args[0])
    elif a.cmd == "kvput":
        kv = await js.key_value(a.args[0])
        v = a.args[2]
        await kv.put(a.args[1], open(v[1:], "rb").read() if v.startswith("@") else v.encode())
    elif a.cmd == "kvget":
        kv = await js.key_value(a.args[0])
        try:
            e = await kv.get(a.args[1])
            print(json.dumps({"data": (e.value or b"").decode("utf-8", "backslashreplace"), "len": len(e.value or b"")}))
        except nats.js.errors.KeyNotFoundError:
            print(json.dumps({"missing": True}))
    await nc.close()


asyncio.run(main())
