-- Config reload of a Kafka consumer-group stream on a real broker: the new
-- instance joins the group and is assigned before the old one stops, and
-- every record is delivered exactly once across the swap.
local h = require("spec.helpers")
local kafka = require("spec.kafka_helpers")
local json = h.json

local function kcat(k, args)
  local _, out = h.sh("timeout 30 kcat -b " .. k.addr .. " " .. args)
  return out
end

local function produce(k, d, from, to)
  local payload = {}
  for i = from, to do payload[#payload + 1] = json.encode({n = i}) end
  h.write(d .. "/in.txt", table.concat(payload, "\n") .. "\n")
  kcat(k, "-P -t reloaded -l " .. d .. "/in.txt")
end

local function wait_lines(path, n) return h.wait_lines(path, n, 30) end

local why = kafka.unavailable()
local describe_kafka = why and pending or describe

describe_kafka("config reload of a kafka stream" .. (why and (": " .. why) or ""), function()
  local k
  setup(function() k = kafka.start() end)
  teardown(function() if k then k.stop() end end)

  it("hands over a consumer group without losing or repeating a record", function()
    local function config(tag)
      return ([[
http: {address: 127.0.0.1:$PORT}
streams:
  consume:
    input:
      kafka: {addresses: [ADDR], topics: [reloaded], consumer_group: reload-g, commit_period: 100ms}
    pipeline:
      processors:
        - lua: 'this.v = "TAG"'
    output: {file: {path: out.ndjson}}
]]):gsub("ADDR", k.addr):gsub("TAG", tag)
    end
    local d = h.tmpdir()
    produce(k, d, 1, 300)
    local srv = h.serve((config("v1")))
    local ok, err = pcall(function()
      assert.are.equal(300, #wait_lines(srv.dir .. "/out.ndjson", 300))
      h.write(srv.dir .. "/config.yaml", (config("v2"):gsub("%$PORT", tostring(srv.port))))
      local _, out = h.sh("curl -s -m 30 -X POST " .. srv.url .. "/admin/reload")
      assert.same({"consume"}, json.decode(out).changed, out)
      -- The swap waited for the group to assign the new member, not for the timeout.
      assert.is_nil(srv.stderr():find("handing over anyway", 1, true), srv.stderr())
      produce(k, d, 301, 600)
      local lines = wait_lines(srv.dir .. "/out.ndjson", 600)
      os.execute("sleep 0.5")
      lines = h.lines(h.read(srv.dir .. "/out.ndjson"))
      assert.are.equal(600, #lines)
      local seen = {}
      for _, l in ipairs(lines) do
        local v = json.decode(l)
        assert.is_nil(seen[v.n], "twice: " .. v.n)
        seen[v.n] = v.v
      end
      for n = 1, 600 do assert.truthy(seen[n], "missing " .. n) end
      for n = 301, 600 do assert.are.equal("v2", seen[n]) end
    end)
    h.rmdir(d)
    h.stop_after(srv, ok, err)
  end)
end)
