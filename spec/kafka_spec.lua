-- The Kafka harness (scripts/kafka.sh, spec/kafka_helpers.lua): a real
-- single-node KRaft broker starts, takes messages from kcat and gives them
-- back in order, and stops, each step bounded in time.
local h = require("spec.helpers")
local kafka = require("spec.kafka_helpers")

describe("kafka harness", function()
  local why = kafka.unavailable()
  if why then
    pending("no Kafka broker on this machine: " .. why)
    return
  end

  local k
  setup(function() k = kafka.start() end)
  teardown(function() if k then k.stop() end end)

  it("round-trips 100 messages through the broker with kcat", function()
    local topic = "harness-" .. k.port
    local sent = {}
    for i = 1, 100 do sent[i] = h.json.encode({n = i, text = "message " .. i}) end
    -- The topic does not exist yet: the broker creates it on first use.
    local code, _, err = h.sh(string.format("timeout -k 2 30 kcat -P -b %s -t %s", k.addr, topic),
      table.concat(sent, "\n") .. "\n")
    assert.are.equal(0, code, err)
    -- -e: exit at the end of the partition instead of waiting for more.
    local code2, out, err2 = h.sh(string.format("timeout -k 2 30 kcat -C -b %s -t %s -o beginning -e -q",
      k.addr, topic))
    assert.are.equal(0, code2, err2)
    assert.are.same(sent, h.lines(out))
  end)

  it("stops: the process is gone and the port no longer answers", function()
    local pid = h.read(k.dir .. "/pid"):match("%d+")
    assert.is_true(k.stop(true))
    -- Gone or a zombie: an orphan waits for whoever adopted it to reap it,
    -- and kill -0 succeeds on a zombie.
    local st = h.read("/proc/" .. pid .. "/stat")
    assert.is_true(st == nil or st:match("%) (%a)") == "Z", st)
    local code = h.sh(string.format("timeout -k 1 10 kcat -L -b %s -m 2", k.addr))
    assert.are_not.equal(0, code)
    h.rmdir(k.dir)
    k = nil
  end)
end)
