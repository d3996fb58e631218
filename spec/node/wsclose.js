// npm `ws` clients for the shutdown specs.
//   node wsclose.js watch URL [MSG]  sends MSG if given; prints {open:true}, each message {text}, then {closed: CODE, reason} when the server closes
//   node wsclose.js stall URL    prints {open:true}, then never reads again (its socket fills)
const WebSocket = require("ws");
const [, , mode, url, msg] = process.argv;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
setTimeout(() => { out({ timeout: true }); process.exit(2); }, 60000);
const ws = new WebSocket(url);
ws.on("open", () => {
  out({ open: true });
  if (msg !== undefined) ws.send(msg);
  if (mode === "stall") ws._socket.pause();
});
ws.on("message", (data) => out({ text: data.toString() }));
ws.on("close", (code, reason) => { out({ closed: code, reason: reason.toString() }); process.exit(0); });
ws.on("error", (e) => out({ error: String(e) }));
