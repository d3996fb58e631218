// Opens N idle WebSocket (ws) or SSE (plain HTTP GET) connections to URL and
// keeps them until stdin closes. Prints "open N" once all are established.
//   node bench/conns.js ws|sse URL N
const [kind, url, n] = process.argv.slice(2);
const WebSocket = require("../spec/node/node_modules/ws");
const http = require("http");
let open = 0;
const done = () => { if (++open === Number(n)) console.log("open " + open); };
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
for (let i = 0; i < Number(n); i++) {
  if (kind === "ws") {
    const ws = new WebSocket(url);
    ws.on("open", done);
    ws.on("error", (e) => { console.error(String(e)); process.exit(1); });
  } else {
    http.get(url, { agent }, (res) => { res.on("data", () => {}); done(); })
      .on("error", (e) => { console.error(String(e)); process.exit(1); });
  }
}
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
