// Runs a browser-style JavaScript snippet from a document (a seed's
// WebSocket example) under Node with npm `ws` as the global WebSocket, and
// prints what it console.logs, one line each; exits 0 after N lines, 2 when
// they do not come within 20 s.
//   node snippet.js N FILE
const fs = require("fs");
const WS = require("ws");
const [n, file] = process.argv.slice(2);
// A browser WebSocket reports a refused connection as error + close events;
// an EventEmitter without an `error` listener would throw instead.
global.WebSocket = class extends WS {
  constructor(...args) {
    super(...args);
    this.on("error", () => {});
  }
};
let lines = 0;
console.log = (...args) => {
  process.stdout.write(args.map(String).join(" ") + "\n");
  if (++lines >= Number(n)) process.exit(0);
};
setTimeout(() => { process.stdout.write("timed out\n"); process.exit(2); }, 20000);
new Function(fs.readFileSync(file, "utf8"))();
