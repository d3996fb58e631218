// End-to-end latency of Tyk's demo: POST /push-event?user=u → in → (Kafka or
// the embedded store) → Worker → ... → out → SSE at the client. Sends RATE
// requests/s for SECS seconds spread over USERS users, each body carrying its
// send time; one SSE client per user measures receive − send.
//   node bench/demo_latency.js BASE_URL RATE SECS USERS [WARM_MS]
// (the first WARM_MS let the SSE clients' instances join their groups). User uN
// is `?user=uN` to the seed's demo on Kafka and API key uN-key to the quickstart.
// prints one JSON line: sent, answered, received, p50/p99/max ms, and the same
// quantiles without the requests of the first 2 s of traffic ("steady": a
// pipeline's first messages pay for consumers starting to fetch).
"use strict";
const http = require("http");
const EventSource = require(require.resolve("eventsource", { paths: [__dirname + "/../spec/node"] }));
const [base, rate, secs, users, warm] = [process.argv[2], +process.argv[3], +process.argv[4], +(process.argv[5] || 10),
  +(process.argv[6] || 2000)];
const delays = [];   // [send time, delay]
let sent = 0, answered = 0, received = 0;
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const sources = [];
for (let u = 0; u < users; u++) {
  const es = new EventSource(`${base}/sse?user=u${u}&api_key=u${u}-key`);
  es.onmessage = (e) => {
    const v = JSON.parse(e.data);
    if (v.sent) { received++; delays.push([v.sent, Date.now() - v.sent]); }
  };
  sources.push(es);
}
function post(i) {
  const body = JSON.stringify({ sent: Date.now(), i });
  const u = i % users;
  const req = http.request(`${base}/push-event?user=u${u}&api_key=u${u}-key`, { method: "POST", agent,
    headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } }, (res) => {
    res.resume();
    res.on("end", () => { if (res.statusCode === 200) answered++; });
  });
  req.on("error", () => {});
  req.end(body);
  sent++;
}
let t0 = 0;
setTimeout(() => {   // SSE clients connected (their instances started)
  t0 = Date.now();
  const timer = setInterval(() => {
    const due = Math.min(rate * secs, Math.floor((Date.now() - t0) * rate / 1000));
    while (sent < due) post(sent);
    if (sent >= rate * secs) clearInterval(timer);
  }, 5);
  setTimeout(() => {   // bounded: the window plus 5 s for stragglers
    const quantiles = (v) => {
      v.sort((a, b) => a - b);
      const q = (p) => (v.length ? v[Math.min(v.length - 1, Math.floor(p * v.length))] : null);
      return [q(0.5), q(0.99), v.length ? v[v.length - 1] : null];
    };
    const [p50, p99, max] = quantiles(delays.map((d) => d[1]));
    const [sp50, sp99, smax] = quantiles(delays.filter((d) => d[0] >= t0 + 2000).map((d) => d[1]));
    console.log(JSON.stringify({ sent, answered, received, p50, p99, max, steady: { p50: sp50, p99: sp99, max: smax } }));
    sources.forEach((s) => s.close());
    process.exit(0);
  }, secs * 1000 + 5000);
}, warm);
