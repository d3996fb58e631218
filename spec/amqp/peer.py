#!/usr/bin/python3
"""The specs' AMQP peer, on pika (Debian's python3-pika), a client nobody here wrote.

  peer.py URL declare QUEUE [--dlx ROUTING_KEY]     durable queue (dead-lettering to the default exchange)
  peer.py URL publish QUEUE N [--prefix P] [--size B] [--persistent] [--header k=v] [--rate R] [--acked F] [--order]
                                                   N messages body P<i> (padded to B bytes), confirmed;
                                                   F gets each confirmed body as a line; --order: the body is
                                                   {"id": P<i>, "customer": "c<i%5>", "qty": i%4+1, "price": 2.5}
  peer.py URL publish-raw QUEUE HEX...             one message per hex body (empty: "")
  peer.py URL drain QUEUE                          every message in the queue, one JSON line each, acked
  peer.py URL count QUEUE                          messages ready in the queue
  peer.py post HTTP_URL N PREFIX OUTFILE          POSTs N bodies; OUTFILE gets each answered with 200
"""
import json, sys, time, urllib.request


def conn(url):
    import pika
    return pika.BlockingConnection(pika.URLParameters(url))


def main(a):
    if a[0] == "post":
        url, n, prefix, out = a[1], int(a[2]), a[3], a[4]
        with open(out, "w", buffering=1) as f:
            for i in range(n):
                body = ("%s%d" % (prefix, i)).encode()
                try:
                    r = urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10)
                    if r.status == 200:
                        f.write(body.decode() + "\n")
                except Exception:
                    time.sleep(0.05)
        return
    import pika
    url, cmd, q = a[0], a[1], a[2]
    c = conn(url)
    ch = c.channel()
    if cmd == "declare":
        args = {}
        if "--dlx" in a:
            args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": a[a.index("--dlx") + 1]}
        ch.queue_declare(q, durable=True, arguments=args)
    elif cmd == "publish":
        n = int(a[3])
        opt = lambda k, d: a[a.index(k) + 1] if k in a else d
        prefix, size, rate = opt("--prefix", "m"), int(opt("--size", "0")), float(opt("--rate", "0"))
        headers = dict(h.split("=", 1) for i, h in enumerate(a) if i > 0 and a[i - 1] == "--header")
        ch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2 if "--persistent" in a else 1, headers=headers or None,
                                     content_type="text/plain", message_id="id-1")
        acked = open(opt("--acked", "/dev/null"), "a", buffering=1)
        for i in range(n):
            body = ("%s%d" % (prefix, i)).encode()
            if "--order" in a:
                body = json.dumps({"id": body.decode(), "customer": "c%d" % (i % 5), "qty": i % 4 + 1,
                                   "price": 2.5}).encode()
            body += b"." * max(0, size - len(body))
            # with confirms on, basic_publish returns once the broker confirmed (it raises on a nack)
            ch.basic_publish("", q, body, props)
            acked.write(body.decode("latin-1") + "\n")
            if rate:
                time.sleep(1.0 / rate)
    elif cmd == "publish-raw":
        ch.confirm_delivery()
        for h in a[3:]:
            ch.basic_publish("", q, bytes.fromhex(h if h != '""' else ""))
    elif cmd == "drain":
        while True:
            m, props, body = ch.basic_get(q, auto_ack=True)
            if m is None:
                break
            print(json.dumps({"body": body.hex(), "routing_key": m.routing_key, "exchange": m.exchange,
                              "headers": {k: (v.decode("latin-1") if isinstance(v, bytes) else v)
                                          for k, v in (props.headers or {}).items()},
                              "content_type": props.content_type, "delivery_mode": props.delivery_mode,
                              "type": props.type, "message_id": props.message_id}, default=str))
    elif cmd == "count":
        print(ch.queue_declare(q, passive=True).method.message_count)
    c.close()


if __name__ == "__main__":
    main(sys.argv[1:])
