// Drives examples/workflow-events in headless Chromium (playwright-core with
// Debian's chromium): start a task, reload the page mid-stream, wait for the
// end, and print the events the page shows (one JSON line).
// usage: node workflow.js ORIGIN
const { chromium } = require("playwright-core");
const [origin] = process.argv.slice(2);
setTimeout(() => { console.log(JSON.stringify({ error: "timed out" })); process.exit(1); }, 30000);
(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage();
  await page.goto(origin + "/");
  await page.click("#start");
  await page.waitForFunction(() => document.querySelectorAll("#events li").length >= 3);
  const before = await page.$$eval("#events li", (l) => l.length);
  await page.reload();
  await page.waitForFunction(() => document.getElementById("status").textContent === "done");
  const events = await page.$$eval("#events li", (l) => l.map((li) => li.textContent));
  console.log(JSON.stringify({ before, events }));
  await browser.close();
  process.exit(0);
})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
