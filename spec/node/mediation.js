// Clients of the examples/mediation specs (nobody's code here does the work:
// Chromium's EventSource, npm `ws`). Each runs until STOPFILE exists or SECS
// passed, and keeps what it saw in OUT, so the spec can watch it mid-flow.
//   node mediation.js page ORIGIN OUT STOPFILE SECS
//       opens ORIGIN/ in headless Chromium (playwright-core, Debian's chromium) and
//       rewrites OUT with the page's state every 100 ms: {status, rows: [{sensor, n, ...}]}
//   node mediation.js ws URL OUT STOPFILE SECS
//       a WebSocket client that reconnects (200 ms after a close or a refused
//       connection) and appends every message to OUT, one line each; a line
//       "open" marks each connection
const fs = require("fs");
const [, , mode, target, outPath, stopFile, secs] = process.argv;
const deadline = Date.now() + Number(secs) * 1000;
const over = () => fs.existsSync(stopFile) || Date.now() > deadline;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (mode === "page") {
  const { chromium } = require("playwright-core");
  (async () => {
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
    const page = await browser.newPage();
    await page.goto(target + "/");
    while (!over()) {
      const state = await page.evaluate(() => ({
        status: document.getElementById("status").textContent,
        rows: [...document.querySelectorAll("#readings tr")].map((tr) =>
          [...tr.children].map((td) => td.textContent)),
      }));
      fs.writeFileSync(outPath + ".tmp", JSON.stringify(state));
      fs.renameSync(outPath + ".tmp", outPath);
      await sleep(100);
    }
    await browser.close();
    process.exit(0);
  })().catch((e) => { fs.writeFileSync(outPath, JSON.stringify({ error: String(e) })); process.exit(1); });
} else if (mode === "ws") {
  const WebSocket = require("ws");
  const log = (l) => fs.appendFileSync(outPath, l + "\n");
  const connect = () => {
    if (over()) process.exit(0);
    const ws = new WebSocket(target);
    ws.on("open", () => log("open"));
    ws.on("message", (data) => log(data.toString()));
    ws.on("error", () => {});
    ws.on("close", () => setTimeout(connect, 200));
  };
  setInterval(() => { if (over()) process.exit(0); }, 100);
  connect();
}
