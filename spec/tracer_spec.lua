-- `tracer.otlp`: OpenTelemetry spans per message, exported as OTLP/HTTP JSON
-- to a local receiver (spec/tools/otlp_receiver.py), with W3C traceparent
-- taken from HTTP requests and Kafka headers and set on Kafka output headers.
local h = require("spec.helpers")
local kafka = require("spec.kafka_helpers")
local otlp = require("spec.otlp_helpers")
local json = h.json

local TRACE = "0af7651916cd43dd8448eb211c80319c"
local PARENT = "b7ad6b7169203331"

local receiver, wait_for_span = otlp.receiver, otlp.wait_for_span

local function by_name(spans)
  local t = {}
  for _, s in ipairs(spans) do
    t[s.name] = t[s.name] or {}
    table.insert(t[s.name], s)
  end
  return t
end

describe("tracer", function()
  local rcv
  before_each(function() rcv = receiver() end)
  after_each(function() rcv.stop() end)

  it("continues an HTTP request's traceparent: input root span, processor and output children", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
tracer:
  otlp:
    endpoint: ]] .. rcv.endpoint .. [[

    flush_interval: 1h
    tags: {stream: in, env: spec}
input:
  label: push_event
  http_server: {path: /push-event}
pipeline:
  processors:
    - label: enrich
      lua: 'this.user_id = "alice"'
    - label: check
      lua: 'if this.fail then error("bad input") end'
output:
  broker:
    outputs:
      - drop: {}
      - sync_response: {}
]])
    local _, body = h.sh("curl -s -m 5 -H 'traceparent: 00-" .. TRACE .. "-" .. PARENT .. "-01' -d '{\"a\":1}' " ..
      srv.url .. "/push-event")
    assert.are.equal("alice", json.decode(body).user_id)
    -- flush_interval 1h: every span is sent when sluice exits, and read after that
    assert.are.equal(0, srv.stop())
    local spans = rcv.spans()
    assert.are.equal(4, #spans)
    local n = by_name(spans)
    local root = n.push_event[1]
    assert.are.equal(TRACE, root.traceId)
    assert.are.equal(PARENT, root.parentSpanId)
    assert.are.equal(2, root.kind)
    assert.are.equal("root.input", root.attrs["sluice.path"])
    assert.are.equal("http_server", root.attrs["sluice.component"])
    assert.are.equal("main", root.attrs["sluice.stream"])
    assert.are.same({["service.name"] = "sluice", stream = "in", env = "spec"}, root.resource)
    for name, path in pairs({enrich = "root.pipeline.processors.0", check = "root.pipeline.processors.1",
                             broker = "root.output"}) do
      local s = n[name][1]
      assert.are.equal(TRACE, s.traceId)
      assert.are.equal(root.spanId, s.parentSpanId, name)
      assert.are.equal(path, s.attrs["sluice.path"])
      assert.are_not.equal(root.spanId, s.spanId)
      assert.is_true(tonumber(s.startTimeUnixNano) >= tonumber(root.startTimeUnixNano))
      assert.is_true(tonumber(s.endTimeUnixNano) <= tonumber(root.endTimeUnixNano))
      assert.are.equal(0, s.status.code)
    end
  end)

  -- Traced chains run on the pool like the others: processor spans end on
  -- both workers' threads, each once, under its message's root span.
  it("traces a chain on two pool workers: every span once, under its message's root", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
tracer:
  otlp: {endpoint: "]] .. rcv.endpoint .. [[", flush_interval: 50ms}
input: {http_server: {path: /in}}
pipeline:
  threads: 2
  processors:
    - label: which
      lua: 'vm_id = vm_id or uuid_v4(); this.vm = vm_id'
    - label: after
      mapping: |
        root = this
        root.after = true
output: {sync_response: {}}
]])
    local N, sh = 60, {}
    local function trace(i) return string.format("%032x", 0x5100 + i) end
    local function parent(i) return string.format("%016x", 0x7700 + i) end
    -- ten requests in flight at a time: the workers end spans side by side
    for i = 1, N do
      sh[#sh + 1] = string.format("curl -s -m 60 -H 'traceparent: 00-%s-%s-01' -d '{\"n\":%d}' %s/in > %s/a.%d &",
        trace(i), parent(i), i, srv.url, srv.dir, i)
      if i % 10 == 0 then sh[#sh + 1] = "wait" end
    end
    h.sh(table.concat(sh, "\n"))
    local vms, nvm = {}, 0
    for i = 1, N do
      local a = json.decode(h.read(srv.dir .. "/a." .. i) or "null")
      assert.are.equal(i, a and a.n, "request " .. i)
      assert.is_true(a.after)
      if not vms[a.vm] then vms[a.vm], nvm = true, nvm + 1 end
    end
    assert.are.equal(2, nvm, "both workers ran traced messages")
    assert.are.equal(0, srv.stop())
    local spans = rcv.spans()
    assert.are.equal(4 * N, #spans)
    local ids, roots, per = {}, {}, {}
    for _, s in ipairs(spans) do
      assert.is_nil(ids[s.spanId], "span exported twice: " .. s.spanId)
      ids[s.spanId] = true
      assert.are.equal("main", s.attrs["sluice.stream"])
      if s.name == "http_server" then roots[s.traceId] = s end
    end
    for i = 1, N do
      local root = roots[trace(i)]
      assert.truthy(root, "no root span for request " .. i)
      assert.are.equal(parent(i), root.parentSpanId)
      per[trace(i)] = {}
    end
    for _, s in ipairs(spans) do
      if s.name ~= "http_server" then
        local root = roots[s.traceId]
        assert.truthy(root, s.name .. " in an unknown trace " .. s.traceId)
        assert.are.equal(root.spanId, s.parentSpanId, s.name)
        assert.is_nil(per[s.traceId][s.name], s.name .. " twice in " .. s.traceId)
        per[s.traceId][s.name] = s.attrs["sluice.path"]
      end
    end
    for i = 1, N do
      assert.are.same({which = "root.pipeline.processors.0", after = "root.pipeline.processors.1",
                       sync_response = "root.output"}, per[trace(i)])
    end
  end)

  it("starts a trace per message without one, marks failed processors, and honours an unsampled parent", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
tracer:
  otlp: {endpoint: "]] .. rcv.endpoint .. [[", flush_interval: 50ms}
input: {http_server: {path: /in}}
pipeline:
  processors:
    - lua: 'if this.fail then error("bad input") end'
output: {reject_errored: {drop: {}}}
retry: {max_retries: 1, initial_interval: 10ms}
]])
    h.sh("curl -s -m 5 -d '{}' " .. srv.url .. "/in")
    h.sh("curl -s -m 5 -d '{\"fail\":true}' " .. srv.url .. "/in")
    h.sh("curl -s -m 5 -H 'traceparent: 00-" .. TRACE .. "-" .. PARENT .. "-00' -d '{}' " .. srv.url .. "/in")
    -- exported every 50 ms while running; then everything, read after the exit
    assert.is_true(wait_for_span(rcv, "http_server", 2))
    assert.are.equal(0, srv.stop())
    local spans = rcv.spans()
    local n = by_name(spans)
    assert.are.equal(2, #n.http_server)
    assert.is_nil(n.http_server[1].parentSpanId)
    assert.are_not.equal(n.http_server[1].traceId, n.http_server[2].traceId)
    for _, s in ipairs(spans) do assert.are_not.equal(TRACE, s.traceId) end
    local failed = 0
    for _, s in ipairs(n.lua) do failed = failed + (s.status.code == 2 and 1 or 0) end
    assert.are.equal(1, failed)
  end)

  it("exports nothing with sample_ratio 0", function()
    local r = h.run_config([[
tracer:
  otlp: {endpoint: "]] .. rcv.endpoint .. [[", sample_ratio: 0, flush_interval: 10ms}
input:
  generate: {count: 50, interval: 0, mapping: 'return {}'}
pipeline:
  processors:
    - lua: 'this.x = 1'
output: {drop: {}}
]])
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(0, #rcv.spans())
  end)

  it("sends every span before exiting, in batches of batch_size", function()
    local r = h.run_config([[
tracer:
  otlp: {endpoint: "]] .. rcv.endpoint .. [[", flush_interval: 1h, batch_size: 40}
input:
  generate: {count: 50, interval: 0, batch_size: 10, mapping: 'return {}'}
output: {drop: {}}
]])
    assert.are.equal(0, r.code, r.stderr)
    local spans = rcv.spans()
    assert.are.equal(100, #spans)
    local n = by_name(spans)
    assert.are.equal(50, #n.generate)
    assert.are.equal(50, #n.drop)
  end)

  it("exits without waiting on an endpoint that refuses, counting what it dropped", function()
    local port = h.port()
    local r = h.run_config([[
tracer:
  otlp: {endpoint: "http://127.0.0.1:]] .. port .. [[", flush_interval: 1h, batch_size: 10}
input:
  generate: {count: 100, interval: 0, mapping: 'return {}'}
output: {drop: {}}
]], {timeout = 20})
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("export to http://127.0.0.1:" .. port .. "/v1/traces failed", r.stderr, 1, true)
  end)

  it("takes a stream's own tracer block: its spans only, with its tags", function()
    local r = h.run_config([[
streams:
  traced:
    input:
      generate: {count: 2, interval: 0, mapping: 'return {}'}
    output: {drop: {}}
    tracer:
      otlp: {endpoint: "]] .. rcv.endpoint .. [[", tags: {stream: traced}}
  quiet:
    input:
      generate: {count: 3, interval: 0, mapping: 'return {}'}
    output: {drop: {}}
]])
    assert.are.equal(0, r.code, r.stderr)
    local spans = rcv.spans()
    assert.are.equal(4, #spans)
    for _, s in ipairs(spans) do
      assert.are.equal("traced", s.attrs["sluice.stream"])
      assert.are.equal("traced", s.resource.stream)
    end
  end)

  it("lints the tracer section", function()
    local r = h.run_config("tracer: {otlp: {sample_ratio: 2}}\ninput: {stdin: {}}\noutput: {drop: {}}\n",
      {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("tracer.otlp.endpoint", r.stderr, 1, true)
  end)
end)

local why = kafka.unavailable()
local describe_kafka = why and pending or describe

describe_kafka("tracer over Kafka" .. (why and (": " .. why) or ""), function()
  local k, rcv
  setup(function() k = kafka.start() end)
  teardown(function() if k then k.stop() end end)
  before_each(function() rcv = receiver() end)
  after_each(function() rcv.stop() end)

  it("puts traceparent on kafka output headers and continues it from kafka input headers", function()
    local d = h.tmpdir()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
tracer:
  otlp: {endpoint: "]] .. rcv.endpoint .. [[", flush_interval: 50ms}
streams:
  edge:
    input: {label: edge_in, http_server: {path: /in}}
    output: {label: to_jobs, kafka: {addresses: []] .. k.addr .. [[], topic: traced}}
  worker:
    input:
      label: from_jobs
      kafka: {addresses: []] .. k.addr .. [[], topics: [traced], consumer_group: tracer}
    output: {label: done, file: {path: ]] .. d .. [[/out.ndjson}}
]])
    h.sh("curl -s -m 5 -H 'traceparent: 00-" .. TRACE .. "-" .. PARENT .. "-01' -d '{\"a\":1}' " .. srv.url .. "/in")
    -- the worker's spans come once it consumed the record: wait for its output's
    assert.is_true(wait_for_span(rcv, "done"))
    assert.are.equal(0, srv.stop())
    local spans = rcv.spans()
    h.rmdir(d)
    local n = by_name(spans)
    local edge, out, consumed = n.edge_in[1], n.to_jobs[1], n.from_jobs[1]
    assert.are.equal(TRACE, edge.traceId)
    assert.are.equal(PARENT, edge.parentSpanId)
    assert.are.equal(edge.spanId, out.parentSpanId)
    -- the worker's root is a child of the producing span, from the Kafka header
    assert.are.equal(TRACE, consumed.traceId)
    assert.are.equal(out.spanId, consumed.parentSpanId)
    assert.are.equal(consumed.spanId, n.done[1].parentSpanId)
  end)
end)
