-- The nats and nats_jetstream inputs and outputs against a real nats-server
-- (Debian's, JetStream on) with nats-py as the peer (spec/tools/nats_peer.py).
-- One server for the file; each test uses subjects and streams of its own.
local h = require("spec.helpers")
local nats = require("spec.nats_helpers")
local json = h.json

local why = nats.unavailable()

-- Every line of path decoded as JSON.
local function json_lines(path)
  local t = {}
  for _, l in ipairs(h.lines(h.read(path) or "")) do t[#t + 1] = json.decode(l) end
  return t
end

-- The distinct values of field f of the lines of path.
local function distinct(path, f)
  local seen, n = {}, 0
  for _, l in ipairs(h.lines(h.read(path) or "")) do
    local v = json.decode(l)[f]
    if v ~= nil and not seen[v] then seen[v] = true; n = n + 1 end
  end
  return seen, n
end

local function ready(srv)
  local _, out = h.sh("curl -s -m 2 " .. srv.url .. "/ready")
  return json.decode(out)
end

describe("nats (lint)", function()
  it("refuses bad subjects, queue names and JetStream options with their positions", function()
    local r = h.run_config([[
streams:
  a:
    input:
      nats: {urls: [nats://127.0.0.1:1], subject: 'orders..new', queue: 'a b'}
    output:
      nats: {urls: [nats://127.0.0.1:1], subject: 'out.*'}
  b:
    input:
      nats_jetstream: {urls: [nats://127.0.0.1:1], bind: true, durable: d}
    output:
      nats_jetstream:
        urls: [nats://127.0.0.1:1]
        subject: x
        auth: {token: t, user: u, password: p}
]], {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":4:%d+: subject: not a NATS subject: orders%.%.new", r.stderr)
    assert.matches(":4:%d+: queue: not a queue group name", r.stderr)
    assert.matches(":6:%d+: subject: not a subject to publish to: out%.%*", r.stderr)
    assert.matches(":9:%d+: bind: `bind` needs `stream` and `durable`", r.stderr)
    assert.matches("auth: give one way to authenticate", r.stderr)
  end)
end)

describe("nats #nats", function()
  local s
  setup(function()
    if why then return end
    s = nats.start()
  end)
  teardown(function() if s then s.stop() end end)

  local function need()
    if why then pending(why) end
    return not why
  end

  it("core: subscribes with wildcards, and gives the subject and headers as metadata", function()
    if not need() then return end
    local out = h.tmpname(".jsonl")
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  nats: {urls: [%s], subject: 'core1.*.x'}
pipeline:
  processors:
    - lua: 'return {data = content(), subject = meta.nats_subject, h = meta.h, reply = meta.nats_reply_subject}'
output:
  file: {path: %s, codec: lines}
]], s.url, out))
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      assert.are.equal(0, (nats.peer(s.url, "pub core1.a.x 3 --header h=v1")))
      assert.are.equal(0, (nats.peer(s.url, "pub core1.b.y 2")))   -- not matched
      assert.are.equal(0, (nats.peer(s.url, "pub core1.b.x 1 --start 3")))
      local lines = h.wait_lines(out, 4)
      assert.are.equal(4, #lines)
      local got = json_lines(out)
      assert.are.same({data = "m0", subject = "core1.a.x", h = "v1"}, got[1])
      assert.are.same({data = "m3", subject = "core1.b.x"}, got[4])
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  it("core: publishes to a subject evaluated per message, with headers", function()
    if not need() then return end
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server: {path: /in}
output:
  nats:
    urls: [%s]
    subject: 'core2.${! this.user }'
    headers: {x-n: '${! this.n }'}
    metadata: {include_prefixes: [kind]}
pipeline:
  processors:
    - lua: 'meta.kind = "order"; meta.other = "no"'
]], s.url))
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      local sub = nats.subscribe(s.url, "core2.>", 2)
      for i = 1, 2 do
        assert.are.equal(0, (h.sh(string.format("curl -sf -m 5 -d '{\"user\":\"u%d\",\"n\":%d}' %s/in", i, i, srv.url))))
      end
      local got = sub.wait()
      sub.done()
      assert.are.equal(2, #got)
      assert.are.equal("core2.u1", got[1].subject)
      assert.are.same({["x-n"] = "1", kind = "order"}, got[1].headers)
      assert.are.equal("core2.u2", got[2].subject)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("core: a queue group shares a subject between two sluice processes, each message to one of them", function()
    if not need() then return end
    local outs, srvs = {h.tmpname(".jsonl"), h.tmpname(".jsonl")}, {}
    for i = 1, 2 do
      srvs[i] = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  nats: {urls: [%s], subject: 'qg.jobs', queue: workers}
pipeline:
  processors:
    - lua: 'return {data = content()}'
output:
  file: {path: %s, codec: lines}
]], s.url, outs[i]))
    end
    local ok, err = pcall(function()
      for i = 1, 2 do assert.truthy(h.wait_for(function() return ready(srvs[i]).ready end, 20)) end
      assert.are.equal(0, (nats.peer(s.url, "pub qg.jobs 400")))
      local seen, total, each = {}, 0, {}
      h.wait_for(function()
        total = #h.lines(h.read(outs[1]) or "") + #h.lines(h.read(outs[2]) or "")
        return total >= 400
      end, 30)
      for i = 1, 2 do
        each[i] = 0
        for _, l in ipairs(json_lines(outs[i])) do
          assert.is_nil(seen[l.data], "delivered twice: " .. l.data)
          seen[l.data] = true
          each[i] = each[i] + 1
        end
      end
      assert.are.equal(400, each[1] + each[2])
      for k = 0, 399 do assert.truthy(seen["m" .. k], "lost m" .. k) end
      -- the group spread them (all 400 to one member: 2^-399)
      assert.is_true(each[1] > 0 and each[2] > 0)
    end)
    pcall(srvs[2].stop)
    h.stop_after(srvs[1], ok, err)
    for i = 1, 2 do os.remove(outs[i]) end
  end)

  it("core: huge, empty and non-UTF-8 payloads and headers arrive byte for byte", function()
    if not need() then return end
    local out = h.tmpname(".jsonl")
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  nats: {urls: [%s], subject: 'atk.in'}
pipeline:
  processors:
    - lua: |
        local c = content()
        local sum = 0
        for i = 1, #c, 997 do sum = (sum + c:byte(i)) %% 65536 end
        return {len = #c, sum = sum, first = c:sub(1, 4), h = meta.h}
output:
  file: {path: %s, codec: lines}
]], s.url, out))
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      local big = h.tmpname(".bin")
      -- 1 MiB less the header room: the largest a default server (max_payload 1 MiB) takes
      h.sh("head -c 1048000 /dev/urandom > " .. big)
      local bad = h.write(h.tmpname(".bin"), "\xff\xfe\x00\xc3\x28ok")
      local empty = h.write(h.tmpname(".bin"), "")
      assert.are.equal(0, (nats.peer(s.url, "pub atk.in 1 --file " .. big)))
      assert.are.equal(0, (nats.peer(s.url, "pub atk.in 1 --header h=\xc3\xa9t\xc3\xa9 --file " .. bad)))
      assert.are.equal(0, (nats.peer(s.url, "pub atk.in 1 --file " .. empty)))
      local got = h.wait_lines(out, 3)
      assert.are.equal(3, #got)
      local data = h.read(big)
      local sum = 0
      for i = 1, #data, 997 do sum = (sum + data:byte(i)) % 65536 end
      local l1, l2, l3 = json.decode(got[1]), json.decode(got[2]), json.decode(got[3])
      assert.are.same({1048000, sum}, {l1.len, l1.sum})
      assert.are.equal(7, l2.len)
      assert.are.equal("\xff\xfe\x00\xc3", l2.first)
      assert.are.equal("été", l2.h)
      assert.are.equal(0, l3.len)
      os.remove(big); os.remove(bad); os.remove(empty)
      -- the server is still there for everyone
      assert.is_true(ready(srv).ready)
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  it("core output: a subject that is not one to publish to, a bad header or a payload over max_payload fails that message with the reason", function()
    if not need() then return end
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
retry: {max_retries: 1, initial_interval: 1ms}
input:
  http_server: {path: /in}
pipeline:
  processors:
    - lua: |
        meta.subj = this.s or "fine.big"
        meta.hv = this.hv or "v"
        if this.big then return string.rep("x", 2 * 1024 * 1024) end
output:
  nats:
    urls: [%s]
    subject: '${! meta.subj }'
    headers: {x-h: '${! meta.hv }'}
]], s.url))
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      local sub = nats.subscribe(s.url, "fine.>", 1)
      local function post(body)
        local _, out = h.sh(string.format("curl -s -m 10 -d %s %s/in", h.shell_quote(body), srv.url))
        return json.decode(out)
      end
      local r = post('{"s":"with space"}')
      assert.are.equal(502, r.status)
      assert.matches('not a subject to publish to: "with space"', r.error)
      assert.matches("not a subject to publish to", post('{"s":"wild.*"}').error)
      assert.matches("not a subject to publish to", post('{"s":"trail."}').error)
      assert.matches("a name must be a token and a value one line", post('{"s":"fine.x","hv":"a\\r\\nb"}').error)
      assert.matches("nats: publish: Payload %d+ greater than maximum allowed: 1048576", post('{"big":1}').error)
      assert.are.equal("ok", post('{"s":"fine.ok"}').status)
      local got = sub.wait(1)
      sub.done()
      assert.are.equal("fine.ok", got[1].subject)
      assert.are.equal(1, #got)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("refuses a header name that is not a token at lint", function()
    local r = h.run_config("input: {stdin: {}}\noutput:\n  nats: {urls: [nats://x:1], subject: a, headers: {'a b': v}}\n", {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":3:%d+: a b: not a header name", r.stderr)
  end)
end)
