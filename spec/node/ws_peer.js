// A WebSocket server (npm `ws`) for the websocket client specs. It writes
// what happens as JSON lines to stdout:
//   {ev: "listening"}, {ev: "connection", n}, {ev: "message", text|hex},
//   {ev: "ping"}, {ev: "pong"}, {ev: "close", code, reason}
//   node ws_peer.js PORT MODE [ARG]      (CERT and KEY in the environment: wss)
// More environment: CLIENT_CA (a PEM file): wss that requires a client
// certificate signed by it, whose CN the connection event carries; JWT_PUB
// (a PEM public key): upgrades need `Authorization: Bearer` with an RS256
// token it verifies (else 401), whose claims and header the connection event carries.
// MODE:
//   record          logs what the client sends
//   feed N          sends {"n":1}..{"n":N} as text, then one binary 0x00ff, to each connection
//   close CODE      closes each connection with CODE ("bye")
//   noread          stops reading the socket (the client's writes back up)
//   huge            sends a frame header claiming 1 GiB, then zeros, while the socket takes them
//   raw HEX         writes the bytes HEX on the socket after the upgrade (a malformed frame)
//   ping            pings the client every 100 ms and logs the pongs
//   end             ends the TCP connection (FIN) without a close frame
const crypto = require("crypto");
const fs = require("fs");
const https = require("https");
const WebSocket = require("ws");
const [, , port, mode, arg] = process.argv;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

let server;
if (process.env.CERT) {
  const opts = { cert: fs.readFileSync(process.env.CERT), key: fs.readFileSync(process.env.KEY) };
  if (process.env.CLIENT_CA) Object.assign(opts, { requestCert: true, rejectUnauthorized: true, ca: fs.readFileSync(process.env.CLIENT_CA) });
  server = https.createServer(opts);
  server.on("tlsClientError", (e) => out({ ev: "tls_error", error: String(e) }));
}
const b64url = (s) => Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64");
// The claims and JOSE header of a valid RS256 token in `Authorization: Bearer`, or null.
const jwtClaims = (req) => {
  const m = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(req.headers.authorization || "");
  if (!m) return null;
  const header = JSON.parse(b64url(m[1]).toString());
  const ok = header.alg === "RS256" &&
    crypto.verify("RSA-SHA256", Buffer.from(m[1] + "." + m[2]), fs.readFileSync(process.env.JWT_PUB), b64url(m[3]));
  return ok ? { claims: JSON.parse(b64url(m[2]).toString()), header } : null;
};
const verifyClient = process.env.JWT_PUB
  ? (info, cb) => {
      const claims = jwtClaims(info.req);
      if (!claims) out({ ev: "refused", auth: info.req.headers.authorization || null });
      cb(!!claims, 401, "Unauthorized");
    }
  : undefined;
const wss = new WebSocket.Server(server ? { server, maxPayload: 1 << 30, verifyClient }
  : { port: Number(port), host: "127.0.0.1", maxPayload: 1 << 30, verifyClient });
if (server) server.listen(Number(port), "127.0.0.1", () => out({ ev: "listening" }));
else wss.on("listening", () => out({ ev: "listening" }));

let conns = 0;
wss.on("connection", (ws, req) => {
  conns++;
  const cert = req.socket.getPeerCertificate ? req.socket.getPeerCertificate() : null;
  out({ ev: "connection", n: conns, auth: req.headers.authorization || null, url: req.url,
        cn: cert && cert.subject ? cert.subject.CN : null, ...(process.env.JWT_PUB ? { claims: jwtClaims(req).claims, jose: jwtClaims(req).header } : {}) });
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
