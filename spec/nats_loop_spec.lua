-- The nats and nats_jetstream inputs read their socket on the stream's loop
-- (clients/nats_loop.c) and drain synchronous subscriptions there, instead of
-- a reader, a flusher and a delivery thread of cnats per connection handing
-- each message over. One nats-server for the file (spec/nats_helpers.lua).
local h = require("spec.helpers")
local nats = require("spec.nats_helpers")
local json = h.json

local why = nats.unavailable()

local function serve(fmt, ...)
  return h.serve("http: {address: 127.0.0.1:$PORT}\n" .. string.format(fmt, ...))
end

local function ready(srv)
  local _, out = h.sh("curl -s -m 2 " .. srv.url .. "/ready")
  local ok, v = pcall(json.decode, out)
  return ok and v or {}
end

local function threads(srv)
  local pid = (h.read(srv.dir .. "/pid.txt") or ""):match("%d+")
  return tonumber(((h.read("/proc/" .. pid .. "/status") or ""):match("Threads:%s*(%d+)")))
end

describe("nats inputs on the loop #nats", function()
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

  it("eight core and JetStream inputs start no reader, flusher or delivery thread of cnats", function()
    if not need() then return end
    assert.are.equal(0, (nats.peer(s.url, "stream LOOPT 'loopt.>'")))
    local function inputs(n)
      local t = {}
      for i = 1, n do
        t[#t + 1] = i % 2 == 1
          and string.format("      - nats: {urls: [%s], subject: 'loopc.%d'}", s.url, i)
          or string.format("      - nats_jetstream: {urls: [%s], subject: 'loopt.%d', durable: 'd%d'}", s.url, i, i)
      end
      return table.concat(t, "\n")
    end
    local function run(n)
      return serve("input:\n  broker:\n    inputs:\n%s\noutput: {drop: {}}\n", inputs(n))
    end
    local one, eight = run(1), run(8)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(one).ready and ready(eight).ready end, 30))
      -- each link keeps a thread of its own (connect, JetStream setup, close),
      -- and a JetStream one cnats's for the replies to its API requests: 11;
      -- on cnats's threads each input had three more (reader, flusher,
      -- delivery): 32
      local more = threads(eight) - threads(one)
      assert.is_true(more >= 7 and more <= 14, "threads added by 7 inputs: " .. more)
    end)
    eight.stop()
    h.stop_after(one, ok, err)
  end)

  it("a burst of more than one turn (4096) arrives whole with nothing after it", function()
    if not need() then return end
    local out = h.tmpname(".txt")
    local srv = serve([[
input:
  nats: {urls: [%s], subject: loopb, batch_count: 4096}
output:
  file: {path: %s, codec: lines}
]], s.url, out)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      assert.are.equal(0, (nats.peer(s.url, "pub loopb 20000")))
      assert.truthy(h.wait_for(function() return #h.lines(h.read(out) or "") >= 20000 end, 30),
        "arrived: " .. #h.lines(h.read(out) or ""))
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)
end)
