-- amqp_0_9 input and output against a real RabbitMQ node (Debian's
-- rabbitmq-server, one per file: scripts/rabbitmq.sh), with python pika
-- (spec/amqp/peer.py) as the peer on the other side.
local h = require("spec.helpers")
local amqp = require("spec.amqp_helpers")

local function lines_of(path) return h.lines(h.read(path) or "") end

local function distinct(list)
  local seen, n = {}, 0
  for _, v in ipairs(list) do
    if not seen[v] then seen[v] = true n = n + 1 end
  end
  return n, seen
end

local function ready(srv)
  local _, out = h.sh(string.format("curl -s -m 5 %s/ready", srv.url))
  return out or ""
end

describe("amqp_0_9", function()
  it("refuses a URL that is not one, naming the key and its position", function()
    local r = h.run_config([[
input:
  amqp_0_9:
    urls: ["http://nope"]
    queue: q
output:
  drop: {}
]], {cmd = "lint"})
    assert.are_not.equal(0, r.code)
    assert.matches("urls", r.stderr)
    assert.matches(":3:%d+", r.stderr)
    assert.matches("not an AMQP URL", r.stderr)
  end)

  local why = amqp.unavailable()
  if why then
    pending("no RabbitMQ on this machine: " .. why)
    return
  end

  local b
  setup(function() b = amqp.start() end)
  teardown(function() if b then b.destroy() end end)

  it("publishes with confirms: routing key, properties and headers from metadata and interpolation", function()
    assert.are.equal(0, (amqp.peer(b, "declare out_q")))
    local r = h.run_config(string.format([[
input:
  generate: {count: 20, interval: "", mapping: 'return "m" .. batch_index()'}
pipeline:
  processors:
    - lua: |
        meta.rk = "out_q"
        meta.user = "u" .. batch_index()
        meta.skip_me = "x"
output:
  amqp_0_9:
    urls: [%s]
    exchange: ""
    key: '${! meta.rk }'
    type: '${! meta.user }'
    content_type: text/plain
    persistent: true
    metadata: {exclude_prefixes: [skip_]}
]], b.url), {timeout = 60})
    -- The run ends once every message is confirmed: they are in the queue.
    assert.are.equal(0, r.code, r.stderr)
    local msgs = amqp.drain(b, "out_q")
    assert.are.equal(20, #msgs)
    local m = msgs[1]
    assert.are.equal("out_q", m.routing_key)
    assert.are.equal("text/plain", m.content_type)
    assert.are.equal(2, m.delivery_mode)
    assert.are.equal("u0", m.headers.user)
    assert.are.equal(m.headers.user, m.type)
    assert.is_nil(m.headers.skip_me)
    assert.are.equal("out_q", m.headers.rk)
  end)

  it("consumes with Benthos' metadata; huge, empty and non-UTF-8 bodies arrive intact", function()
    assert.are.equal(0, (amqp.peer(b, "declare in_q")))
    assert.are.equal(0, (amqp.peer(b, "publish in_q 1 --prefix big --size 8388608 --header k=v")))
    assert.are.equal(0, (amqp.peer(b, 'publish-raw in_q "" ff00fe c328')))
    local out = h.tmpname(".txt")
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  amqp_0_9:
    urls: [%s]
    queue: in_q
pipeline:
  processors:
    - lua: |
        local c = content()
        return string.format("%%d %%s %%s %%s %%s %%s", #c, meta.amqp_routing_key, meta.amqp_exchange == "" and "default" or "?",
          meta.k or "-", meta.amqp_redelivered, (c:sub(1, 3):gsub(".", function(x) return string.format("%%02x", x:byte()) end)))
output:
  file: {path: %s}
]], b.url, out))
    local ok, err = pcall(function()
      local l = h.wait_lines(out, 4, 60)
      assert.are.same({
        "8388608 in_q default v false 626967",
        "0 in_q default - false ",
        "3 in_q default - false ff00fe",
        "2 in_q default - false c328",
      }, l)
      assert.is_truthy(amqp.wait(function() return amqp.count(b, "in_q") == 0 end, 30))
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  it("requeues a failed transaction, and dead-letters one whose error matches nack_reject_patterns", function()
    assert.are.equal(0, (amqp.peer(b, "declare dead")))
    assert.are.equal(0, (amqp.peer(b, "declare nq --dlx dead")))
    assert.are.equal(0, (amqp.peer(b, "publish nq 3 --prefix good")))
    assert.are.equal(0, (amqp.peer(b, "publish nq 2 --prefix flaky")))
    assert.are.equal(0, (amqp.peer(b, "publish nq 2 --prefix bad")))
    local out = h.tmpname(".txt")
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
retry: {max_retries: 1, initial_interval: 10ms}
input:
  amqp_0_9:
    urls: [%s]
    queue: nq
    nack_reject_patterns: ["poison"]
    batching: {count: 1}
pipeline:
  processors:
    - lua: |
        local c = content()
        if c:find("^bad") then error("poison pill") end
        if c:find("^flaky") and meta.amqp_redelivered == "false" then error("transient") end
        return c .. " " .. meta.amqp_redelivered
output:
  reject_errored:
    output:
      file: {path: %s}
]], b.url, out))
    local ok, err = pcall(function()
      local l = h.wait_lines(out, 5, 60)
      table.sort(l)
      assert.are.same({"flaky0 true", "flaky1 true", "good0 false", "good1 false", "good2 false"}, l)
      assert.is_truthy(amqp.wait(function() return amqp.count(b, "dead") == 2 end, 30))
      local dead = amqp.drain(b, "dead")
      local bodies = {}
      for _, m in ipairs(dead) do bodies[#bodies + 1] = m.body end
      table.sort(bodies)
      assert.are.same({"62616430", "62616431"}, bodies)   -- bad0, bad1
      assert.is_truthy(amqp.wait(function() return amqp.count(b, "nq") == 0 end, 30))
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  it("forms transactions by Benthos's batching policy; a batch still forming stays unacknowledged", function()
    local dir = h.tmpdir()
    local module = h.write(dir .. "/bsize.lua", [[
return {process_batch = function(batch)
  for _, m in ipairs(batch) do m:set_content(#batch .. ":" .. m:content()) end
end}
]])
    -- consumes q with batching (YAML flow text) into a file; returns the server and the file's lines
    local function consume(q, batching, n)
      local out = dir .. "/" .. q .. ".txt"
      local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  amqp_0_9:
    urls: [%s]
    queue: %s
    prefetch_count: 100
    batching: %s
pipeline:
  processors: [{lua: {file: %s}}]
output:
  file: {path: %s}
]], b.url, q, batching, module, out))
      local ok, l = pcall(h.wait_lines, out, n, 60)
      h.stop_after(srv, ok, l)
      return l
    end
    assert.are.equal(0, (amqp.peer(b, "declare bq_count")))
    assert.are.equal(0, (amqp.peer(b, "publish bq_count 10 --prefix c")))
    assert.are.same({"4:c0", "4:c1", "4:c2", "4:c3", "4:c4", "4:c5", "4:c6", "4:c7"}, consume("bq_count", "{count: 4}", 8))
    -- c8 and c9 were held, never acknowledged: the broker requeued them when the stream stopped
    assert.is_truthy(amqp.wait(function() return amqp.count(b, "bq_count") == 2 end, 30))
    assert.are.equal(0, (amqp.peer(b, "declare bq_bytes")))
    assert.are.equal(0, (amqp.peer(b, "publish-raw bq_bytes 61616161 6262 6363 6464646464646464 65")))
    assert.are.same({"2:aaaa", "2:bb", "2:cc", "2:dddddddd"}, consume("bq_bytes", "{byte_size: 6}", 4))
    assert.are.equal(0, (amqp.peer(b, "declare bq_check")))
    assert.are.equal(0, (amqp.peer(b, "publish bq_check 6 --prefix k")))
    assert.are.same({"3:k0", "3:k1", "3:k2", "3:k3", "3:k4", "3:k5"},
      consume("bq_check", "{check: 'content():find(\"[25]$\") ~= nil'}", 6))
    assert.are.equal(0, (amqp.peer(b, "declare bq_period")))
    assert.are.equal(0, (amqp.peer(b, "publish bq_period 3 --prefix p")))
    assert.are.same({"3:p0", "3:p1", "3:p2"}, consume("bq_period", "{count: 50, period: 300ms}", 3))
    assert.is_truthy(amqp.wait(function() return amqp.count(b, "bq_period") == 0 end, 30))
    h.rmdir(dir)
  end)

  it("fails the transaction of a mandatory message the broker returns (unroutable)", function()
    assert.are.equal(0, (amqp.peer(b, "declare routable")))
    local out = h.tmpname(".txt")
    -- One batch of six: only its three returned messages go to the fallback.
    local r = h.run_config(string.format([[
input:
  generate: {count: 6, interval: "", batch_size: 6, mapping: 'return "r" .. i .. "-" .. uuid_v4()'}
pipeline:
  processors:
    - lua: |
        local n = tonumber(content():match("^r(%%d+)"))
        meta.to = n %% 2 == 0 and "nowhere" or "routable"
output:
  fallback:
    - amqp_0_9:
        urls: [%s]
        exchange: ""
        key: '${! meta.to }'
        mandatory: true
    - file: {path: '%s-${! (meta.fallback_error or ""):find("NO_ROUTE") and "noroute" or "other" }'}
]], b.url, out), {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    -- The returned half went to the fallback with the broker's reason, the
    -- routed half is in the queue.
    assert.are.equal(3, #lines_of(out .. "-noroute"))
    assert.is_nil(h.read(out .. "-other"))
    local routed = amqp.drain(b, "routable")
    assert.are.equal(3, #routed)
    os.remove(out .. "-noroute")
  end)

  it("kill -9 mid-flow: what was not acknowledged is requeued and consumed after the restart", function()
    assert.are.equal(0, (amqp.peer(b, "declare kq")))
    local n = 400
    -- The producer runs while sluice consumes, and sluice passes on fewer a
    -- second than it receives (rate_limit): it is killed with a full
    -- prefetch window received and not written.
    local pdone = h.tmpname(".done")
    os.execute(string.format("(timeout -k 5 120 %s spec/amqp/peer.py %s publish kq %d --prefix k --persistent; touch %s) > /dev/null 2>&1 &",
      amqp.python, h.shell_quote(b.url .. "%2F"), n, pdone))
    local out1, out2 = h.tmpname(".txt"), h.tmpname(".txt")
    local conf = [[
http: {address: 127.0.0.1:$PORT}
input:
  amqp_0_9:
    urls: [%s]
    queue: kq
    prefetch_count: 50
pipeline:
  processors:
    - rate_limit: {count: 5, interval: 100ms}
output:
  file: {path: %s}
]]
    local srv = h.serve(string.format(conf, b.url, out1))
    local first = h.wait_lines(out1, 30, 60)
    srv.kill()
    h.rmdir(srv.dir)
    assert.is_true(#first >= 30 and #first < n, "killed mid-flow: " .. #first)
    local srv2 = h.serve(string.format(conf, b.url, out2))
    local ok, err = pcall(function()
      assert.is_truthy(h.wait_for(function() return h.read(pdone) end, 120))
      local all
      h.wait_for(function()
        all = {}
        for _, l in ipairs(lines_of(out1)) do all[#all + 1] = l end
        for _, l in ipairs(lines_of(out2)) do all[#all + 1] = l end
        return (distinct(all)) == n
      end, 120)
      local got, seen = distinct(all)
      assert.are.equal(n, got)
      for i = 0, n - 1 do assert.is_true(seen["k" .. i], "k" .. i) end
      assert.is_truthy(amqp.wait(function() return amqp.count(b, "kq") == 0 end, 30))
    end)
    h.stop_after(srv2, ok, err)
    os.remove(out1)
    os.remove(out2)
    os.remove(pdone)
  end)

  it("kill -9 mid-flow: every message answered to its producer is in the queue", function()
    assert.are.equal(0, (amqp.peer(b, "declare hq")))
    local acked, pdone = h.tmpname(".txt"), h.tmpname(".done")
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server: {path: /in}
output:
  amqp_0_9:
    urls: [%s]
    exchange: ""
    key: hq
    persistent: true
]], b.url))
    os.execute(string.format("(timeout -k 5 120 %s spec/amqp/peer.py post %s/in 5000 h %s; touch %s) > /dev/null 2>&1 &",
      amqp.python, srv.url, acked, pdone))
    local before = h.wait_lines(acked, 200, 60)
    srv.kill()
    h.rmdir(srv.dir)
    assert.is_true(#before >= 200 and #before < 5000, "killed mid-flow: " .. #before)
    assert.is_truthy(h.wait_for(function() return h.read(pdone) end, 120))
    local answered = lines_of(acked)
    local inq = {}
    for _, m in ipairs(amqp.drain(b, "hq")) do
      inq[(m.body:gsub("..", function(x) return string.char(tonumber(x, 16)) end))] = true
    end
    for _, body in ipairs(answered) do assert.is_true(inq[body], body .. " was answered 200 but is not in the queue") end
    os.remove(acked)
    os.remove(pdone)
  end)

  it("broker restart mid-flow: both directions reconnect and nothing acknowledged is lost", function()
    assert.are.equal(0, (amqp.peer(b, "declare rq")))
    local out = h.tmpname(".txt")
    local n = 4000
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
streams:
  produce:
    input:
      generate: {count: %d, interval: 1ms, batch_size: 4, mapping: 'return "r" .. uuid_v4()'}
    output:
      amqp_0_9: {urls: [%s], exchange: "", key: rq, persistent: true}
  consume:
    input:
      amqp_0_9: {urls: [%s], queue: rq, prefetch_count: 20}
    output:
      file: {path: %s}
]], n, b.url, b.url, out))
    local ok, err = pcall(function()
      local first = h.wait_lines(out, 200, 60)
      b.stop()
      assert.is_true(#first < n, "restarted mid-flow: " .. #first)
      -- Not ready, with the reason, while the broker is away.
      local r = h.wait_for(function() local s = ready(srv) return s:find("amqp") and s end, 30)
      assert.is_truthy(r)
      assert.matches('"ready":false', r)
      b.start()
      local all
      h.wait_for(function()
        all = lines_of(out)
        return (distinct(all)) >= n
      end, 180)
      assert.are.equal(n, (distinct(all)))
      assert.is_truthy(h.wait_for(function() return ready(srv):find('"ready":true') end, 30))
      local _, consuming = srv.stderr():gsub("amqp: consuming rq", "")
      assert.is_true(consuming >= 2, srv.stderr())
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  it("request-scoped: a queue per user from $tyk_context / ${ctx.…}, behind an http_server output", function()
    for _, u in ipairs({"alice", "bob"}) do
      assert.are.equal(0, (amqp.peer(b, "declare user-" .. u)))
      assert.are.equal(0, (amqp.peer(b, "publish user-" .. u .. " 1 --prefix for-" .. u .. "-")))
    end
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
streams:
  per_user:
    input:
      amqp_0_9:
        urls: [%s]
        queue: 'user-$tyk_context.request_data_user'
        consumer_tag: '${ctx.query.user}-reader'
    pipeline:
      processors:
        - lua: 'return content() .. " " .. meta.amqp_consumer_tag'
    output:
      http_server: {path: /mine}
]], b.url))
    local ok, err = pcall(function()
      for _, u in ipairs({"alice", "bob"}) do
        local _, out = h.sh(string.format("curl -s -m 20 '%s/mine?user=%s'", srv.url, u))
        assert.are.equal("for-" .. u .. "-0 " .. u .. "-reader", out)
      end
    end)
    h.stop_after(srv, ok, err)
  end)

  it("broker absent at start: not ready with the reason, then flows once it comes up", function()
    b.stop()
    local out = h.tmpname(".txt")
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  amqp_0_9:
    urls: [%s]
    queue: aq
    queue_declare: {enabled: true}
output:
  file: {path: %s}
]], b.url, out))
    local ok, err = pcall(function()
      local r = h.wait_for(function() local s = ready(srv) return s:find("amqp") and s end, 30)
      assert.is_truthy(r)
      assert.matches('"ready":false', r)
      assert.matches("connecting to 127.0.0.1", r)
      b.start()
      assert.is_truthy(h.wait_for(function() return ready(srv):find('"ready":true') end, 60))
      assert.are.equal(0, (amqp.peer(b, "publish aq 10 --prefix a")))
      assert.are.equal(10, #h.wait_lines(out, 10, 60))
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)
end)
