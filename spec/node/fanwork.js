// Broadcast clients for spec/http_workers_spec.lua's fan-out cases: K npm
// `eventsource` and K npm `ws` clients of one http_server output whose
// events are "<i>\nsecond line" (SSE event "tick"). Each checks that it gets
// every event in order, without gaps (SSE ids counting up with i), for as
// long as it runs. Prints {"ready": true} once every client has had an
// event and {"reached": true} once every one has had N events after its
// first; then, once PATH exists, one JSON line {opened, bad, counts, closes,
// final: true} and exits. With --until-closed it prints that line instead
// once the server closed every client (SSE as an error of the event source,
// which is then closed instead of reconnecting; WebSocket with its close
// code). Bounded: 90 s.
//   node fanwork.js BASE_URL K N PATH [--until-closed]
const EventSource = require("eventsource");
const WebSocket = require("ws");
const fs = require("fs");
const [base, k, n, hold, mode] = process.argv.slice(2);
const K = Number(k), N = Number(n), untilClosed = mode === "--until-closed";
const conns = [], bad = [], closes = [];
let opened = 0, ready = false, reached = false;
const report = (extra) => console.log(JSON.stringify(Object.assign({ opened, bad: bad.slice(0, 5), counts: conns.map((c) => c.n), closes, final: true }, extra)));
setTimeout(() => { report({ timeout: true }); process.exit(2); }, 90000);
function check() {
  if (!ready && conns.every((c) => c.n > 0)) {
    ready = true;
    console.log(JSON.stringify({ ready: true }));
  }
  if (!reached && conns.every((c) => c.n > N)) {
    reached = true;
    console.log(JSON.stringify({ reached: true }));
  }
  if (untilClosed && closes.length === conns.length) {
    report({});
    process.exit(0);
  }
}
if (!untilClosed)
  setInterval(() => {
    if (!reached || !fs.existsSync(hold)) return;
    report({});
    process.exit(0);
  }, 50);
function got(c, data, id) {
  const [first, second] = data.split("\n");
  const i = Number(first);
  const next = c.last === null || (i === c.last + 1 && (id === undefined || Number(id) === c.firstId + i - c.firstI));
  if (second !== "second line" || !next) bad.push({ kind: c.kind, last: c.last, data, id });
  if (c.last === null) { c.firstI = i; c.firstId = Number(id); }
  c.last = i;
  c.n++;
  check();
}
for (let j = 0; j < K; j++) {
  const s = { kind: "sse", n: 0, last: null };
  conns.push(s);
  const es = new EventSource(base + "/sse", { https: { rejectUnauthorized: false } });   // a spec's self-signed certificate
  es.onopen = () => opened++;
  es.addEventListener("tick", (e) => got(s, e.data, e.lastEventId));
  es.onerror = () => {
    if (!untilClosed) return bad.push({ kind: "sse", error: "the stream ended" });
    es.close();
    closes.push("sse");
    check();
  };
  const w = { kind: "ws", n: 0, last: null };
  conns.push(w);
  const ws = new WebSocket(base.replace(/^http/, "ws") + "/ws", { rejectUnauthorized: false });
  ws.on("open", () => opened++);
  ws.on("message", (d) => got(w, d.toString()));
  ws.on("close", (code) => {
    if (!untilClosed) return bad.push({ kind: "ws", closed: code });
    closes.push(code);
    check();
  });
}
