// WebSocket load for spec/threads_http_spec.lua (npm `ws`): C connections
// to URL, each sending M text messages {"c":c,"i":i} at once on open and
// waiting for M answers. Prints one JSON line and exits once every
// connection has its M answers (or was closed): {opened, answers, busy,
// other: [first few answers that are neither], closes: [codes], missing:
// ["c:i" never answered, first few], done: true}. Answers are matched by
// the {c, i} they echo. PAD > 0 adds a field of that many bytes to each
// message. Bounded: SECS seconds (then timeout: true, exit 2).
//   node wsload.js URL C M [SECS [PAD]]
const WebSocket = require("ws");
const [url, c, m, secs, pad] = process.argv.slice(2);
const C = Number(c), M = Number(m), P = "x".repeat(Number(pad || 0));
let opened = 0, answers = 0, busy = 0, finished = 0;
const other = [], closes = [], seen = new Set();
function report(extra) {
  const missing = [];
  for (let k = 0; k < C && missing.length < 5; k++)
    for (let i = 0; i < M && missing.length < 5; i++) if (!seen.has(k + ":" + i)) missing.push(k + ":" + i);
  console.log(JSON.stringify(Object.assign({ opened, answers, busy, other, closes, missing, done: true }, extra)));
}
setTimeout(() => { report({ timeout: true }); process.exit(2); }, Number(secs || 60) * 1000);
function end() {
  if (++finished < C) return;
  report({});
  process.exit(0);
}
for (let k = 0; k < C; k++) {
  const ws = new WebSocket(url);
  let got = 0, over = false;
  const fin = () => { if (!over) { over = true; end(); } };
  ws.on("open", () => {
    opened++;
    for (let i = 0; i < M; i++) ws.send(JSON.stringify(P ? { c: k, i, pad: P } : { c: k, i }));
  });
  ws.on("message", (data) => {
    const text = data.toString();
    let v = null;
    try { v = JSON.parse(text); } catch (e) { /* kept in other */ }
    if (v && v.status === 503) busy++;
    else if (v && typeof v.c === "number" && typeof v.i === "number") { answers++; seen.add(v.c + ":" + v.i); }
    else if (other.length < 5) other.push(text);
    if (++got === M) { ws.close(1000); fin(); }
  });
  ws.on("close", (code) => { if (!over) closes.push(code); fin(); });
  ws.on("error", (e) => { if (other.length < 5) other.push(String(e)); });
}
