// Drives examples/shannon-events/public/index.html (a client of Shannon's
// streaming endpoints) in headless Chromium, through playwright-core with
// Debian's chromium; prints one JSON line: the events the page's EventSource
// got ({name, id, data}), how many connections it opened, and how many events
// it had when it first lost its connection.
//   node shannon.js ask ORIGIN PROGRESS   ask a question; write "3" to PROGRESS once 3 events came
//   node shannon.js follow PAGE_URL       follow the workflow the URL names (?workflow_id=…&types=…)
const fs = require("fs");
const { chromium } = require("playwright-core");
const [mode, url, progress] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
setTimeout(() => { out({ error: "timed out" }); process.exit(1); }, 90000);
(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  await page.goto(mode === "ask" ? url + "/" : url);
  if (mode === "ask") {
    await page.click("#ask");
    await page.waitForFunction(() => window.seen.length >= 3, null, { timeout: 30000 });
    fs.writeFileSync(progress, "3");
  }
  await page.waitForFunction(() => document.getElementById("status").textContent === "done", null, { timeout: 60000 });
  out(await page.evaluate(() => ({
    seen: window.seen, opens: window.opens, seenAtError: window.seenAtError,
    answer: document.getElementById("answer").textContent,
  })));
  await browser.close();
  process.exit(0);
})().catch((e) => { out({ error: String(e) }); process.exit(1); });
