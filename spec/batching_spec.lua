-- `batching` on inputs and outputs (Benthos's batch policy): count, byte_size,
-- period, check and processors; transactions acknowledged after delivery.
local h = require("spec.helpers")

-- A Lua module that prefixes each message with the size of its batch.
local function sizes_module(dir)
  return h.write(dir .. "/bsize.lua", [[
return {process_batch = function(batch)
  for _, m in ipairs(batch) do m:set_content(#batch .. ":" .. m:content()) end
end}
]])
end

-- sluice taking POSTs on /in and writing to stdout with batching (YAML flow text).
local function serve_batching(batching)
  return h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server: {path: /in, timeout: 60s}
output:
  stdout:
    batching: ]] .. batching .. "\n")
end

-- POSTs body in the background; the file at out gets the status once answered.
local function post_later(srv, body, out)
  os.execute(string.format("curl -s -m 60 -o /dev/null -w '%%{http_code}' -d %s %s/in > %s 2>&1 &", body, srv.url, out))
  assert.truthy(h.wait_for(function()
    local _, m = h.sh("curl -s " .. srv.url .. "/metrics")
    return m:find('input_received{stream="main",label="http_server",path="root.input"} 1', 1, true)
  end, 30), "the message never arrived")
end

-- POSTs body now; the status it got.
local function post(srv, body)
  local code, status = h.sh(string.format("curl -s -m 60 -o /dev/null -w '%%{http_code}' -d %s %s/in", body, srv.url))
  assert.are.equal(0, code)
  return status
end

-- The second of two POSTs is answered, then the first (waiting in the batch), and the batch of both is written.
local function second_completes(srv, out1)
  assert.are.equal("200", post(srv, "two"))
  assert.are.equal("200", h.wait_for(function() return h.read(out1) ~= "" and h.read(out1) end, 30))
  assert.are.same({"2:one", "2:two"}, h.lines(srv.stdout()))
end

local function run_in(dir, yaml, stdin)
  local cfg = h.write(dir .. "/c.yaml", yaml)
  return h.sluice("run " .. cfg, {stdin = stdin, timeout = 60})
end

describe("batching", function()
  local dir
  before_each(function() dir = h.tmpdir(); sizes_module(dir) end)
  after_each(function() h.rmdir(dir) end)

  it("on stdin: batches of count, processors on each formed batch, the rest at the end of input", function()
    local r = run_in(dir, [[
input:
  stdin:
    batching:
      count: 3
      processors: [{lua: {file: bsize.lua}}]
output: {stdout: {}}
]], "1\n2\n3\n4\n5\n6\n7\n8\n")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({"3:1", "3:2", "3:3", "3:4", "3:5", "3:6", "2:7", "2:8"}, h.lines(r.stdout))
  end)

  it("the input's batching runs before its processors, the output's after its own", function()
    local r = run_in(dir, [[
input:
  stdin:
    batching: {count: 2, processors: [{lua: {code: 'return "b" .. content()'}}]}
  processors: [{lua: {code: 'return "p" .. content()'}}]
output:
  stdout:
    batching: {count: 4, processors: [{lua: {file: bsize.lua}}]}
  processors: [{lua: {code: 'return "o" .. content()'}}]
]], "1\n2\n3\n4\n5\n")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({"4:opb1", "4:opb2", "4:opb3", "4:opb4", "1:opb5"}, h.lines(r.stdout))
  end)

  it("byte_size and check form batches", function()
    local r = run_in(dir, [[
input:
  stdin:
    batching: {byte_size: 6, processors: [{lua: {file: bsize.lua}}]}
output: {stdout: {}}
]], "aa\nbb\ncc\ndddddd\ne\n")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({"3:aa", "3:bb", "3:cc", "1:dddddd", "1:e"}, h.lines(r.stdout))
    r = run_in(dir, [[
input:
  stdin:
    batching: {check: 'this.last == true', processors: [{lua: {file: bsize.lua}}]}
output: {stdout: {}}
]], '{"n":1}\n{"n":2,"last":true}\n{"n":3}\n{"n":4}\n{"n":5,"last":true}\n{"n":6}\n')
    assert.are.equal(0, r.code, r.stderr)
    local got = {}
    for _, l in ipairs(h.lines(r.stdout)) do got[#got + 1] = l:match("^%d+") end
    assert.are.same({"2", "2", "3", "3", "3", "1"}, got)
  end)

  it("acknowledges each transaction of a batch only once the batch is delivered; period flushes a partial one",
    function()
    local srv = serve_batching("{count: 2, processors: [{lua: {file: " .. dir .. "/bsize.lua}}]}")
    local ok, err = pcall(function()
      local out1 = srv.dir .. "/post1.txt"
      -- the first request's message waits in the batch: its request is not answered...
      post_later(srv, "one", out1)
      assert.are.equal("", h.read(out1) or "")
      assert.are.equal("", srv.stdout())
      -- ...until a second (another transaction) completes the batch and it is written
      second_completes(srv, out1)
    end)
    h.stop_after(srv, ok, err)
    -- period: a lone message is written without a second one
    srv = serve_batching("{count: 100, period: 200ms}")
    ok, err = pcall(function()
      assert.are.equal("200", post(srv, "lone"))
      assert.are.same({"lone"}, h.lines(srv.stdout()))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("a count the stream's max_in_flight never lets in does not hold the batch forever", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
max_in_flight: 2
input:
  http_server: {path: /in, timeout: 30s}
output:
  stdout:
    batching: {count: 5, processors: [{lua: {file: ]] .. dir .. [[/bsize.lua}}]}
]])
    local ok, err = pcall(function()
      local out1 = srv.dir .. "/p1.txt"
      post_later(srv, "one", out1)
      -- the second transaction fills the stream: the batch of two goes, and both requests are answered
      second_completes(srv, out1)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("shutdown passes on what is held", function()
    local srv = serve_batching("{count: 100}")
    local out1 = srv.dir .. "/post1.txt"
    post_later(srv, "held", out1)
    assert.are.equal(0, srv.stop(true))
    assert.are.same({"held"}, h.lines(srv.stdout()))
    h.wait_for(function() return (h.read(out1) or "") ~= "" end, 30)
    assert.are.equal("200", h.read(out1))
    h.rmdir(srv.dir)
  end)

  it("lint refuses a policy without trigger, bad values, a bad check and batching on a nested output", function()
    local function lint(yaml)
      local cfg = h.write(dir .. "/l.yaml", yaml)
      local r = h.sluice("lint " .. cfg)
      return r.code, r.stdout .. r.stderr
    end
    local code, out = lint("input: {stdin: {}}\noutput:\n  stdout:\n    batching: {count: 0, period: 0s}\n")
    assert.are.equal(1, code)
    assert.matches("l.yaml:4:15: batching: no count, byte_size, period or check", out, 1, true)
    code, out = lint("input:\n  stdin:\n    batching: {period: ''}\noutput: {stdout: {}}\n")
    assert.are.equal(1, code)
    assert.matches("l.yaml:3:15: batching: no count", out, 1, true)
    code, out = lint("input: {stdin: {}}\noutput:\n  stdout:\n    batching: {count: -1, byte_size: lots, period: soon}\n")
    assert.are.equal(1, code)
    assert.matches("l.yaml:4:23: output.stdout.batching.count: -1 is out of range", out, 1, true)
    assert.matches("l.yaml:4:38: output.stdout.batching.byte_size: \"lots\" is not a size", out, 1, true)
    assert.matches("l.yaml:4:52: output.stdout.batching.period: \"soon\" is not a duration", out, 1, true)
    code, out = lint("input: {stdin: {}}\noutput:\n  stdout:\n    batching: {check: 'this.n ==== 1'}\n")
    assert.are.equal(1, code)
    assert.matches("l.yaml:4:23: check: Lua", out, 1, true)
    code, out = lint("input: {stdin: {}}\noutput:\n  fallback:\n    - stdout: {batching: {count: 2}}\n")
    assert.are.equal(1, code)
    assert.matches("l.yaml:4:26: .*batching is applied on the stream's own input and output", out)
    code, out = lint("input: {stdin: {}}\noutput:\n  stdout:\n    batching: {count: 2, processors: [{nope: {}}]}\n")
    assert.are.equal(1, code)
    assert.matches("nope", out, 1, true)
  end)
end)
