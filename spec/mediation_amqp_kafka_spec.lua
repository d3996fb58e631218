-- examples/mediation/amqp-kafka.yaml end to end: pika publishes orders with
-- publisher confirms to a real RabbitMQ (counting those confirmed), sluice
-- prices them in Lua and produces them to a real Kafka, kcat reads the topic.
-- sluice is killed (-9) mid-flow and started again: every confirmed order is
-- in Kafka at least once, enriched, keyed by its customer.
local h = require("spec.helpers")
local amqp = require("spec.amqp_helpers")
local kafka = require("spec.kafka_helpers")
local json = h.json

local why = amqp.unavailable() or kafka.unavailable()
local N = 600

-- The records of topic as {key, value}, read from the start with kcat.
local function records(k, topic)
  local _, out = h.sh(string.format("timeout 30 kcat -b %s -C -t %s -e -q -f '%%k|%%s\\n'", k.addr, topic))
  local t = {}
  for _, l in ipairs(h.lines(out)) do
    local key, v = l:match("^([^|]*)|(.*)$")
    t[#t + 1] = {key = key, value = json.decode(v)}
  end
  return t
end

-- How many records topic (one partition) holds: its end offset. Reading
-- them to the end (kcat -e) while they keep coming may not end.
local function count(k, topic)
  local _, out = h.sh(string.format("timeout 30 kcat -b %s -Q -t %s:0:-1", k.addr, topic))
  return tonumber(out:match("offset (%d+)")) or 0
end

describe("mediation: RabbitMQ → Lua → Kafka", function()
  local b, k
  setup(function()
    if why then return end
    k = kafka.start()
    b = amqp.start()
  end)
  teardown(function()
    if b then b.destroy() end
    if k then k.stop() end
  end)

  it("kill -9 of sluice mid-flow: every order RabbitMQ confirmed to the producer is in Kafka, priced and keyed", function()
    if why then pending(why) return end
    local yaml = h.read("examples/mediation/amqp-kafka.yaml")
      :gsub("%${HTTP_ADDRESS:[^}]*}", "127.0.0.1:$PORT"):gsub("%${AMQP_URL:[^}]*}", b.url)
      :gsub("%${KAFKA_ADDRESSES:[^}]*}", k.addr)
    local srv = h.serve(yaml)
    local acked = h.tmpname(".acked")
    local ok, err = pcall(function()
      -- a first order through, so that the topic exists and the flow runs before the load comes
      assert.are.equal(0, (amqp.peer(b, "publish orders 1 --order --prefix w --persistent --acked " .. acked)))
      assert.truthy(amqp.wait(function() return count(k, "orders-enriched") == 1 end, 90))
      -- the producer: publisher confirms, each order counted once confirmed
      os.execute(string.format("(timeout -k 5 200 %s spec/amqp/peer.py %s publish orders %d --order --prefix o " ..
        "--persistent --rate 50 --acked %s) > %s.log 2>&1 &", amqp.python, h.shell_quote(b.url .. "%2F"), N, acked, acked))
      local before
      assert.truthy(amqp.wait(function()
        before = count(k, "orders-enriched")
        return before >= 50
      end, 90), h.read(acked .. ".log"))
      srv.kill()
      before = count(k, "orders-enriched")
      local acked_before = #h.lines(h.read(acked) or "")
      -- killed mid-flow: Kafka had some, the producer was still going
      assert.is_true(before >= 50 and acked_before < N, string.format("in Kafka %d, confirmed %d", before, acked_before))
      srv = h.serve(yaml, {port = srv.port, dir = srv.dir})
      assert.are.equal(N + 1, #h.wait_lines(acked, N + 1, 150), h.read(acked .. ".log"))
      local seen, n, all
      amqp.wait(function()
        all, seen, n = records(k, "orders-enriched"), {}, 0
        for _, r in ipairs(all) do
          if not seen[r.value.id] then seen[r.value.id] = r; n = n + 1 end
        end
        return n >= N + 1
      end, 120)
      local redelivered = 0
      for _, l in ipairs(h.lines(h.read(acked))) do
        local o = json.decode(l)
        local r = seen[o.id]
        assert.truthy(r, o.id .. " confirmed by RabbitMQ and not in Kafka")
        assert.are.equal(o.customer, r.key)
        assert.are.equal(o.qty * o.price, r.value.total)
        assert.are.equal("rabbitmq:orders", r.value.source)
      end
      for _, r in ipairs(all) do if r.value.redelivered then redelivered = redelivered + 1 end end
      assert.are.equal(N + 1, n)
      assert.is_true(amqp.wait(function() return amqp.count(b, "orders") == 0 end, 30))
      print(string.format("\n  amqp→kafka mediation: %d in Kafka before kill -9 (%d confirmed), %d records after " ..
        "(%d duplicates, %d marked redelivered)", before, acked_before, #all, #all - N - 1, redelivered))
    end)
    h.stop_after(srv, ok, err)
    os.remove(acked); os.remove(acked .. ".log")
  end)
end)
