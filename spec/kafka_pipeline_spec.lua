-- The kafka input and output against a real broker (KRaft, from Maven
-- Central's jars; spec/kafka_helpers.lua), checked with kcat, and Tyk's
-- demo on Kafka (examples/tyk-streams-demo/kafka.yaml) with curl, Python
-- websockets and SSE.
local h = require("spec.helpers")
local kafka = require("spec.kafka_helpers")
local json = h.json
local demo = require("spec.demo_helpers")

local WS = "/usr/bin/python3 spec/tools/ws_client.py "

local function kcat(k, args)
  local _, out = h.sh("timeout 30 kcat -b " .. k.addr .. " " .. args)
  return out
end

local wait_lines = h.wait_lines

-- Runs one of Kafka's own admin tools (from the broker's jars) against k.
local function kafka_tool(k, class, args)
  local _, cache = h.sh(kafka.script .. " path")
  local code, _, err = h.sh(string.format("timeout 60 java -cp %s %s --bootstrap-server %s %s",
    h.shell_quote(cache:gsub("%s+$", "") .. "/libs/*"), class, k.addr, args))
  assert.are.equal(0, code, err)
end

-- The {"n": N} values of a topic's records, each asserted to be there once.
local function each_once(k, topic)
  local lines, seen = h.lines(kcat(k, "-C -t " .. topic .. " -e -q")), {}
  for _, l in ipairs(lines) do
    local n = json.decode(l).n
    assert.is_nil(seen[n], "twice: " .. n)
    seen[n] = true
  end
  return lines
end

local function create_topic(k, topic, partitions, config)
  kafka_tool(k, "org.apache.kafka.tools.TopicCommand", string.format(
    "--create --topic %s --partitions %d --replication-factor 1%s", topic, partitions,
    config and (" --config " .. config) or ""))
end

local why = kafka.unavailable()
local describe_kafka = why and pending or describe

describe_kafka("kafka connectors on a real broker" .. (why and (": " .. why) or ""), function()
  local k
  setup(function() k = kafka.start() end)
  teardown(function() if k then k.stop() end end)

  it("produces with keys and metadata headers, acknowledged by delivery reports", function()
    local r = h.run_config([[
input: {generate: {count: 500, interval: 0, batch_size: 50, mapping: 'meta.kind = "gen"; return {n = i}'}}
output:
  kafka: {addresses: []] .. k.addr .. [[], topic: produced, key: '${! "k" .. (this.n % 7) }'}
]])
    assert.are.equal(0, r.code, r.stderr)
    local lines = h.lines(kcat(k, "-C -t produced -e -q -f '%k|%h|%s\\n'"))
    assert.are.equal(500, #lines)
    local seen = {}
    for _, l in ipairs(lines) do
      local key, hdrs, value = l:match("^(.-)|(.-)|(.*)$")
      local n = json.decode(value).n
      assert.are.equal("k" .. (n % 7), key)
      assert.matches("kind=gen", hdrs)
      seen[n] = true
    end
    for n = 1, 500 do assert.is_true(seen[n], "n=" .. n) end
  end)

  it("produces runs of messages without headers in order, each with its key", function()
    local r = h.run_config([[
input: {generate: {count: 3000, interval: 0, batch_size: 500, mapping: 'return {n = i}'}}
output:
  kafka: {addresses: []] .. k.addr .. [[], topic: runs, key: '${! "k" .. (this.n % 7) }', metadata_headers: false}
]])
    assert.are.equal(0, r.code, r.stderr)
    local lines = h.lines(kcat(k, "-C -t runs -e -q -f '%k|%p|%h|%s\\n'"))
    assert.are.equal(3000, #lines)
    local last, seen, part = {}, {}, {}
    for _, l in ipairs(lines) do
      local key, p, hdrs, value = l:match("^(.-)|(.-)|(.-)|(.*)$")
      local n = json.decode(value).n
      assert.are.equal("k" .. (n % 7), key)
      assert.are.equal("", hdrs)
      assert.is_true((last[key] or 0) < n, "order within key " .. key)   -- one key, one partition, in order
      assert.are.equal(part[key] or p, p)
      last[key], part[key], seen[n] = n, p, true
    end
    for n = 1, 3000 do assert.is_true(seen[n], "n=" .. n) end
  end)

  it("produces to a topic and key named per message (more topics than handles kept), an invalid name fails only its batch", function()
    local dir = h.tmpdir()
    local r = h.run_config([[
input: {generate: {count: 200, interval: 0, batch_size: 1, mapping: 'return {n = i}'}}
output:
  fallback:
    - kafka:
        addresses: []] .. k.addr .. [[]
        topic: '${! this.n == 77 and "" or ("many-" .. (this.n % 20)) }'
        key: '${! this.n % 3 == 0 and "" or ("k" .. this.n) }'
    - file: {path: ']] .. dir .. [[/failed.jsonl'}
]])
    assert.are.equal(0, r.code, r.stderr)
    local total = 0
    for t = 0, 19 do
      local lines = h.lines(kcat(k, "-C -t many-" .. t .. " -e -q -f '%k|%s\\n'"))
      for _, l in ipairs(lines) do
        local key, value = l:match("^(.-)|(.*)$")
        local n = json.decode(value).n
        assert.are.equal(t, n % 20)
        assert.are.equal(n % 3 == 0 and "" or ("k" .. n), key)   -- keyless ones have none
        total = total + 1
      end
    end
    assert.are.equal(199, total)
    local failed = h.lines(h.read(dir .. "/failed.jsonl"))
    assert.are.same({77}, {json.decode(failed[1]).n})
    assert.are.equal(1, #failed)
    h.rmdir(dir)
  end)

  -- Benthos' example: max_in_flight counts batches (64 of them may be written
  -- at once), not messages; it used to size librdkafka's queue to 64
  -- messages, and batches of 100 were retried ("Queue full") forever.
  it("max_in_flight counts batches, as in Benthos: 64 with batches of 100 delivers each message once", function()
    local r = h.run_config([[
input: {generate: {count: 300, batch_size: 100, interval: 0, mapping: 'return {n = i}'}}
output:
  kafka: {addresses: []] .. k.addr .. [[], topic: inflight, max_in_flight: 64}
]], {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)   -- ended by itself: every message acknowledged
    assert.is_nil(r.stderr:find("Queue full", 1, true), r.stderr)
    assert.are.equal(300, #each_once(k, "inflight"))
  end)

  it("produces a batch larger than librdkafka's queue in parts: each message once, in order per key", function()
    -- 1000-message batches into a 50-message queue; odd messages carry
    -- metadata (produced one at a time), even ones go in runs
    local r = h.run_config([[
input: {generate: {count: 3000, batch_size: 1000, interval: 0, mapping: 'if i % 2 == 1 then meta.odd = "1" end return {n = i}'}}
output:
  kafka:
    addresses: []] .. k.addr .. [[]
    topic: parts
    key: '${! "k" .. (this.n % 7) }'
    max_in_flight: 2
    librdkafka: {queue.buffering.max.messages: "50"}
]], {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:find("Queue full", 1, true), r.stderr)
    local lines = h.lines(kcat(k, "-C -t parts -e -q -f '%k|%s\\n'"))
    local last, seen = {}, {}
    for _, l in ipairs(lines) do
      local key, value = l:match("^(.-)|(.*)$")
      local n = json.decode(value).n
      assert.is_nil(seen[n], "twice: " .. n)
      assert.is_true((last[key] or 0) < n, "order within key " .. key)
      last[key], seen[n] = n, true
    end
    assert.are.equal(3000, #lines)
  end)

  it("retries only the messages of a failed batch that were not delivered", function()
    -- The broker refuses the record batch holding the big message (topic
    -- `strict` takes 1000 bytes); the others of the same batch go to `loose`
    -- and are delivered at the first attempt. Once `strict` takes it, the
    -- retry sends that one message alone.
    create_topic(k, "strict", 1, "max.message.bytes=1000")
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
retry: {initial_interval: 200ms, max_interval: 1s}
input: {generate: {count: 20, batch_size: 20, interval: 0, mapping: 'return {n = i, pad = i == 5 and ("x"):rep(3000) or ""}'}}
output:
  kafka: {addresses: []] .. k.addr .. [[], topic: '${! this.n == 5 and "strict" or "loose" }'}
]])
    assert.truthy(h.wait_for(function() return srv.stderr():find("write failed (attempt 2)", 1, true) end, 30),
      srv.stderr())
    kafka_tool(k, "kafka.admin.ConfigCommand",
      "--alter --entity-type topics --entity-name strict --add-config max.message.bytes=100000")
    h.wait_for(function() return h.read(srv.dir .. "/rc.txt") end, 60)   -- the run ends once all is delivered
    local err = srv.stderr()
    assert.are.equal(0, srv.stop(), err)
    assert.are.equal(19, #each_once(k, "loose"))   -- none sent again by a retry
    assert.are.equal(1, #h.lines(kcat(k, "-C -t strict -e -q")))
  end)

  it("consumes as a group, commits only what was delivered, and resumes after a restart without duplicates", function()
    local d = h.tmpdir()
    local payload = {}
    for i = 1, 300 do payload[i] = json.encode({n = i}) end
    h.write(d .. "/in.txt", table.concat(payload, "\n") .. "\n")
    kcat(k, "-P -t consumed -l " .. d .. "/in.txt")
    local yaml = [[
http: {address: 127.0.0.1:$PORT}
input:
  kafka: {addresses: []] .. k.addr .. [[], topics: [consumed], consumer_group: spec-g, commit_period: 100ms}
pipeline:
  processors:
    - lua: 'this.p = meta.kafka_partition; this.o = meta.kafka_offset; this.k = meta.kafka_key; this.h = meta.trace; this.ts = meta.kafka_timestamp_ms'
output: {file: {path: out.ndjson}}
]]
    local srv = h.serve(yaml)
    local lines = wait_lines(srv.dir .. "/out.ndjson", 300)
    assert.are.equal(0, srv.stop(true))
    assert.are.equal(300, #lines)
    -- more arrive while it is down; the restart reads exactly those
    payload = {}
    for i = 301, 400 do payload[#payload + 1] = "key" .. i .. "|" .. json.encode({n = i}) end
    h.write(d .. "/in2.txt", table.concat(payload, "\n") .. "\n")
    kcat(k, "-P -t consumed -K '|' -H trace=abc -H trace=second -l " .. d .. "/in2.txt")
    srv = h.serve(yaml, {dir = srv.dir, port = srv.port})
    lines = wait_lines(srv.dir .. "/out.ndjson", 400)
    os.execute("sleep 0.5")
    lines = h.lines(h.read(srv.dir .. "/out.ndjson"))
    assert.are.equal(0, srv.stop())
    h.rmdir(d)
    assert.are.equal(400, #lines)
    local seen = {}
    for _, l in ipairs(lines) do
      local v = json.decode(l)
      assert.is_nil(seen[v.n], "twice: " .. v.n)
      seen[v.n] = true
      -- one partition: offsets are the order of production; key, headers and time became metadata
      assert.are.equal("0", v.p)
      assert.are.equal(tostring(v.n - 1), v.o)
      assert.truthy(tonumber(v.ts), l)
      if v.n > 300 then
        assert.are.equal("key" .. v.n, v.k)
        assert.are.equal("abc", v.h)   -- a repeated header: its first value
      else
        assert.is_nil(v.k)
      end
    end
  end)

  it("waits for a broker that is not there yet (not ready), then flows when it comes up", function()
    local port = h.port()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input: {generate: {count: 20, interval: 0, mapping: 'return {n = i}'}}
output:
  kafka: {addresses: [127.0.0.1:]] .. port .. [[], topic: late}
]])
    local _, ready = h.sh("curl -s -m 2 " .. srv.url .. "/ready")
    local late = kafka.start({port = port})
    local got = {}
    for _ = 1, 100 do
      got = h.lines(kcat(late, "-C -t late -e -q"))
      if #got >= 20 then break end
      os.execute("sleep 0.2")
    end
    assert.are.equal(0, srv.stop())
    late.stop()
    assert.matches('"ready":false', ready)
    assert.are.equal(20, #got)
  end)
end)

describe_kafka("Tyk Streams demo on Kafka" .. (why and (": " .. why) or ""), function()
  local k, srv
  -- The answer waits for the Kafka write.
  local function post(path, body)
    local _, out = h.sh("curl -s -m 60 -X POST -d " .. h.shell_quote(json.encode(body)) .. " '" .. srv.url .. path .. "'")
    local ok, v = pcall(json.decode, out)
    assert(ok and type(v) == "table", "POST " .. path .. " answered: " .. tostring(out) .. "\n" .. srv.stderr())
    return v
  end
  setup(function()
    k = kafka.start()
    local yaml = h.read("examples/tyk-streams-demo/kafka.yaml"):gsub("%${HTTP_ADDRESS:0%.0%.0%.0:4195}", "127.0.0.1:$PORT")
      :gsub("%${KAFKA_ADDRESSES:localhost:9093}", k.addr)
    srv = h.serve(yaml)
    -- The first answer waits for the topics' creation, which on a loaded
    -- machine outlasts the input's 5 s timeout (a 408): a user of its own
    -- sends until the pipeline answers.
    local answered, last, deadline = false, nil, os.time() + 180
    while not answered and os.time() < deadline do
      _, last = h.sh("curl -s -m 60 -X POST -d '{}' '" .. srv.url .. "/push-event?user=warmup'")
      local ok, v = pcall(json.decode, last)
      answered = ok and type(v) == "table" and v.user_id == "warmup"
    end
    assert(answered, "the demo never answered a POST (last: " .. tostring(last) .. "): " .. srv.stderr())
  end)
  teardown(function()
    if srv then srv.stop() end
    if k then k.stop() end
  end)

  it("answers POST with the enriched event; GET, SSE and WebSocket deliver each user exactly their results", function()
    local e = post("/push-event?user=alice", {foo = "a0"})
    assert.are.equal("alice", e.user_id)
    assert.matches("^%x+%-", e.job_id)
    local sse = io.popen("curl -s -N -m 8 '" .. srv.url .. "/sse?user=alice'")
    local ws = io.popen(WS .. "'ws://127.0.0.1:" .. srv.port .. "/ws-in?user=bob' --recv 2 --wait 8")
    os.execute("sleep 1")
    post("/push-event?user=bob", {foo = "b1"})
    post("/push-event?user=alice", {foo = "a1"})
    post("/push-event?user=bob", {foo = "b2"})
    local sse_out, ws_out = sse:read("a"), ws:read("a")
    sse:close(); ws:close()
    demo.assert_alice_and_bob(sse_out, ws_out)
  end)

  it("serves 50 users at once by long-poll GET: every one of their results, none of anyone else's", function()
    local users = 50
    for u = 1, users do post("/push-event?user=v" .. u, {round = 1}) end
    for u = 1, users do post("/push-event?user=v" .. u, {round = 2}) end
    -- all 50 GETs at once, each looping (bounded) until it has both rounds
    local script = h.tmpname()
    h.write(script, [[
import json, sys, urllib.request, concurrent.futures, time
base, n = sys.argv[1], int(sys.argv[2])
def one(u):
    got, deadline = set(), time.time() + 60
    while len(got) < 2 and time.time() < deadline:
        with urllib.request.urlopen(f"{base}/get-event?user=v{u}", timeout=15) as r:
            for line in r.read().decode().splitlines():
                v = json.loads(line)
                if v["user_id"] != f"v{u}": return f"v{u} got {v['user_id']}'s"
                got.add(v["round"])
    return None if got == {1, 2} else f"v{u} got rounds {sorted(got)}"
with concurrent.futures.ThreadPoolExecutor(n) as ex:
    errs = [e for e in ex.map(one, range(1, n + 1)) if e]
print(json.dumps(errs))
]])
    local _, out = h.sh("timeout 120 /usr/bin/python3 " .. script .. " " .. srv.url .. " " .. users)
    os.remove(script)
    assert.are.same({}, json.decode(out))
  end)
end)

describe_kafka("kafka through a broker restart and a rebalance" .. (why and (": " .. why) or ""), function()
  it("loses no acknowledged message when the broker restarts mid-flow", function()
    local k = kafka.start()
    -- 200 messages a second: 15 s for all of them, far longer than the broker takes to stop.
    -- Deliveries time out after 3 s, well within the restart: those writes fail,
    -- and only a retry (of what was not delivered) gets them through.
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input: {generate: {count: 3000, interval: 50ms, batch_size: 10, mapping: 'return {n = i}'}}
output:
  kafka: {addresses: []] .. k.addr .. [[], topic: restarts, librdkafka: {message.timeout.ms: "3000"}}
]])
    local function sent()
      local _, m = h.sh("curl -s -m 2 " .. srv.url .. "/metrics")
      return tonumber(m:match('output_sent{stream="main",label="kafka",path="root.output"} (%d+)')) or 0
    end
    local function ended() return h.read(srv.dir .. "/rc.txt") end
    h.wait_for(function() return sent() >= 200 end, 30)
    k.stop(true)                                  -- keeps its data directory
    local before = sent()                         -- acknowledged before the broker went
    local running = not ended()
    local again = kafka.start({port = k.port, dir = k.dir})
    -- the run ends by itself once every message is acknowledged
    h.wait_for(ended, 150)
    local rc = srv.stop()
    local seen = {}
    for _, l in ipairs(h.lines(kcat(again, "-C -t restarts -e -q"))) do seen[json.decode(l).n] = true end
    again.stop()
    local missing = 0
    for i = 1, 3000 do
      if not seen[i] then missing = missing + 1 end
    end
    -- the broker went away while messages were provably in flight, and they all got through its restart
    assert.is_true(running and before >= 200 and before < 3000, "acknowledged before the broker stopped: " .. before)
    assert.are.equal(0, rc)
    assert.are.equal(0, missing, missing .. " acknowledged messages missing")
  end)
end)

describe_kafka("kafka consumer groups across two sluice processes" .. (why and (": " .. why) or ""), function()
  -- one broker: each case has its topic and group
  local k
  setup(function() k = kafka.start() end)
  teardown(function() if k then k.stop() end end)

  local function four_partitions(topic) create_topic(k, topic, 4) end

  -- Each number's lines in the outputs of the given processes.
  local function outputs(procs)
    local got, count = {}, 0
    for _, s in ipairs(procs) do
      for _, l in ipairs(h.lines(h.read(s.dir .. "/out.ndjson") or "")) do
        local v = json.decode(l)
        got[v.n] = (got[v.n] or 0) + 1
        count = count + 1
      end
    end
    return got, count
  end

  -- A sluice node consuming topic as a member of group into out.ndjson.
  local function node(k, topic, group, extra, processor)
    return h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  kafka: {addresses: [%s], topics: [%s], consumer_group: %s, commit_period: 100ms%s}
pipeline:
  processors:
    - %s
output: {file: {path: out.ndjson}}
]], k.addr, topic, group, extra, processor))
  end

  -- A kcat input file of {"n": i} for i in from..to, keyed onto every partition.
  local function keyed(path, from, to)
    local lines = {}
    for i = from, to do lines[#lines + 1] = "k" .. (i % 16) .. ":" .. json.encode({n = i}) end
    h.write(path, table.concat(lines, "\n") .. "\n")
  end

  it("hand revoked partitions over only once their in-flight messages are acknowledged: no duplicates", function()
    four_partitions("slow")
    local d = h.tmpdir()
    keyed(d .. "/in.txt", 1, 800)
    -- Node 1 lets one message through every 50 ms: it needs 40 s for all of
    -- them, so node 2 joins (revoking every partition of node 1, eager
    -- protocol) while node 1 has some in flight, however loaded the machine.
    -- The acks it waits for take 3 s at that pace; revoke_timeout leaves room.
    local function slow(rate)
      return node(k, "slow", "slow", ", checkpoint_limit: 16, batching: {count: 8, period: 100ms}, revoke_timeout: 30s",
        "rate_limit: {count: " .. rate .. ", interval: 50ms}")
    end
    local a = slow(1)
    assert.truthy(h.wait_for(function() return a.stderr():find("assigned 4 partition") end, 60), a.stderr())
    kcat(k, "-P -t slow -K: -l " .. d .. "/in.txt")
    h.wait_for(function() return select(2, outputs({a})) >= 10 end, 30)
    local b = slow(1000000)
    -- node 1 handed its partitions over, with messages in flight, and node 2 got its share
    local handed = h.wait_for(function()
      return a.stderr():find("handing them over once their in.flight messages are acknowledged") and
        b.stderr():find("assigned %d+ partition")
    end, 40)
    local before = select(2, outputs({a}))
    -- node 1 leaves (draining and committing first): node 2 takes everything that is left
    assert.are.equal(0, a.stop(true))
    h.wait_for(function() return select(2, outputs({a, b})) >= 800 end, 60)
    assert.are.equal(0, b.stop(true))   -- drained: whatever it was going to write is written
    local got, count = outputs({a, b})
    local logs = a.stderr() .. b.stderr()
    h.rmdir(a.dir)
    h.rmdir(b.dir)
    h.rmdir(d)
    assert.truthy(handed, logs)
    assert.is_true(before < 800, "node 1 had delivered everything before node 2 joined")
    for i = 1, 800 do assert.are.equal(1, got[i], "times " .. i) end
    assert.are.equal(800, count)
  end)

  it("split the partitions, and when one leaves the other takes its partitions over without losing any", function()
    four_partitions("shared")
    -- four partitions, 100 messages each, keyed so that every partition gets some
    local d = h.tmpdir()
    keyed(d .. "/in.txt", 1, 400)
    local a = node(k, "shared", "two", "", "lua: 'this.node = 1'")
    local b = node(k, "shared", "two", "", "lua: 'this.node = 2'")
    -- both members hold partitions (the second join makes the group rebalance)
    for _ = 1, 300 do
      local sa, sb = a.stderr(), b.stderr()
      local na = select(2, sa:gsub("assigned %d+ partition", ""))
      if sb:find("assigned %d+ partition") and na >= 2 then break end
      os.execute("sleep 0.1")
    end
    kcat(k, "-P -t shared -K: -l " .. d .. "/in.txt")
    local got = {}
    for _ = 1, 300 do
      got = {}
      for _, s in ipairs({a, b}) do
        for _, l in ipairs(h.lines(h.read(s.dir .. "/out.ndjson") or "")) do got[#got + 1] = json.decode(l) end
      end
      if #got >= 400 then break end
      os.execute("sleep 0.1")
    end
    local by_node = {0, 0}
    local seen = {}
    for _, v in ipairs(got) do
      by_node[v.node] = by_node[v.node] + 1
      assert.is_nil(seen[v.n], "twice: " .. v.n)
      seen[v.n] = true
    end
    assert.are.equal(400, #got)
    assert.is_true(by_node[1] > 0 and by_node[2] > 0, json.encode(by_node))
    -- node 1 leaves: node 2 gets every partition and what comes next
    assert.are.equal(0, a.stop())
    keyed(d .. "/in2.txt", 401, 600)
    kcat(k, "-P -t shared -K: -l " .. d .. "/in2.txt")
    local later = {}
    for _ = 1, 600 do
      later = h.lines(h.read(b.dir .. "/out.ndjson") or "")
      local n = 0
      for _, l in ipairs(later) do if json.decode(l).n > 400 then n = n + 1 end end
      if n >= 200 then break end
      os.execute("sleep 0.1")
    end
    assert.are.equal(0, b.stop())
    h.rmdir(d)
    local after = {}
    for _, l in ipairs(later) do
      local v = json.decode(l)
      if v.n > 400 then
        assert.is_nil(after[v.n], "twice: " .. v.n)
        after[v.n] = true
      end
    end
    for i = 401, 600 do assert.is_true(after[i], "missing " .. i) end
  end)
end)

-- Seed 000's "Full OpenAPI definition", saved unchanged but for the Kafka
-- address (examples/tyk-streams-demo/streams-demo.yaml): its streams from
-- x-tyk-streaming, its listen path /stream-demo/, its three Bloblang mappings
-- translated to Lua, $tyk_context.request_data_user per request.
describe_kafka("the seed's Tyk API definition, verbatim, on Kafka" .. (why and (": " .. why) or ""), function()
  local k, srv
  setup(function()
    k = kafka.start()
    local doc = h.read("examples/tyk-streams-demo/streams-demo.yaml")
    assert.are.equal(4, select(2, doc:gsub("localhost:9093", "")))
    srv = h.serve((doc:gsub("localhost:9093", k.addr)), {cmd = "run --set http.address=127.0.0.1:$PORT"})
  end)
  teardown(function()
    if srv then srv.stop() end
    if k then k.stop() end
  end)

  it("answers the seed's POST with the enriched event, and gives each user only their results (GET, WebSocket)", function()
    local base = srv.url .. "/stream-demo"
    local function post(user, body)
      local _, out = h.sh("curl -s -m 10 -X POST -H 'Content-Type: application/json' -d " ..
        h.shell_quote(json.encode(body)) .. " '" .. base .. "/push-event?user=" .. user .. "'")
      return json.decode(out)
    end
    local e = post("alice", {message = "hello world"})
    assert.are.equal("alice", e.user_id)
    assert.are.equal("hello world", e.message)
    assert.matches("^%x+%-%x+%-4%x+%-", e.job_id)
    -- the seed's wscat line, with npm's ws; and the seed's GET, both before bob's and alice's next events
    local ws = io.popen(WS .. "'ws://127.0.0.1:" .. srv.port .. "/stream-demo/ws-in?user=bob' --recv 2 --wait 30")
    local get = io.popen("curl -s -m 30 '" .. base .. "/get-event?user=alice'")
    -- each user's `out` instance is a new consumer group that starts at the
    -- topic's beginning (start_from_oldest), so events posted before it joins
    -- reach it too: nothing to wait for
    post("bob", {message = "b1"})
    post("alice", {message = "a1"})
    post("bob", {message = "b2"})
    local ws_out, get_out = ws:read("a"), get:read("a")
    ws:close(); get:close()
    local alice = {}
    for _, l in ipairs(h.lines(get_out)) do alice[#alice + 1] = json.decode(l) end
    demo.assert_results(alice, demo.ws_texts(ws_out), get_out, ws_out)
  end)
end)
