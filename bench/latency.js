// Broadcast delivery latency: N SSE clients on URL for SECONDS; each event's
// data is {"t": "<RFC 3339 send time>"}; prints events received and the
// p50/p99/max of (receive time - send time) in ms.   node bench/latency.js URL N SECONDS
const http = require("http");
const [url, n, secs] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const delays = [];
let ready = 0, measuring = false;
for (let i = 0; i < Number(n); i++) {
  http.get(url, { agent }, (res) => {
    let buf = "";
    if (++ready === Number(n)) setTimeout(() => { measuring = true; setTimeout(report, Number(secs) * 1000); }, 500);
    res.setEncoding("utf8");
    res.on("data", (chunk) => {
      buf += chunk;
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, k);
        buf = buf.slice(k + 2);
        const m = ev.match(/data: (.*)/);
        if (m && measuring) delays.push(Date.now() - Date.parse(JSON.parse(m[1]).t));
      }
    });
  });
}
function report() {
  delays.sort((a, b) => a - b);
  const q = (p) => delays[Math.min(delays.length - 1, Math.floor(p * delays.length))];
  console.log(JSON.stringify({ events: delays.length, p50: q(0.5), p99: q(0.99), max: delays[delays.length - 1] }));
  process.exit(0);
}
