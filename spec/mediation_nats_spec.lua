-- examples/mediation/nats-ws.yaml end to end: nats-py publishes each user's
-- events to events.<user> in JetStream (counting those the server acknowledged
-- with a PubAck), sluice serves each user's subject on a WebSocket of its own
-- (a request-scoped stream, a durable consumer per user), and two npm `ws`
-- clients, alice and bob, reconnect when sluice goes away. sluice is killed
-- (-9) mid-flow and started again: each client ends with every message
-- acknowledged to the producer for its user (at least once), and none of the
-- other's.
local h = require("spec.helpers")
local nats = require("spec.nats_helpers")
local json = h.json

local why = nats.unavailable()
local N = 300

-- What the client writing to path got: events (decoded), connections opened.
local function got(path)
  local events, opens = {}, 0
  for _, l in ipairs(h.lines(h.read(path) or "")) do
    if l == "open" then opens = opens + 1 else events[#events + 1] = json.decode(l) end
  end
  return events, opens
end

local function distinct(events)
  local seen, n = {}, 0
  for _, e in ipairs(events) do
    if not seen[e.event] then seen[e.event] = e; n = n + 1 end
  end
  return seen, n
end

describe("mediation: NATS JetStream → WebSocket per user", function()
  local s
  setup(function() if not why then s = nats.start() end end)
  teardown(function() if s then s.stop() end end)

  it("kill -9 of sluice mid-flow: each user's client ends with every message JetStream acknowledged for that user, and only those", function()
    if why then pending(why) return end
    assert.are.equal(0, (nats.peer(s.url, "stream EVENTS 'events.>'")))
    local yaml = h.read("examples/mediation/nats-ws.yaml")
      :gsub("%${HTTP_ADDRESS:[^}]*}", "127.0.0.1:$PORT"):gsub("%${NATS_URL:[^}]*}", s.url)
    local srv = h.serve(yaml)
    local users = {alice = 0, bob = 100000}
    local out, acked, stop = {}, {}, h.tmpname(".stop")
    os.remove(stop)
    local ok, err = pcall(function()
      for u in pairs(users) do
        out[u], acked[u] = h.tmpname(".jsonl"), h.tmpname(".acked")
        os.execute(string.format("node spec/node/mediation.js ws 'ws://127.0.0.1:%d/ws?user=%s' %s %s 240 > /dev/null 2>&1 &",
          srv.port, u, out[u], stop))
      end
      for u in pairs(users) do
        assert.truthy(h.wait_for(function() return select(2, got(out[u])) >= 1 end, 30), u .. " did not connect")
      end
      -- the producers: m<i> for alice, m<100000+i> for bob, each counted once its PubAck came
      for u, start in pairs(users) do
        os.execute(string.format("(%s) > /dev/null 2>&1 &", table.concat({"timeout -k 5 200", nats.tool, "pub",
          h.shell_quote(s.url), "events." .. u, N, "--js --rate 100 --start", start, "--acked", acked[u]}, " ")))
      end
      assert.truthy(h.wait_for(function()
        return #got(out.alice) >= 30 and #got(out.bob) >= 30
      end, 60))
      srv.kill()
      local before = {}
      for u in pairs(users) do
        before[u] = {#got(out[u]), #h.lines(h.read(acked[u]) or "")}
        -- killed mid-flow: the client had some, the producer was still going
        assert.is_true(before[u][1] >= 30 and before[u][2] < N, u .. ": " .. json.encode(before[u]))
      end
      srv = h.serve(yaml, {port = srv.port, dir = srv.dir})
      for u, start in pairs(users) do
        assert.are.equal(N, #h.wait_lines(acked[u], N, 120), u .. "'s producer")
        local seen, n
        h.wait_for(function()
          seen, n = distinct(got(out[u]))
          return n >= N
        end, 120)
        for i = start, start + N - 1 do
          local e = seen["m" .. i]
          assert.truthy(e, u .. ": m" .. i .. " acknowledged by JetStream and not received")
          assert.are.equal(u, e.user)
        end
        assert.are.equal(N, n, u .. " got another's")
        local events, opens = got(out[u])
        assert.is_true(opens >= 2, u .. " reconnected")
        local again = 0
        for _, e in ipairs(events) do if e.redelivered then again = again + 1 end end
        print(string.format("\n  nats mediation %s: %d received before kill -9 (%d acknowledged), %d after (%d redelivered)",
          u, before[u][1], before[u][2], #events, again))
      end
    end)
    h.write(stop, "")
    h.stop_after(srv, ok, err)
    for u in pairs(users) do os.remove(out[u] or ""); os.remove(acked[u] or "") end
    os.remove(stop)
  end)
end)
