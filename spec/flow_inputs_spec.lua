-- The broker and sequence inputs (connectors/flow/broker_in.c, sequence.c):
-- children merged or one after the other, each keeping its own acks, and
-- /ready naming the child that is not connected.
local h = require("spec.helpers")

local function run_in(dir, yaml, opts)
  opts = opts or {}
  opts.path = h.write(dir .. "/config.yaml", yaml)
  return h.run_config(yaml, opts)
end

local function assert_ok(r)
  assert.are.equal(0, r.code, "exit code " .. tostring(r.code) .. "; stderr:\n" .. (r.stderr or ""))
end

local ready_status = h.ready

-- POSTs body to url; returns the HTTP status.
local function post(url, body)
  local _, out = h.sh(string.format("curl -s -m 10 -o /dev/null -w '%%{http_code}' --data-binary %s %s",
    h.shell_quote(body), url))
  return tonumber(out)
end

describe("broker input", function()
  local d
  before_each(function() d = h.tmpdir() end)
  after_each(function() h.rmdir(d) end)

  it("merges its children (copies of each) into one stream; it ends when all of them ended", function()
    h.write(d .. "/a.ndjson", '{"f":1}\n{"f":2}\n{"f":3}\n')
    local r = run_in(d, [[
input:
  broker:
    copies: 2
    inputs:
      - file: { paths: [a.ndjson] }
      - generate: { count: 50, interval: 0, batch_size: 7, mapping: 'return { g = i }' }
output:
  file: { path: out.ndjson }
]])
    assert_ok(r)
    local f, g = {}, {}
    for _, m in ipairs(h.decode_lines(h.lines(h.read(d .. "/out.ndjson")))) do
      if m.f then f[m.f] = (f[m.f] or 0) + 1 else g[m.g] = (g[m.g] or 0) + 1 end
    end
    for i = 1, 3 do assert.are.equal(2, f[i], "file line " .. i) end
    for i = 1, 50 do assert.are.equal(2, g[i], "generated " .. i) end
  end)

  it("runs a child's own processors on its messages only, before the pipeline's", function()
    local r = run_in(d, [[
input:
  broker:
    inputs:
      - generate: { count: 3, interval: 0, mapping: 'return { a = i }' }
        processors:
          - lua: 'this.own = true'
          - batch: { count: 2 }
      - generate: { count: 3, interval: 0, mapping: 'return { b = i }' }
pipeline:
  processors:
    - lua: 'this.seen = this.own or false'
output:
  file: { path: out.ndjson }
]])
    assert_ok(r)
    local a, b = 0, 0
    for _, m in ipairs(h.decode_lines(h.lines(h.read(d .. "/out.ndjson")))) do
      if m.a then
        a = a + 1
        assert.is_true(m.own and m.seen)
      else
        b = b + 1
        assert.is_nil(m.own)
        assert.is_false(m.seen)
      end
    end
    -- the third `a` was held by the child's batch processor: flushed when the child ended
    assert.are.same({3, 3}, {a, b})
  end)

  it("acknowledges each message to the child that read it", function()
    -- Two http_server children: each answers its own client from its own
    -- transaction (200 delivered, 502 failed), whichever child the other
    -- message came through.
    local srv = h.serve([[
http: { address: 127.0.0.1:$PORT }
input:
  broker:
    inputs:
      - http_server: { path: /a }
      - http_server: { path: /b }
pipeline:
  processors:
    - lua: |
        if content() == "bad" then error("refused") end
output:
  reject_errored:
    drop: {}
]])
    local ok, err = pcall(function()
      assert.are.equal(200, post(srv.url .. "/a", "good"))
      assert.are.equal(502, post(srv.url .. "/b", "bad"))
      assert.are.equal(200, post(srv.url .. "/b", "good"))
      assert.are.equal(502, post(srv.url .. "/a", "bad"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("keeps the others flowing while one child cannot connect, and /ready names that child", function()
    local dead = h.port()
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  broker:
    inputs:
      - generate: { interval: 20ms, mapping: 'return { g = i }' }
      - label: cold
        redis_list: { url: "redis://127.0.0.1:%d", key: nothing }
output:
  file: { path: %s/out.ndjson }
]], dead, d))
    local ok, err = pcall(function()
      local lines = h.wait_lines(d .. "/out.ndjson", 5)
      assert.is_true(#lines >= 5, "only " .. #lines .. " lines came through")
      local code, body = ready_status(srv)
      assert.are.equal(503, code)
      assert.matches("broker.inputs.1 (cold)", body, 1, true)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("is ready when every child is", function()
    local srv = h.serve([[
http: { address: 127.0.0.1:$PORT }
input:
  broker:
    inputs:
      - generate: { interval: 1s, mapping: 'return { g = i }' }
      - http_server: { path: /in }
output:
  drop: {}
]])
    local ok, err = pcall(function()
      assert.are.equal(200, (ready_status(srv)))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("stops every child on SIGTERM and drains what is in flight", function()
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  broker:
    inputs:
      - generate: { interval: 0, mapping: 'return { g = i }' }
      - generate: { interval: 0, mapping: 'return { h = i }' }
output:
  file: { path: %s/out.ndjson }
]], d))
    local ok, err = pcall(function()
      assert.is_true(#h.wait_lines(d .. "/out.ndjson", 100) >= 100)
    end)
    h.stop_after(srv, ok, err)
    -- every line written whole: nothing was cut by the shutdown
    for _, l in ipairs(h.lines(h.read(d .. "/out.ndjson"))) do assert.is_table(h.json.decode(l)) end
  end)

  it("reports a child's config error at its path, and an empty list", function()
    local r = run_in(d, [[
input:
  broker:
    inputs:
      - file: { path: a.ndjson }
output:
  drop: {}
]], {cmd = "lint"})
    assert.are_not.equal(0, r.code)
    assert.matches("input.broker.inputs.0.file.path: unknown field", r.stderr .. r.stdout, 1, true)
    r = run_in(d, "input:\n  broker:\n    inputs: []\noutput:\n  drop: {}\n", {cmd = "lint"})
    assert.are_not.equal(0, r.code)
    assert.matches("inputs", r.stderr .. r.stdout, 1, true)
  end)
end)

describe("sequence input", function()
  local d
  before_each(function() d = h.tmpdir() end)
  after_each(function() h.rmdir(d) end)

  it("runs each child to its end, then the next, in order", function()
    h.write(d .. "/a.ndjson", '{"f":1}\n{"f":2}\n')
    local r = run_in(d, [[
max_in_flight: 1
input:
  sequence:
    inputs:
      - file: { paths: [a.ndjson] }
      - generate: { count: 3, interval: 0, mapping: 'return { g = i }' }
      - stdin: {}
      - file: { paths: [a.ndjson] }
output:
  stdout: {}
]], {stdin = '{"s":1}\n{"s":2}\n'})
    assert_ok(r)
    assert.are.same({{f = 1}, {f = 2}, {g = 1}, {g = 2}, {g = 3}, {s = 1}, {s = 2}, {f = 1}, {f = 2}},
      h.decode_lines(h.lines(r.stdout)))
  end)

  it("holds the next child back until the one before has ended", function()
    -- The first child never ends: nothing of the second may come through.
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  sequence:
    inputs:
      - generate: { interval: 10ms, mapping: 'return { first = i }' }
      - generate: { count: 5, interval: 0, mapping: 'return { second = i }' }
output:
  file: { path: %s/out.ndjson }
]], d))
    local ok, err = pcall(function()
      local lines = h.wait_lines(d .. "/out.ndjson", 20)
      assert.is_true(#lines >= 20)
      assert.is_nil((h.read(d .. "/out.ndjson")):find("second", 1, true))
    end)
    h.stop_after(srv, ok, err)
  end)
end)
