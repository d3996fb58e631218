// Broadcast delivery latency, one client process of several (bench/latency.sh
// starts them and merges their reports with `node bench/latency.js merge`).
//
//   node bench/latency.js sse|ws URL CONNS
//
// Opens CONNS SSE or WebSocket connections to URL (raw sockets read with
// net's `onread`, so that the client spends as little CPU per event as it can;
// WSLIB=npm uses the npm `ws` package instead), at most 64 connecting at a
// time, then prints "ready OPEN FAILED" and waits for one line "start T0 SECS"
// on stdin (T0: Unix ms). Each event's content is {"t": "<RFC 3339 send time,
// µs>", "i": <sequence>}; events whose t falls in [T0, T0 + SECS s) are
// measured: delay = receive time − t, with µs resolution on both sides
// (sluice's now() is CLOCK_REALTIME with µs; here performance.timeOrigin +
// performance.now(), whose drift from Date.now() is reported as drift_ms).
// 2 s after the window it prints one JSON report (histogram, counts) and exits.
// Every wait is bounded: connecting (120 s), waiting for "start" (300 s) and
// the window itself.
//
//   node bench/latency.js merge < reports   (one JSON report per line)
// prints the merged totals: sent (distinct i in the window), expected
// (sent × connections), events, p50/p99/max in ms (p50/p99 are the upper edge
// of a histogram bin: 10 µs below 100 ms, 1 ms above), gaps (skipped i on a
// connection), closed, ...
"use strict";
const GRACE_MS = 2000, CONNECT_S = 120, START_WAIT_S = 300, PENDING_MAX = 64;

// Histogram of delays: 10 µs bins below 100 ms, 1 ms bins up to 100 s.
const FINE = 10000, COARSE = 100000;
const binOf = (d) => (d < 100 ? Math.floor(d * 100) : Math.min(FINE + COARSE - 1, FINE + Math.floor(d - 100)));
const upperOf = (b) => (b < FINE ? (b + 1) / 100 : 100 + (b - FINE + 1));

function merge() {
  const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.trim());
  const hist = new Map();
  const tot = { procs: 0, conns: 0, open_at_end: 0, closed: 0, errors: 0, events: 0, gaps: 0, reordered: 0, negative: 0, max: 0, drift_ms: 0, imin: Infinity, imax: -Infinity, cpu_ms: 0 };
  for (const l of lines) {
    const r = JSON.parse(l);
    tot.procs++;
    for (const k of ["conns", "open_at_end", "closed", "errors", "events", "gaps", "reordered", "negative"]) tot[k] += r[k];
    tot.max = Math.max(tot.max, r.max);
    tot.drift_ms = Math.max(tot.drift_ms, Math.abs(r.drift_ms));
    tot.cpu_ms = r.cpu_ms >= 0 && tot.cpu_ms !== null ? tot.cpu_ms + r.cpu_ms : null;
    if (r.imin !== null) tot.imin = Math.min(tot.imin, r.imin);
    if (r.imax !== null) tot.imax = Math.max(tot.imax, r.imax);
    for (const [b, c] of r.hist) hist.set(b, (hist.get(b) || 0) + c);
  }
  const bins = [...hist.keys()].sort((a, b) => a - b);
  const q = (p) => {
    const rank = Math.min(tot.events - 1, Math.floor(p * tot.events));
    let seen = 0;
    for (const b of bins) if ((seen += hist.get(b)) > rank) return upperOf(b);
    return null;
  };
  const sent = tot.imax >= tot.imin ? tot.imax - tot.imin + 1 : 0;
  const out = {
    procs: tot.procs, conns: tot.conns, sent, expected: sent * tot.conns, events: tot.events,
    missed: sent * tot.conns - tot.events, gaps: tot.gaps, reordered: tot.reordered,
    closed: tot.closed, errors: tot.errors, open_at_end: tot.open_at_end, negative: tot.negative,
    p50: q(0.5), p99: q(0.99), max: Math.round(tot.max * 100) / 100, drift_ms: tot.drift_ms,
    clients_cpu_ms: tot.cpu_ms === null ? null : Math.round(tot.cpu_ms),
  };
  console.log(JSON.stringify(out));
}

function client(proto, url, n) {
  const { performance } = require("perf_hooks");
  const net = require("net"), crypto = require("crypto");
  const nowMs = () => performance.timeOrigin + performance.now();
  const hist = new Uint32Array(FINE + COARSE);
  let t0 = Infinity, t1 = -Infinity;
  let events = 0, max = 0, negative = 0, gaps = 0, reordered = 0, imin = null, imax = null;
  let open = 0, failed = 0, closed = 0, errors = 0, started = false, cpuMs = -1;
  const cache = new Map();   // event content → [send ms, i]: parsed once per process
  function parse(s) {
    let e = cache.get(s);
    if (!e) {
      let o = JSON.parse(s);
      if (o.data && o.data.t) o = o.data;   // an event of the store's API: {"offset", ..., "data": {t, i}}
      const ms = Date.parse(o.t.slice(0, 23) + "Z") + Number(o.t.slice(23, 26)) / 1000;
      e = [ms, o.i];
      cache.set(s, e);
      if (cache.size > 20000) cache.delete(cache.keys().next().value);
    }
    return e;
  }
  // One received event on connection c at time now.
  function got(c, s, now) {
    const [ts, i] = parse(s);
    if (c.last !== null) {
      if (i > c.last + 1) gaps += i - c.last - 1;
      else if (i <= c.last) reordered++;
    }
    c.last = i;
    if (ts < t0 || ts >= t1) return;
    let d = now - ts;
    if (d < 0) { negative++; d = 0; }
    events++;
    hist[binOf(d)]++;
    if (d > max) max = d;
    if (imin === null || i < imin) imin = i;
    if (imax === null || i > imax) imax = i;
  }

  const conns = [];
  let next = 0, pending = 0, readySent = false;
  function settled(ok) {
    pending--;
    ok ? open++ : failed++;
    if (!readySent && open + failed === n) {
      readySent = true;
      console.log(`ready ${open} ${failed}`);
    }
    pump();
  }
  function onClose(c) {
    if (c.opened && !c.done) { c.done = true; closed++; }
  }
  function onError(e) { errors++; if (errors <= 3) console.error(String(e)); }
  const u = new URL(url);
  const host = u.hostname, port = Number(u.port || 80), path = u.pathname + u.search;
  const rbuf = Buffer.allocUnsafe(1 << 16);   // shared read buffer (net onread: no stream machinery)

  // SSE over a raw socket: one GET, then every "data: " line is an event
  // (each event is one HTTP chunk, so chunk framing never splits a line).
  function connectSse(c, settle) {
    let tail = "", head = true;
    const sock = net.connect({ host, port, onread: { buffer: rbuf, callback: (nread, b) => {
      const now = nowMs();
      let s = tail + b.latin1Slice(0, nread);
      if (head) {
        const h = s.indexOf("\r\n\r\n");
        if (h < 0) { tail = s; return; }
        if (!s.startsWith("HTTP/1.1 200")) { onError(s.slice(0, s.indexOf("\r\n"))); sock.destroy(); settle(false); return; }
        head = false;
        settle(true);
        s = s.slice(h + 4);
      }
      let p = 0, k;
      while ((k = s.indexOf("data: ", p)) >= 0) {
        const e = s.indexOf("\n", k + 6);
        if (e < 0) break;
        got(c, s.slice(k + 6, e), now);
        p = e + 1;
      }
      tail = s.length - p > 4096 ? s.slice(s.length - 4096) : s.slice(p);
    } } });
    sock.on("connect", () => sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n\r\n`));
    sock.on("error", (e) => { onError(e); settle(false); });
    sock.on("close", () => { settle(false); onClose(c); });
  }

  // WebSocket over a raw socket (RFC 6455 client: handshake checked, server
  // frames unmasked, pings answered, fragments joined).
  function connectWs(c, settle) {
    const key = crypto.randomBytes(16).toString("base64");
    const accept = crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
    let tail = null, head = true, frag = [];
    const sock = net.connect({ host, port, onread: { buffer: rbuf, callback: (nread, b) => {
      const now = nowMs();
      let buf = tail ? Buffer.concat([tail, b.subarray(0, nread)]) : b.subarray(0, nread);
      tail = null;
      let p = 0;
      if (head) {
        const h = buf.indexOf("\r\n\r\n");
        if (h < 0) { tail = Buffer.from(buf); return; }
        const hs = buf.latin1Slice(0, h);
        if (!hs.startsWith("HTTP/1.1 101") || !hs.toLowerCase().includes("sec-websocket-accept: " + accept.toLowerCase())) {
          onError(hs.slice(0, hs.indexOf("\r\n"))); sock.destroy(); settle(false); return;
        }
        head = false;
        settle(true);
        p = h + 4;
      }
      while (buf.length - p >= 2) {
        const op = buf[p] & 15, fin = buf[p] & 128;
        let len = buf[p + 1] & 127, at = p + 2;
        if (len === 126) { if (buf.length - p < 4) break; len = buf.readUInt16BE(p + 2); at = p + 4; }
        else if (len === 127) { if (buf.length - p < 10) break; len = Number(buf.readBigUInt64BE(p + 2)); at = p + 10; }
        if (buf.length - at < len) break;
        const payload = buf.subarray(at, at + len);
        p = at + len;
        if (op === 9) { sock.write(frame(10, payload)); continue; }
        if (op === 8) { sock.end(frame(8, payload.subarray(0, 2))); continue; }
        if (op === 10) continue;
        if (!fin || frag.length) {
          frag.push(Buffer.from(payload));
          if (!fin) continue;
          got(c, Buffer.concat(frag).latin1Slice(), now);
          frag = [];
          continue;
        }
        got(c, payload.latin1Slice(), now);
      }
      if (p < buf.length) tail = Buffer.from(buf.subarray(p));
    } } });
    sock.on("connect", () => sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
    sock.on("error", (e) => { onError(e); settle(false); });
    sock.on("close", () => { settle(false); onClose(c); });
  }
  function frame(op, payload) {   // a masked client frame (payload < 126 bytes)
    const mask = crypto.randomBytes(4), f = Buffer.alloc(6 + payload.length);
    f[0] = 128 | op; f[1] = 128 | payload.length; mask.copy(f, 2);
    for (let i = 0; i < payload.length; i++) f[6 + i] = payload[i] ^ mask[i & 3];
    return f;
  }

  // WebSocket with the npm `ws` package (WSLIB=npm): a cross-check of the raw client, ~2x its CPU.
  function connectNpmWs(c, settle) {
    const WebSocket = require("../spec/node/node_modules/ws");
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on("open", () => settle(true));
    ws.on("message", (data) => got(c, data.toString(), nowMs()));
    ws.on("error", (e) => { onError(e); settle(false); });
    ws.on("close", () => { settle(false); onClose(c); });
  }

  function connect() {
    const c = { last: null, opened: false, done: false };
    conns.push(c);
    let once = false;
    const settle = (ok) => { if (!once) { once = true; c.opened = ok; settled(ok); } };
    if (proto === "sse") connectSse(c, settle);
    else if (process.env.WSLIB === "npm") connectNpmWs(c, settle);
    else connectWs(c, settle);
  }
  function pump() {
    while (pending < PENDING_MAX && next < n) { next++; pending++; connect(); }
  }
  pump();
  const connectTimer = setTimeout(() => {
    if (!readySent) { readySent = true; console.log(`ready ${open} ${n - open}`); }
  }, CONNECT_S * 1000);
  const startTimer = setTimeout(() => { console.error("no start line"); process.exit(2); }, START_WAIT_S * 1000);

  let line = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (s) => {
    line += s;
    const m = line.match(/^start (\S+) (\S+)\n/);
    if (!m || started) return;
    started = true;
    clearTimeout(connectTimer);
    clearTimeout(startTimer);
    t0 = Number(m[1]);
    t1 = t0 + Number(m[2]) * 1000;
    const drift0 = Date.now() - nowMs();
    // The CPU this process spent in the window, measured by itself.
    setTimeout(() => {
      const u0 = process.cpuUsage();
      setTimeout(() => {
        const u = process.cpuUsage(u0);
        cpuMs = (u.user + u.system) / 1000;
      }, Math.max(0, t1 - Date.now()));
    }, Math.max(0, t0 - Date.now()));
    setTimeout(() => report(drift0), Math.max(0, t1 + GRACE_MS - Date.now()));
  });
  function report(drift0) {
    const hs = [];
    for (let b = 0; b < hist.length; b++) if (hist[b]) hs.push([b, hist[b]]);
    const openAtEnd = conns.filter((c) => c.opened && !c.done).length;
    console.log(JSON.stringify({
      conns: n, open_at_end: openAtEnd, failed, closed, errors, events, gaps, reordered, negative,
      max, imin, imax, drift_ms: Date.now() - nowMs() - drift0, cpu_ms: cpuMs, hist: hs,
    }));
    process.exit(0);
  }
}

const [proto, url, n] = process.argv.slice(2);
if (proto === "merge") merge();
else if ((proto === "sse" || proto === "ws") && url && Number(n) > 0) client(proto, url, Number(n));
else { console.error("usage: node bench/latency.js sse|ws URL CONNS | merge"); process.exit(2); }
