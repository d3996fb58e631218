// One WebSocket client (npm `ws`) that runs steps in order, for
// spec/threads_http_spec.lua. Prints each message received as a JSON line
// {text}, {sent: TEXT} once a message is handed to the socket, {closed:
// code} when the server closes, {done: true} after the last step. Bounded: 90 s (then {timeout: true}, exit 2).
//   node wsseq.js URL STEP...
// STEP: send:TEXT   sends TEXT
//       recv        waits for the next message
//       touch:PATH  creates the file PATH (a gate the spec or an upstream waits on)
const WebSocket = require("ws");
const fs = require("fs");
const [url, ...steps] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
setTimeout(() => { out({ timeout: true }); process.exit(2); }, 90000);
const ws = new WebSocket(url);
const inbox = [];
let waiting = null;
ws.on("message", (data) => {
  out({ text: data.toString() });
  if (waiting) { const w = waiting; waiting = null; w(); } else inbox.push(data);
});
ws.on("close", (code) => { out({ closed: code }); process.exit(0); });
ws.on("error", (e) => { out({ error: String(e) }); process.exit(1); });
ws.on("open", async () => {
  for (const s of steps) {
    if (s.startsWith("send:")) {
      await new Promise((resolve) => ws.send(s.slice(5), resolve));
      out({ sent: s.slice(5) });
    } else if (s.startsWith("touch:")) fs.writeFileSync(s.slice(6), "");
    else if (s === "recv") {
      if (inbox.length) inbox.shift();
      else await new Promise((resolve) => { waiting = resolve; });
    }
  }
  out({ done: true });
  ws.close(1000);
  process.exit(0);
});
