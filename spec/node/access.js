// What a real client gets from a path it may or may not use: npm `eventsource`
// and npm `ws`, as a browser page would use them (credentials in the query).
//   node access.js sse URL N    N events {id, data}, or {status} when refused
//   node access.js ws URL N     N messages {text}, or {status} when refused
const [, , mode, url, n] = process.argv;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
setTimeout(() => { out({ timeout: true }); process.exit(2); }, 8000);
let got = 0;
const count = () => { if (++got >= Number(n)) process.exit(0); };

if (mode === "sse") {
  const EventSource = require("eventsource");
  const es = new EventSource(url);
  es.onmessage = (e) => { out({ id: e.lastEventId, data: e.data }); count(); };
  es.onerror = (e) => { if (e.status) { out({ status: e.status }); process.exit(0); } };
} else if (mode === "ws") {
  const WebSocket = require("ws");
  const ws = new WebSocket(url);
  ws.on("unexpected-response", (req, res) => { out({ status: res.statusCode }); process.exit(0); });
  ws.on("message", (data) => { out({ text: data.toString() }); count(); });
  ws.on("error", (e) => { out({ error: String(e) }); process.exit(1); });
} else {
  out({ error: "usage: access.js sse|ws URL N" });
  process.exit(1);
}
