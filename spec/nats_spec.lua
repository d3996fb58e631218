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
end)
