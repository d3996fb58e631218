// A WebSocket server (npm `ws`) for the websocket client specs. It writes
// what happens as JSON lines to stdout:
//   {ev: "listening"}, {ev: "connection", n}, {ev: "message", text|hex},
//   {ev: "ping"}, {ev: "pong"}, {ev: "close", code, reason}
//   node ws_peer.js PORT MODE [ARG]      (CERT and KEY in the environment: wss)
// MODE:
//   record          logs what the client sends
//   feed N          sends {"n":1}..{"n":N} as text, then one binary 0x00ff, to each connection
//   close CODE      closes each connection with CODE ("bye")
//   noread          stops reading the socket (the client's writes back up)
//   huge            sends a frame header claiming 1 GiB, then zeros, while the socket takes them
//   raw HEX         writes the bytes HEX on the socket after the upgrade (a malformed frame)
//   ping            pings the client every 100 ms and logs the pongs
//   end             ends the TCP connection (FIN) without a close frame
const fs = require("fs");
const https = require("https");
const WebSocket = require("ws");
const [, , port, mode, arg] = process.argv;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

let server;
if (process.env.CERT) {
  server = https.createServer({ cert: fs.readFileSync(process.env.CERT), key: fs.readFileSync(process.env.KEY) });
}
const wss = new WebSocket.Server(server ? { server, maxPayload: 1 << 30 } : { port: Number(port), host: "127.0.0.1", maxPayload: 1 << 30 });
if (server) server.listen(Number(port), "127.0.0.1", () => out({ ev: "listening" }));
else wss.on("listening", () => out({ ev: "listening" }));

let conns = 0;
wss.on("connection", (ws, req) => {
  conns++;
  out({ ev: "connection", n: conns, auth: req.headers.authorization || null, url: req.url });
  ws.on("message", (data, isBinary) => {
    out(isBinary ? { ev: "message", hex: Buffer.from(data).toString("hex") } : { ev: "message", text: data.toString() });
  });
  ws.on("ping", () => out({ ev: "ping" }));
  ws.on("pong", () => out({ ev: "pong" }));
  ws.on("close", (code, reason) => out({ ev: "close", code, reason: reason.toString() }));
  ws.on("error", (e) => out({ ev: "error", error: String(e) }));
  if (mode === "feed") {
    for (let i = 1; i <= Number(arg); i++) ws.send(JSON.stringify({ n: i }));
    ws.send(Buffer.from([0x00, 0xff]));
  } else if (mode === "close") {
    ws.close(Number(arg), "bye");
  } else if (mode === "noread") {
    ws._socket.pause();
  } else if (mode === "huge") {
    const s = ws._socket;
    // FIN + binary, unmasked, 64-bit length 2^30 (under wslay's own 2^31 - 1 limit)
    s.write(Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0x40, 0, 0, 0]));
    const zeros = Buffer.alloc(1 << 16);
    let sent = 0;
    const pump = () => {
      while (sent < 2 ** 30 && !s.destroyed) {
        sent += zeros.length;
        if (!s.write(zeros)) return s.once("drain", pump);
      }
    };
    s.on("error", () => {});
    s.on("close", () => out({ ev: "socket_closed", sent }));
    pump();
  } else if (mode === "raw") {
    ws._socket.write(Buffer.from(arg, "hex"));
  } else if (mode === "end") {
    ws._socket.end();
  } else if (mode === "ping") {
    const t = setInterval(() => ws.readyState === 1 && ws.ping(), 100);
    ws.on("close", () => clearInterval(t));
  }
});
