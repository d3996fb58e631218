-- The kafka input and output without a broker: configuration checked by
-- librdkafka at lint, and readiness while the brokers cannot be reached.
-- (With a real broker: spec/kafka_spec.lua.)
local h = require("spec.helpers")
local json = h.json

describe("kafka connectors", function()
  it("check librdkafka properties at lint with librdkafka's own words and the file position", function()
    local r = h.run_config([[
input:
  kafka:
    addresses: [localhost:9092]
    topics: [t]
    consumer_group: g
    librdkafka: {no.such.property: "1"}
output:
  kafka:
    addresses: [localhost:9092]
    topic: out
    librdkafka: {compression.type: "bogus"}
]], {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":6:%d+: no%.such%.property: librdkafka: No such configuration property", r.stderr)
    assert.matches(":11:%d+: compression%.type: librdkafka: .*bogus", r.stderr)
  end)

  it("take Benthos's batching policy on the input and the output as written; a bad check is refused at its line", function()
    local yaml = [[
input:
  kafka:
    addresses: [localhost:9092]
    topics: [t]
    consumer_group: g
    checkpoint_limit: 1024
    batching:
      count: 100
      byte_size: 1000000
      period: 1s
      check: %s
      processors: [{lua: {code: 'return content()'}}]
output:
  kafka:
    addresses: [localhost:9092]
    topic: out
    max_in_flight: 64
    batching: {count: 10, byte_size: 0, period: "", check: "", processors: []}
]]
    local r = h.run_config(string.format(yaml, "'this.last == true'"), {cmd = "lint"})
    assert.are.equal(0, r.code, r.stderr)
    r = h.run_config(string.format(yaml, "'this.last ==== true'"), {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":11:14: check: Lua", r.stderr, 1, true)
  end)

  it("needs at least one topic", function()
    local r = h.run_config("input:\n  kafka: {addresses: [x:1], consumer_group: g}\noutput:\n  drop: {}\n", {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("name at least one topic", r.stderr)
  end)

  it("reports not ready on /ready while the brokers cannot be reached, and still stops cleanly", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  kafka: {addresses: [127.0.0.1:1], topics: [t], consumer_group: g}
output: {drop: {}}
]])
    local ready
    for _ = 1, 40 do
      local _, out = h.sh("curl -s -m 2 " .. srv.url .. "/ready")
      ready = json.decode(out)
      if ready.streams and ready.streams.main:match("brokers are down") then break end
      os.execute("sleep 0.1")
    end
    assert.are.equal(0, srv.stop())
    assert.is_false(ready.ready)
    assert.matches("brokers are down", ready.streams.main)
  end)
end)
