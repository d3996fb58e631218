-- GET /metrics: Prometheus text that the official Python parser reads (it
-- names counter samples NAME_total), with
-- counts that match what went through.
local h = require("spec.helpers")
local kafka = require("spec.kafka_helpers")
local prom = require("spec.prom")
local json = h.json

local function samples(srv) return prom.samples(srv.url .. "/metrics") end
local value = prom.value

describe("metrics", function()
  it("counts input, output and HTTP requests by route and status, in a format Prometheus parses", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
streams:
  ok:
    input: {http_server: {path: /in}}
    output: {drop: {}}
  failing:
    input: {http_server: {path: /bad, timeout: 2s}}
    output:
      reject_errored: {drop: {}}
    pipeline:
      processors:
        - lua: 'error("no")'
    retry: {max_retries: 1, initial_interval: 10ms}
]])
    for _ = 1, 5 do h.sh("curl -s -m 5 -X POST -d x " .. srv.url .. "/in") end
    for _ = 1, 2 do h.sh("curl -s -m 5 -X POST -d x " .. srv.url .. "/bad") end
    h.sh("curl -s -m 5 " .. srv.url .. "/nowhere")
    local s = samples(srv)
    assert.are.equal(0, srv.stop())
    assert.are.equal(5, value(s, "input_received_total", {stream = "ok"}))
    assert.are.equal(5, value(s, "output_sent_total", {stream = "ok"}))
    assert.are.equal(0, value(s, "output_error_total", {stream = "ok"}))
    assert.are.equal(2, value(s, "input_received_total", {stream = "failing"}))
    assert.are.equal(2, value(s, "output_error_total", {stream = "failing"}))
    assert.are.equal(5, value(s, "sluice_http_requests_total", {route = "/in", status = "200"}))
    assert.are.equal(2, value(s, "sluice_http_requests_total", {route = "/bad", status = "502"}))
    assert.are.equal(1, value(s, "sluice_http_requests_total", {route = "", status = "404"}))
    assert.is_true(value(s, "sluice_http_connections", {}) >= 1)
  end)

  it("counts open SSE and WebSocket connections by kind", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input: {generate: {interval: 1h, mapping: 'return {}'}}
output: {http_server: {sse_path: /sse, ws_path: /ws}}
]])
    local sse = io.popen("curl -s -N -m 2 " .. srv.url .. "/sse")
    local ws = io.popen("/usr/bin/python3 spec/tools/ws_client.py 'ws://127.0.0.1:" .. srv.port .. "/ws' --recv 99 --wait 2")
    local open = h.wait_for(function()
      local s = samples(srv)
      return value(s, "sluice_http_streams", {kind = "sse"}) == 1 and value(s, "sluice_http_streams", {kind = "websocket"}) == 1 and s
    end, 5)
    sse:read("a"); sse:close()
    ws:read("a"); ws:close()
    local closed = h.wait_for(function()
      local s = samples(srv)
      return value(s, "sluice_http_streams", {kind = "sse"}) == 0 and value(s, "sluice_http_streams", {kind = "websocket"}) == 0 and s
    end, 5)
    assert.are.equal(0, srv.stop())
    assert.truthy(open, "one SSE and one WebSocket client counted while connected")
    assert.truthy(closed, "both gone once they left")
  end)

  it("has Benthos' per-component series with label and path, latency histograms, Lua errors and the store's", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
store: {data_dir: ./data, fsync: always}
streams:
  gen:
    input:
      label: numbers
      generate: {count: 10, interval: 0, batch_size: 5, mapping: 'return {n = i}'}
    pipeline:
      processors:
        - lua: 'if this.n % 4 == 0 then error("multiple of four") end'
        - label: keep_odd
          lua: 'if this.n % 2 == 0 then return deleted() end'
    output:
      stream: {name: odd}
  read:
    input: {stream: {name: odd, group: slow}}
    output: {drop: {}}
    pipeline:
      processors:
        - lua: 'if true then return deleted() end'
]])
    local s
    for _ = 1, 100 do
      s = samples(srv)
      if value(s, "output_sent_total", {stream = "gen"}) == 5 and
        value(s, "sluice_store_group_lag", {stream = "odd", group = "slow"}) == 0 then break end
      os.execute("sleep 0.05")
    end
    -- a group created over the API and never consumed lags by everything
    h.sh("curl -s -m 5 -X POST -d '{}' " .. srv.url .. "/stream/odd/group/lazy")
    local lazy = value(samples(srv), "sluice_store_group_lag", {stream = "odd", group = "lazy"})
    assert.are.equal(0, srv.stop())
    assert.are.equal(5, lazy)
    local p0 = {stream = "gen", label = "lua", path = "root.pipeline.processors.0"}
    local p1 = {stream = "gen", label = "keep_odd", path = "root.pipeline.processors.1"}
    assert.are.equal(10, value(s, "input_received_total", {stream = "gen", label = "numbers", path = "root.input"}))
    assert.are.equal(10, value(s, "processor_received_total", p0))
    assert.are.equal(10, value(s, "processor_sent_total", p0))
    assert.are.equal(2, value(s, "processor_error_total", p0))
    assert.are.equal(2, value(s, "sluice_lua_errors_total", {stream = "gen", label = "lua"}))
    assert.are.equal(10, value(s, "processor_received_total", p1))
    assert.are.equal(5, value(s, "processor_sent_total", p1))
    assert.are.equal(0, value(s, "processor_error_total", p1))
    assert.are.equal(5, value(s, "output_sent_total", {stream = "gen", label = "stream", path = "root.output"}))
    -- one observation per batch (two batches of five)
    assert.are.equal(2, value(s, "processor_latency_ns_count", p0))
    assert.are.equal(2, value(s, "processor_latency_ns_bucket", {path = "root.pipeline.processors.0", le = "+Inf"}))
    assert.are.equal(2, value(s, "input_latency_ns_count", {stream = "gen"}))
    assert.are.equal(2, value(s, "output_latency_ns_count", {stream = "gen"}))
    assert.is_true(value(s, "output_latency_ns_sum", {stream = "gen"}) > 0)
    assert.are.equal(5, value(s, "sluice_store_appended_total", {stream = "odd"}))
    assert.are.equal(5 * #'{"n":1}', value(s, "sluice_store_appended_bytes_total", {stream = "odd"}))
    assert.is_true(value(s, "sluice_store_fsync_latency_ns_count", {stream = "odd"}) >= 1)
    assert.are.equal(0, value(s, "sluice_store_group_lag", {stream = "odd", group = "slow"}))
  end)
end)

local why = kafka.unavailable()
local describe_kafka = why and pending or describe

describe_kafka("kafka metrics" .. (why and (": " .. why) or ""), function()
  local k
  setup(function() k = kafka.start() end)
  teardown(function() if k then k.stop() end end)

  it("reports the kafka input's consumer lag per partition from librdkafka's statistics", function()
    local d = h.tmpdir()
    local lines = {}
    for i = 1, 20 do lines[i] = json.encode({n = i}) end
    h.write(d .. "/in.txt", table.concat(lines, "\n") .. "\n")
    h.sh("timeout 30 kcat -b " .. k.addr .. " -P -t lagged -l " .. d .. "/in.txt")
    h.rmdir(d)
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  label: jobs
  kafka:
    addresses: []] .. k.addr .. [[]
    topics: [lagged]
    consumer_group: lagging
    librdkafka: {statistics.interval.ms: "100"}
output: {drop: {}}
]])
    local lag, s
    for _ = 1, 300 do
      s = samples(srv)
      lag = value(s, "sluice_kafka_consumer_lag", {stream = "main", label = "jobs", topic = "lagged", partition = "0"})
      if lag == 0 and value(s, "output_sent_total", {stream = "main"}) == 20 then break end
      os.execute("sleep 0.1")
    end
    assert.are.equal(0, srv.stop())
    assert.are.equal(20, value(s, "input_received_total", {stream = "main", label = "jobs"}))
    assert.are.equal(0, lag)
  end)
end)
