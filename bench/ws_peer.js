// The npm `ws` server of bench/websocket.sh:
//   node ws_peer.js PORT feed N SIZE   sends N binary messages of SIZE bytes to each connection, as fast as
//                                      its socket takes them (it waits for drain past 4 MiB buffered)
//   node ws_peer.js PORT count N       counts the messages of the first connection; at N prints the ms
//                                      since that connection opened, and exits
// It prints "listening" once it listens.
const WebSocket = require(require("path").join(__dirname, "../spec/node/node_modules/ws"));
const [, , port, mode, n, size] = process.argv;
const N = Number(n);
const wss = new WebSocket.Server({ port: Number(port), host: "127.0.0.1", maxPayload: 64 << 20 });
wss.on("listening", () => console.log("listening"));
let first = true;
wss.on("connection", (ws) => {
  const t0 = process.hrtime.bigint();
  if (mode === "feed") {
    const buf = Buffer.alloc(Number(size), 120);
    let i = 0;
    const pump = () => {
      while (i < N && ws.readyState === 1) {
        ws.send(buf, { binary: true });
        i++;
        if (ws._socket.writableLength > 4 << 20) return ws._socket.once("drain", pump);
      }
    };
    pump();
  } else if (mode === "count" && first) {
    first = false;
    let got = 0;
    ws.on("message", () => {
      if (++got === N) {
        console.log(Number(process.hrtime.bigint() - t0) / 1e6);
        process.exit(0);
      }
    });
  }
});
