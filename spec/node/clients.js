// Real third-party clients for the specs: npm `ws`, npm `eventsource`, and
// Chromium's own EventSource/WebSocket driven by playwright-core.
//   node clients.js ws URL N [message...]       print N received messages (JSON lines)
//   node clients.js sse URL N                   print N events {id, type, data}
//   node clients.js browser ORIGIN SSE_URL WS_URL N   both, from a page served at ORIGIN
const [, , mode, ...args] = process.argv;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const deadline = (ms) => setTimeout(() => { out({ timeout: true }); process.exit(2); }, ms);

if (mode === "ws") {
  const WebSocket = require("ws");
  const [url, n, ...send] = args;
  deadline(5000);
  let got = 0;
  const ws = new WebSocket(url);
  ws.on("open", () => send.forEach((m) => ws.send(m)));
  ws.on("message", (data, isBinary) => {
    out(isBinary ? { binary: Buffer.from(data).toString("hex") } : { text: data.toString() });
    if (++got >= Number(n)) { ws.close(1000); process.exit(0); }
  });
  ws.on("close", (code) => { out({ closed: code }); process.exit(0); });
  ws.on("error", (e) => { out({ error: String(e) }); process.exit(1); });
} else if (mode === "sse") {
  const EventSource = require("eventsource");
  const [url, n] = args;
  deadline(5000);
  let got = 0;
  const es = new EventSource(url);
  const seen = (e) => {
    out({ id: e.lastEventId, type: e.type, data: e.data });
    if (++got >= Number(n)) { es.close(); process.exit(0); }
  };
  es.onmessage = seen;
  es.addEventListener("tick", seen);
  es.onerror = () => {};
} else if (mode === "browser") {
  const { chromium } = require("playwright-core");
  const [origin, sseUrl, wsUrl, n] = args;
  deadline(20000);
  (async () => {
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    const page = await browser.newPage();
    await page.goto(origin);
    const result = await page.evaluate(async ([sseUrl, wsUrl, n]) => {
      const take = (start) => new Promise((resolve) => start(resolve));
      const sse = await take((done) => {
        const got = [];
        const es = new EventSource(sseUrl);
        es.onmessage = (e) => { got.push({ id: e.lastEventId, data: e.data }); if (got.length >= n) { es.close(); done(got); } };
      });
      const ws = await take((done) => {
        const got = [];
        const s = new WebSocket(wsUrl);
        s.onmessage = (e) => { got.push(e.data); if (got.length >= n) { s.close(); done(got); } };
      });
      return { sse, ws };
    }, [sseUrl, wsUrl, Number(n)]);
    out(result);
    await browser.close();
    process.exit(0);
  })().catch((e) => { out({ error: String(e) }); process.exit(1); });
}
