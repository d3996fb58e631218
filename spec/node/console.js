// Drives sluice's browser console in headless Chromium (playwright-core and
// Debian's chromium) for spec/console_spec.lua. Prints one JSON object:
// what each step saw. Every wait is bounded; a step that times out says so.
//   node spec/node/console.js ORIGIN KEY ARTIFACTS_DIR
"use strict";
const { chromium } = require("playwright-core");
const [origin, key, artifacts] = process.argv.slice(2);
const result = { errors: [], steps: {} };
const done = (code) => { console.log(JSON.stringify(result)); process.exit(code); };
setTimeout(() => { result.timeout = true; done(1); }, 150000);

const api = async (method, path, body) => {
  const r = await fetch(origin + path, { method, headers: { "X-API-Key": key, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, text: await r.text() };
};

(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (m) => { if (m.type() === "error") result.errors.push(m.text()); });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  const step = async (name, f) => {
    try { result.steps[name] = await f(); } catch (e) { result.steps[name] = { error: String(e).split("\n")[0] }; }
  };
  // An editor's text replaced as a user would: click, select all, type (one input).
  const setEditor = async (sel, text) => {
    await page.click(`${sel} .CodeMirror-lines`);
    await page.keyboard.press("Control+A");
    await page.keyboard.insertText(text);
  };
  const editorText = (sel) => page.$eval(`${sel} .CodeMirror`, (e) => e.CodeMirror.getValue());
  const shot = (name) => page.screenshot({ path: `${artifacts}/console-${name}.png` });
  const open = async (view, theme) => {
    await page.goto(`${origin}/console/?api_key=${encodeURIComponent(key)}&theme=${theme}#${view}`);
    await page.waitForSelector(`#view-${view}.active`, { timeout: 10000 });
  };

  // The page without a key: it asks for one (the APIs answer 401).
  await step("signed_out", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await ctx.newPage();
    await p.goto(`${origin}/console/?theme=dark#streams`);
    await p.waitForSelector("#streams-list .empty", { timeout: 10000 });
    const text = await p.textContent("#streams-list");
    await ctx.close();
    return { text };
  });

  for (const theme of ["dark", "light"]) {
    await step(`streams_${theme}`, async () => {
      await open("streams", theme);
      await page.waitForSelector('.card[data-stream="main"] .node', { timeout: 10000 });
      // two refreshes: the charts have points
      await page.waitForFunction(() => [...document.querySelectorAll('.card[data-stream="ticker"] svg path')]
        .some((p) => (p.getAttribute("d").match(/L/g) || []).length >= 3), null, { timeout: 20000 });
      await shot(`streams-${theme}`);
      // Pushed, not polled: the ticker's count and chart change from one
      // event to the next, and the page asks for nothing meanwhile.
      const asked = [];
      const onReq = (q) => asked.push(new URL(q.url()).pathname);
      page.on("request", onReq);
      const sample = () => page.evaluate(() => {
        const card = document.querySelector('.card[data-stream="ticker"]');
        return { events: +document.querySelector("#streams-list").dataset.events, count: card.querySelector(".node.n-in .c").textContent,
          chart: card.querySelector(".charts svg path:last-child").getAttribute("d") };
      });
      const first = await sample();
      await page.waitForFunction((n) => +document.querySelector("#streams-list").dataset.events >= n + 2, first.events, { timeout: 20000 });
      const second = await sample();
      page.off("request", onReq);
      return {
        first, second, asked,
        cards: await page.$$eval(".card", (cs) => cs.map((c) => c.dataset.stream)),
        nodes: await page.$$eval('.card[data-stream="main"] .node .n', (ns) => ns.map((n) => n.textContent)),
      };
    });
    await step(`events_${theme}`, async () => {
      await open("events", theme);
      await page.waitForSelector('#ev-list li[data-name="orders"]', { timeout: 10000 });
      await page.click('#ev-list li[data-name="orders"]');
      await page.waitForFunction(() => document.querySelector("#ev-info").textContent.includes("messages"), null, { timeout: 10000 });
      await page.waitForSelector('#ev-groups .group[data-group="billing"] svg', { timeout: 10000 });
      await page.fill("#ev-from", "0");
      await page.click("#ev-tail");
      await page.waitForFunction(() => document.querySelectorAll("#ev-rows tr").length >= 2, null, { timeout: 10000 });
      await shot(`events-${theme}`);
      await page.click("#ev-stop");
      return { rows: await page.$$eval("#ev-rows tr", (rs) => rs.length),
        groups: await page.$$eval("#ev-groups .group", (g) => g.map((x) => x.dataset.group)) };
    });
    await step(`playground_${theme}`, async () => {
      await open("playground", theme);
      await setEditor("#pg-code", 'this.total = this.price * this.qty\nmeta.currency = "EUR"\n');
      await setEditor("#pg-input", '{"price": 2.5, "qty": 4}');
      await page.click("#pg-run");
      await page.waitForFunction(() => document.querySelector("#pg-out").textContent.includes("total"), null, { timeout: 15000 });
      const out = await page.textContent("#pg-out");
      const meta = await page.textContent("#pg-outmeta");
      // an error on line 3, marked in the gutter
      await setEditor("#pg-code", 'local a = 1\nlocal b = 2\nerror("no price for " .. this.sku)\n');
      await setEditor("#pg-input", '{"sku": "X1"}');
      await page.click("#pg-run");
      await page.waitForSelector("#pg-error:not([hidden])", { timeout: 15000 });
      const error = await page.textContent("#pg-error");
      const marked = await page.$$eval("#pg-code .sl-err", (g) => g.map((d) => d.dataset.line));
      await shot(`playground-error-${theme}`);
      // completion of sluice's globals from the API source
      await setEditor("#pg-code", "");
      await page.keyboard.type("hash.sh");
      await page.waitForSelector(".CodeMirror-hints li .lbl", { timeout: 5000 });
      const completions = await page.$$eval(".CodeMirror-hints li .lbl", (s) => s.map((x) => x.textContent));
      await shot(`playground-${theme}`);
      await page.keyboard.press("Escape");
      return { out, meta, error, marked, completions };
    });
    await step(`config_${theme}`, async () => {
      await open("config", theme);
      await page.waitForFunction(() => document.querySelector("#cf-code .CodeMirror").CodeMirror.getValue().includes("processors"), null, { timeout: 10000 });
      const loaded = await editorText("#cf-code");
      // a mistake: marked at its line as it is typed
      await setEditor("#cf-code", loaded.replace("output:", "outptu:"));
      await page.waitForSelector("#cf-code .sl-err", { timeout: 10000 });
      const diags = await page.$$eval("#cf-diags li", (l) => l.map((x) => x.textContent));
      await shot(`config-error-${theme}`);
      await setEditor("#cf-code", loaded);
      await page.waitForFunction(() => document.querySelector("#cf-lint").textContent === "no problems", null, { timeout: 10000 });
      await shot(`config-${theme}`);
      return { loaded, diags };
    });
  }

  // Apply a changed config: the running stream changes (the spec checks it).
  await step("apply", async () => {
    await open("config", "dark");
    await page.waitForFunction(() => document.querySelector("#cf-code .CodeMirror").CodeMirror.getValue().includes("this.v = 1"), null, { timeout: 10000 });
    const text = await editorText("#cf-code");
    await setEditor("#cf-code", text.replace("this.v = 1", "this.v = 2"));
    await page.waitForFunction(() => document.querySelector("#cf-lint").textContent === "no problems", null, { timeout: 10000 });
    await page.click("#cf-apply");
    await page.waitForFunction(() => document.querySelector("#cf-result").textContent.startsWith("applied"), null, { timeout: 15000 });
    const after = JSON.parse((await api("POST", "/in", {})).text).v;
    return { result: await page.textContent("#cf-result"), after };
  });

  // Apply from the playground: the script replaces the stream's lua processor.
  await step("playground_apply", async () => {
    await open("playground", "dark");
    await page.waitForSelector('#pg-stream option[value="main"]', { state: "attached", timeout: 10000 });
    await page.selectOption("#pg-stream", "main");
    await page.waitForFunction(() => document.querySelector("#pg-proc").textContent.includes("processor 0 (lua)"), null, { timeout: 10000 });
    await setEditor("#pg-code", "this.v = 3\nthis.by = \"playground\"\n");
    await page.click("#pg-apply");
    await page.waitForFunction(() => document.querySelector("#pg-applied").textContent.startsWith("applied"), null, { timeout: 15000 });
    return { applied: await page.textContent("#pg-applied"), after: JSON.parse((await api("POST", "/in", {})).text) };
  });

  // Create a stream from the page, see it listed, delete it (confirming).
  await step("create_delete", async () => {
    await open("events", "dark");
    await page.fill("#ev-new", "made-here");
    await page.fill("#ev-parts", "3");
    await page.click('#ev-create button[type="submit"]');
    await page.waitForSelector('#ev-list li[data-name="made-here"]', { timeout: 10000 });
    await page.waitForFunction(() => document.querySelector("#ev-info").textContent.includes("partitions 3"), null, { timeout: 10000 });
    const info = JSON.parse((await api("GET", "/stream/made-here/info")).text);
    page.once("dialog", (d) => d.accept());
    await page.click("#ev-delete");
    await page.waitForFunction(() => !document.querySelector('#ev-list li[data-name="made-here"]'), null, { timeout: 10000 });
    return { partitions: info.partition_count, after: (await api("GET", "/stream/made-here/info")).status };
  });

  // The live tail shows events published while it is open.
  await step("live_tail", async () => {
    await open("events", "dark");
    await page.waitForSelector('#ev-list li[data-name="orders"]', { timeout: 10000 });
    await page.click('#ev-list li[data-name="orders"]');
    await page.fill("#ev-key", "k-live");
    await page.click("#ev-tail");
    await page.waitForFunction(() => document.querySelector("#ev-status").textContent === "live", null, { timeout: 10000 });
    const before = await page.$$eval("#ev-rows tr", (r) => r.length);
    const pub = [];
    for (let i = 0; i < 3; i++) pub.push((await api("POST", "/stream/orders/publish", { event: "live", partition_key: "k-live", data: { n: i } })).status);
    // one the key filter drops, then one more it keeps: one partition keeps the order
    await api("POST", "/stream/orders/publish", { event: "other", partition_key: "k-other", data: { n: 99 } });
    pub.push((await api("POST", "/stream/orders/publish", { event: "live", partition_key: "k-live", data: { n: 3 } })).status);
    await page.waitForFunction(() => document.querySelectorAll("#ev-rows tr").length >= 4, null, { timeout: 10000 });
    const rows = await page.$$eval("#ev-rows tr td.data", (t) => t.map((x) => x.textContent));
    return { before, pub, rows };
  });

  await browser.close();
  done(0);
})().catch((e) => { result.fatal = String(e); done(1); });
