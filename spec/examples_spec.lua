-- Every example config lints, runs and does what its comment says.
local h = require("spec.helpers")
local json = h.json

describe("examples", function()
  it("lint clean", function()
    local _, list = h.sh("ls examples/*.yaml examples/mediation/*.yaml | grep -v '_test.yaml$'")
    local files = h.lines(list)
    assert.is_true(#files >= 2)
    for _, f in ipairs(files) do
      local r = h.sluice("lint " .. f)
      assert.are.equal(0, r.code, f .. ": " .. r.stderr)
    end
  end)

  it("pass their config tests, the quickstart's among them", function()
    local r = h.sluice("test examples")
    assert.are.equal(0, r.code, r.stdout)
    assert.matches("PASS examples/quickstart_test.yaml: the worker adds the result", r.stdout, 1, true)
    assert.matches("PASS examples/quickstart_test.yaml: in gives every event a job id", r.stdout, 1, true)
  end)

  it("generate prints enriched orders and stops cleanly on SIGINT", function()
    local code, out, err = h.sh("timeout -s INT --preserve-status 2.5 " .. h.bin .. " run examples/generate.yaml")
    assert.are.equal(0, code, err)
    local lines = h.lines(out)
    assert.is_true(#lines >= 2, out)
    for k, l in ipairs(lines) do
      local d = json.decode(l)
      assert.are.equal(k, d.order)
      assert.are.equal(d.qty * d.price, d.total)
      assert.matches("^%x+%-", d.id)
    end
  end)

  it("orders routes by status and dead-letters the invalid order", function()
    local d = h.tmpdir()
    assert(os.execute("cp examples/orders.yaml examples/orders.ndjson " .. d))
    local r = h.sluice("run " .. d .. "/orders.yaml")
    local ok, review, dead = h.read(d .. "/out/orders-ok.ndjson"), h.read(d .. "/out/orders-review.ndjson"),
      h.read(d .. "/out/dead-letter.ndjson")
    h.rmdir(d)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({id = 1, qty = 2, price = 5, total = 10}, json.decode(ok))
    assert.are.same({id = 3, qty = 20, price = 9.5, total = 190}, json.decode(review))
    assert.are.equal('{"id":2,"qty":"two","price":5}\n', dead)
  end)

  it("webhook answers a POST with the enriched event and streams it live", function()
    local port = h.port()
    local yaml = h.read("examples/webhook.yaml"):gsub("%${HTTP_ADDRESS:127%.0%.0%.1:4195}", "127.0.0.1:" .. port)
    local srv = h.serve(yaml, {port = port})
    local sse = h.tmpname()
    os.execute(string.format("curl -s -N -m 1.5 %s/live/events > %s &", srv.url, sse))
    os.execute("sleep 0.3")
    local _, out = h.sh("curl -s -X POST -d '{\"n\":1}' " .. srv.url .. "/hooks/github")
    os.execute("sleep 1.5")
    local live = h.read(sse) or ""
    os.remove(sse)
    assert.are.equal(0, srv.stop())
    local doc = json.decode(out)
    assert.are.equal("github", doc.source)
    assert.are.equal(1, doc.n)
    assert.matches("^%x+%-", doc.id)
    assert.matches('"source":"github"', live)
  end)

  it("workflow-events shows a task's events live in Chromium and resumes after a reload, without gap or duplicate", function()
    local yaml = h.read("examples/workflow-events/workflow.yaml"):gsub("%${HTTP_ADDRESS:0%.0%.0%.0:4195}", "127.0.0.1:$PORT")
    local srv = h.serve(yaml, {before = function(dir)
      assert(os.execute("cp -r examples/workflow-events/public examples/workflow-events/worker.lua " .. dir))
    end})
    local _, out = h.sh("node spec/node/workflow.js " .. srv.url)
    assert.are.equal(0, srv.stop())
    local r = json.decode(out)
    assert.is_nil(r.error, out)
    assert.is_true(r.before >= 3 and r.before < #r.events, out)
    local names = {}
    for k, e in ipairs(r.events) do names[k] = e:match("^(%S+)") end
    assert.are.same({"TASK_CREATED", "WORKFLOW_STARTED", "LLM_PARTIAL", "LLM_PARTIAL", "LLM_PARTIAL", "LLM_PARTIAL",
      "LLM_PARTIAL", "LLM_OUTPUT", "STREAM_END"}, names)
    for i = 1, 5 do assert.matches('"index":' .. i, r.events[2 + i]) end
  end)
end)
