// Fan-out client for spec/fanout_spec.lua: K npm `eventsource` and K npm
// `ws` clients of one broadcast; each checks that it gets every message in
// order (content "<i>\n<line 2>", SSE ids counting up with i). Once every
// client has FROM events it reads the server's write syscall count
// (/proc/PID/io syscw), again once every client has TO, and prints one JSON
// line: events delivered and write syscalls between the two readings.
//   node fanout.js SSE_URL WS_URL K FROM TO PID
const EventSource = require("eventsource");
const WebSocket = require("ws");
const fs = require("fs");
const [sseUrl, wsUrl, k, from, to, pid] = process.argv.slice(2);
const K = Number(k), FROM = Number(from), TO = Number(to);
setTimeout(() => { console.log(JSON.stringify({ timeout: true, counts: conns.map((c) => c.n) })); process.exit(2); }, 60000);
const syscw = () => Number(/syscw: (\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, "utf8"))[1]);
const conns = [];
let bad = [], mark = null, opened = 0;
const total = () => conns.reduce((s, c) => s + c.n, 0);
function got(c, data, id) {
  const [first, second] = data.split("\n");
  const i = Number(first);
  const next = c.last === null || (i === c.last + 1 && (id === undefined || id === String(c.firstId + i - c.firstI)));
  if (second !== "second line" || !next) bad.push({ kind: c.kind, last: c.last, data, id });
  if (c.last === null) { c.firstI = i; c.firstId = Number(id); }
  c.last = i;
  c.n++;
  const least = Math.min(...conns.map((x) => x.n));
  if (!mark && least >= FROM) mark = { events: total(), writes: syscw() };
  else if (mark && least >= TO) {
    console.log(JSON.stringify({ events: total() - mark.events, writes: syscw() - mark.writes, bad: bad.slice(0, 5), opened }));
    process.exit(0);
  }
}
for (let j = 0; j < K; j++) {
  const s = { kind: "sse", n: 0, last: null };
  conns.push(s);
  const es = new EventSource(sseUrl);
  es.onopen = () => opened++;
  es.addEventListener("tick", (e) => got(s, e.data, e.lastEventId));
  es.onerror = (e) => bad.push({ kind: "sse", error: String(e && e.message) });
  const w = { kind: "ws", n: 0, last: null };
  conns.push(w);
  const ws = new WebSocket(wsUrl);
  ws.on("open", () => opened++);
  ws.on("message", (d) => got(w, d.toString()));
  ws.on("close", (code) => bad.push({ kind: "ws", closed: code }));
}
