-- The redis_streams, redis_list and redis_pubsub connectors against Debian's
-- redis-server (one per file, started here), with redis-cli as the peer.
local h = require("spec.helpers")
local redis = require("spec.redis_helpers")

local R

setup(function() R = redis.start() end)
teardown(function() if R then R.stop() end end)

-- /ready's status code and body.
local function ready_status(srv)
  local _, out = h.sh(string.format("curl -s -m 5 -w '\\n%%{http_code}' %s/ready", srv.url))
  local body, code = out:match("^(.*)\n(%d+)$")
  return tonumber(code), body
end

-- The set of n values in list key of server r (JSON messages {"n": i}), and how many there are.
local function seen(r, key)
  local set, count = {}, 0
  for _, l in ipairs(h.lines(r.cli("LRANGE " .. key .. " 0 -1"))) do
    local n = l:match('"n":(%d+)')
    if n then
      count = count + 1
      set[tonumber(n)] = true
    end
  end
  return set, count
end

local function all_seen(r, key, n)
  local set = seen(r, key)
  for i = 1, n do if not set[i] then return false, i end end
  return true
end

describe("redis_streams output", function()
  it("XADDs each message with its body and metadata, to a stream named per message, trimmed with MAXLEN ~", function()
    local r = h.run_config(string.format([[
input:
  generate:
    count: 300
    interval: 0
    batch_size: 7
    mapping: |
      meta.kind = i %% 2 == 0 and "even" or "odd"
      meta.seq = tostring(i)
      return { n = i }
output:
  redis_streams:
    url: %s
    stream: 'out1-${! meta.kind }'
    max_length: 100
]], R.url))
    assert.equals(0, r.code, r.stderr)
    -- MAXLEN ~ trims by whole nodes (100 entries each): less than 2 nodes more than asked.
    local even, odd = R.num("XLEN out1-even"), R.num("XLEN out1-odd")
    assert.is_true(even >= 100 and even < 200, "even: " .. even)
    assert.is_true(odd >= 100 and odd < 200, "odd: " .. odd)
    local last = h.lines(R.cli("XREVRANGE out1-even + - COUNT 1"))
    -- id, then field/value pairs: body, kind, seq
    assert.same({"body", '{"n":300}', "kind", "even", "seq", "300"}, {table.unpack(last, 2)})
  end)

  it("without Redis at start is not ready, says why, then delivers everything once Redis is there", function()
    local other = redis.start()
    local port = other.port
    other.stop()   -- a free port where nothing listens, until launch below
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { interval: 20ms, mapping: 'return { n = i }' }
output:
  redis_list: { url: redis://127.0.0.1:%d, key: late }
]], port))
    local ok, err = pcall(function()
      local code, body = ready_status(srv)
      assert.equals(503, code)
      assert.matches("127.0.0.1:" .. port, body, 1, true)
      -- Bring a server up on that port and directory.
      other.dir = h.tmpdir()
      other.launch()
      -- What waited while Redis was away arrives first, in order.
      assert.is_true(h.wait_for(function() return other.num("LLEN late") >= 20 end, 30))
      assert.is_true(all_seen(other, "late", 20))
      assert.equals(200, (ready_status(srv)))
      local _, metrics = h.sh(string.format("curl -s -m 5 %s/metrics", srv.url))
      assert.matches('output_connection_up{stream="main"[^\n]*} 1', metrics)
      other.stop()
    end)
    h.stop_after(srv, ok, err)
  end)
end)

describe("redis_streams input", function()
  it("reads entries of a consumer group: body_key as content, other fields and the id as metadata, acked once delivered", function()
    R.cli("XADD in2 * body hello color red")
    R.cli("XADD in2 * body world color blue")
    R.cli("XADD in2 * color none")   -- no body: an empty message, not an entry pending for ever
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  redis_streams: { url: %s, streams: [in2], consumer_group: g2, client_id: c2, timeout: 100ms }
pipeline:
  processors:
    - lua: 'return content() .. "|" .. (meta.color or "") .. "|" .. (meta.redis_stream and "id" or "")'
output:
  redis_list: { url: %s, key: got2 }
]], R.url, R.url))
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return R.num("LLEN got2") == 3 end, 20))
      assert.same({"hello|red|id", "world|blue|id", "|none|id"}, h.lines(R.cli("LRANGE got2 0 -1")))
      assert.is_true(h.wait_for(function() return R.num("XPENDING in2 g2") == 0 end, 20))
      -- A new entry arrives while the read blocks.
      R.cli("XADD in2 * body later")
      assert.is_true(h.wait_for(function() return R.num("LLEN got2") == 4 end, 20))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("after kill -9 mid-flow, on restart re-delivers the pending entries and loses nothing acknowledged", function()
    local n = 400
    local cmds = {}
    for i = 1, n do cmds[#cmds + 1] = string.format([[XADD in3 * body '{"n":%d}']], i) end
    h.sh(string.format("redis-cli -p %d >/dev/null", R.port), table.concat(cmds, "\n") .. "\n")
    local yaml = string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  redis_streams: { url: %s, streams: [in3], consumer_group: g3, client_id: c3, limit: 20, timeout: 100ms }
pipeline:
  processors:
    - rate_limit: { count: 40, interval: 100ms }
output:
  redis_list: { url: %s, key: got3 }
]], R.url, R.url)
    local srv = h.serve(yaml)
    local in_flight
    local ok, err = pcall(function()
      -- Mid-flow: some delivered, and entries read but not acknowledged.
      assert.is_true(h.wait_for(function() return R.num("LLEN got3") >= 40 end, 20))
      srv.kill()
      in_flight = R.num("XPENDING in3 g3")
      local delivered = R.num("LLEN got3")
      assert.is_true(in_flight > 0 and delivered < n, string.format("pending %d, delivered %d", in_flight, delivered))
    end)
    if not ok then srv.stop(false, {code = "any"}) error(err, 0) end
    local srv2 = h.serve(yaml, {dir = srv.dir})
    ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return all_seen(R, "got3", n) end, 60), "not every entry was delivered")
      assert.is_true(h.wait_for(function() return R.num("XPENDING in3 g3") == 0 end, 20))
    end)
    h.stop_after(srv2, ok, err)
  end)

  it("claims what a consumer that never came back left pending (XAUTOCLAIM)", function()
    R.cli("XGROUP CREATE in4 g4 0 MKSTREAM")
    for i = 1, 5 do R.cli(string.format([[XADD in4 * body '{"n":%d}']], i)) end
    R.cli("XREADGROUP GROUP g4 gone COUNT 3 STREAMS in4 '>'")   -- read by "gone", never acknowledged
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  redis_streams: { url: %s, streams: [in4], consumer_group: g4, client_id: other, timeout: 100ms, claim_idle: 300ms }
output:
  redis_list: { url: %s, key: got4 }
]], R.url, R.url))
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return all_seen(R, "got4", 5) end, 20))
      assert.is_true(h.wait_for(function() return R.num("XPENDING in4 g4") == 0 end, 20))
      local _, count = seen(R, "got4")
      assert.equals(5, count)
    end)
    h.stop_after(srv, ok, err)
  end)
end)

describe("redis_list", function()
  it("moves elements through a processing list, removes them once delivered, re-queues after kill -9", function()
    local n = 400
    local cmds = {}
    for i = 1, n do cmds[#cmds + 1] = string.format([[RPUSH jobs5 '{"n":%d}']], i) end
    h.sh(string.format("redis-cli -p %d >/dev/null", R.port), table.concat(cmds, "\n") .. "\n")
    local yaml = string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  redis_list: { url: %s, key: jobs5, timeout: 100ms, limit: 10 }
pipeline:
  processors:
    - rate_limit: { count: 40, interval: 100ms }
output:
  redis_list: { url: %s, key: got5 }
]], R.url, R.url)
    local srv = h.serve(yaml)
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return R.num("LLEN got5") >= 40 end, 20))
      srv.kill()
      local held = R.num("LLEN jobs5-processing")
      assert.is_true(held > 0, "nothing was in flight at the kill")
      assert.is_true(R.num("LLEN got5") < n)
    end)
    if not ok then srv.stop(false, {code = "any"}) error(err, 0) end
    local srv2 = h.serve(yaml, {dir = srv.dir})
    ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return all_seen(R, "got5", n) end, 60), "not every element was delivered")
      assert.is_true(h.wait_for(function()
        return R.num("LLEN jobs5-processing") == 0 and R.num("LLEN jobs5") == 0
      end, 20))
    end)
    h.stop_after(srv2, ok, err)
  end)

  it("output pushes with lpush or rpush to a key named per message", function()
    local r = h.run_config(string.format([[
input:
  generate: { count: 6, interval: 0, mapping: 'meta.q = i %% 2 == 0 and "a" or "b"; return tostring(i)' }
output:
  redis_list: { url: %s, key: 'q6-${! meta.q }', command: lpush }
]], R.url))
    assert.equals(0, r.code, r.stderr)
    assert.same({"6", "4", "2"}, h.lines(R.cli("LRANGE q6-a 0 -1")))
    assert.same({"5", "3", "1"}, h.lines(R.cli("LRANGE q6-b 0 -1")))
  end)
end)

describe("redis_pubsub", function()
  it("subscribes to patterns and publishes to channels named per message (at-most-once)", function()
    local out = h.tmpname()
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
streams:
  sub:
    input:
      redis_pubsub: { url: %s, channels: ['news.*'], use_patterns: true }
    pipeline:
      processors:
        - lua: 'return meta.redis_pubsub_channel .. "=" .. content()'
    output:
      redis_list: { url: %s, key: got7 }
]], R.url, R.url))
    local ok, err = pcall(function()
      -- Subscribed: a publish reaches one subscriber (sluice).
      assert.is_true(h.wait_for(function() return R.num("PUBLISH news.a one") == 1 end, 20))
      R.cli("PUBLISH news.b two")
      R.cli("PUBLISH other three")
      assert.is_true(h.wait_for(function() return R.num("LLEN got7") == 2 end, 20))
      assert.same({"news.a=one", "news.b=two"}, h.lines(R.cli("LRANGE got7 0 -1")))
      -- The output: redis-cli subscribes, sluice publishes.
      os.execute(string.format("timeout 20 redis-cli -p %d --raw SUBSCRIBE chan8 > %s 2>&1 &", R.port, out))
      assert.is_true(h.wait_for(function() return tonumber(h.lines(R.cli("PUBSUB NUMSUB chan8"))[2]) == 1 end, 20))
      local r = h.run_config(string.format([[
input:
  generate: { count: 3, interval: 0, mapping: 'return "m" .. i' }
output:
  redis_pubsub: { url: %s, channel: 'chan${! 8 }' }
]], R.url))
      assert.equals(0, r.code, r.stderr)
      assert.is_true(h.wait_for(function() return (h.read(out) or ""):find("m3", 1, true) ~= nil end, 20))
      local got = h.read(out)
      assert.matches("message\nchan8\nm1\nmessage\nchan8\nm2\nmessage\nchan8\nm3", got, 1, true)
    end)
    os.remove(out)
    h.stop_after(srv, ok, err)
  end)
end)

describe("redis_pubsub under a flood", function()
  it("keeps at most `buffer` messages while the stream is full, drops and counts the rest", function()
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
max_in_flight: 1
input:
  redis_pubsub: { url: %s, channels: [flood], buffer: 10 }
pipeline:
  processors:
    - rate_limit: { count: 1, interval: 1s }
output:
  redis_list: { url: %s, key: got11 }
]], R.url, R.url))
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return tonumber(h.lines(R.cli("PUBSUB NUMSUB flood"))[2]) == 1 end, 20))
      local cmds = {}
      for i = 1, 2000 do cmds[#cmds + 1] = "PUBLISH flood " .. string.rep("x", 1000) .. i end
      h.sh(string.format("redis-cli -p %d >/dev/null", R.port), table.concat(cmds, "\n") .. "\n")
      local dropped
      assert.is_true(h.wait_for(function()
        local _, m = h.sh(string.format("curl -s -m 5 %s/metrics", srv.url))
        dropped = tonumber(m:match('input_redis_pubsub_dropped{[^}]*} (%d+)'))
        -- buffer and the one in flight, and one a second passes while redis-cli publishes
        return dropped and dropped >= 2000 - 11 - 60
      end, 20), "dropped: " .. tostring(dropped))
      assert.equals(200, (ready_status(srv)))
    end)
    h.stop_after(srv, ok, err)
  end)
end)

describe("redis connectors under failure", function()
  it("a Redis restart mid-flow: both ends reconnect, /ready says why meanwhile, nothing is lost", function()
    local n = 600
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
streams:
  produce:
    input:
      generate: { count: %d, interval: 0, mapping: 'return { n = i }' }
    pipeline:
      processors:
        - rate_limit: { count: 30, interval: 100ms }
    output:
      redis_streams: { url: %s, stream: s9, reconnect_max_backoff: 200ms }
  consume:
    input:
      redis_streams: { url: %s, streams: [s9], consumer_group: g9, client_id: c9, timeout: 100ms,
                       reconnect_max_backoff: 200ms }
    output:
      redis_list: { url: %s, key: got9, reconnect_max_backoff: 200ms }
]], n, R.url, R.url, R.url))
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return R.num("LLEN got9") >= 60 end, 20))
      assert.is_true(R.num("XLEN s9") < n, "the producer finished before the restart")
      R.halt()
      local code, body = nil, nil
      assert.is_true(h.wait_for(function()
        code, body = ready_status(srv)
        return code == 503
      end, 20))
      assert.matches("redis 127.0.0.1:" .. R.port, body, 1, true)
      R.launch()
      assert.is_true(h.wait_for(function() return all_seen(R, "got9", n) end, 60), "not everything arrived: " .. srv.stderr())
      assert.is_true(h.wait_for(function() return R.num("XPENDING s9 g9") == 0 end, 20),
        "still pending: " .. R.cli("XPENDING s9 g9 - + 5") .. srv.stderr())
      assert.equals(200, (ready_status(srv)))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("a Redis that stops answering (SIGSTOP) drops the connection after reply_timeout; it flows again after SIGCONT", function()
    local other = redis.start()
    local pid = h.read(other.dir .. "/redis.pid"):match("%d+")
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { interval: 20ms, mapping: 'return { n = i }' }
output:
  redis_list: { url: %s, key: hung, reply_timeout: 1s, reconnect_max_backoff: 200ms }
]], other.url))
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return other.num("LLEN hung") >= 10 end, 20))
      os.execute("kill -STOP " .. pid)
      local code, body
      local seen_down = h.wait_for(function()
        code, body = ready_status(srv)
        return code == 503
      end, 20)
      os.execute("kill -CONT " .. pid)
      assert.is_true(seen_down, "still ready while Redis was stopped")
      assert.matches("no reply within 1000 ms", body, 1, true)
      local before = other.num("LLEN hung")
      assert.is_true(h.wait_for(function() return other.num("LLEN hung") >= before + 20 end, 30))
      -- What failed with the dropped connection comes with its retry (backoff), maybe after later ones.
      assert.is_true(h.wait_for(function() return all_seen(other, "hung", before + 20) end, 30))
      assert.equals(200, (ready_status(srv)))
    end)
    os.execute("kill -CONT " .. pid .. " 2>/dev/null")
    h.stop_after(srv, ok, err)
    other.stop()
  end)

  it("carries huge, binary (non-UTF-8, NUL) and empty values byte for byte", function()
    local huge = string.rep("0123456789abcdef", 512 * 1024)   -- 8 MiB
    local binary = "\255\254\0\1 not utf-8 \192\128\n\r"
    R.cli_in("XADD in10 * body", huge)
    R.cli_in("XADD in10 * body", binary)
    R.cli("XADD in10 * body ''")
    R.cli_in("RPUSH jobs10", binary)
    R.cli("RPUSH jobs10 ''")
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
streams:
  streams:
    input:
      redis_streams: { url: %s, streams: [in10], consumer_group: g10, client_id: c10, timeout: 100ms }
    output:
      redis_list: { url: %s, key: got10 }
  lists:
    input:
      redis_list: { url: %s, key: jobs10, timeout: 100ms }
    output:
      redis_streams: { url: %s, stream: out10 }
]], R.url, R.url, R.url, R.url))
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return R.num("LLEN got10") == 3 end, 30))
      assert.is_true(h.wait_for(function() return R.num("XLEN out10") == 2 end, 30))
      -- --raw prints each value and a newline.
      assert.equals(#huge + 1, #R.cli("LINDEX got10 0"))
      assert.equals(huge .. "\n", R.cli("LINDEX got10 0"))
      assert.equals(binary .. "\n", R.cli("LINDEX got10 1"))
      assert.equals("\n", R.cli("LINDEX got10 2"))
      local entries = R.cli("XRANGE out10 - +")
      assert.is_truthy(entries:find("body\n" .. binary .. "\n", 1, true))
      assert.is_truthy(entries:find("body\n\n", 1, true))
      assert.is_true(h.wait_for(function() return R.num("XPENDING in10 g10") == 0 end, 20))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("authenticates (ACL user and password) and selects the database from the URL; a wrong password is not ready", function()
    R.cli("ACL SETUSER feeder on '>s3cret' '~*' '&*' '+@all'")
    local srv = h.serve(string.format([[
http: { address: 127.0.0.1:$PORT }
streams:
  good:
    input:
      generate: { count: 5, interval: 0, mapping: 'return tostring(i)' }
    output:
      redis_list: { url: 'redis://feeder:s3cret@127.0.0.1:%d/3', key: authed }
  bad:
    input:
      generate: { interval: 1s, mapping: 'return "x"' }
    output:
      redis_list: { url: 'redis://feeder:wrong@127.0.0.1:%d', key: refused }
]], R.port, R.port))
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function() return R.num("-n 3 LLEN authed") == 5 end, 20))
      assert.equals(0, R.num("LLEN authed"))   -- not in database 0
      local code, body = ready_status(srv)
      assert.equals(503, code)
      assert.matches("AUTH: WRONGPASS", body, 1, true)
      assert.equals(0, R.num("LLEN refused"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("lint refuses rediss:// (TLS is tls.enabled) and a bad URL with file:line:col", function()
    local r = h.run_config([[
input:
  redis_list: { key: a, url: 'rediss://127.0.0.1:1' }
output:
  redis_streams: { stream: s, url: 'http://x' }
]], {cmd = "lint"})
    assert.is_not.equals(0, r.code)
    assert.matches(":2:%d+: url: url rediss://127.0.0.1:1: rediss:// is not taken: write redis:// and tls: " ..
      "{enabled: true}", r.stderr)
    assert.matches(":4:%d+: url: url http://x: the scheme must be redis://", r.stderr)
  end)

  it("lint: Benthos's tls passes disabled, and enabled with CAs that load; master needs failover; " ..
     "the redis cache resource alike", function()
    local r = h.run_config([[
input:
  redis_list: { key: a, kind: simple, tls: {enabled: false, skip_cert_verify: true, client_certs: [{cert_file: c.pem}]} }
output:
  redis_streams: { stream: s }
]], {cmd = "lint"})
    assert.are.equal(0, r.code, r.stderr)
    r = h.run_config([[
input:
  redis_list:
    key: a
    tls: {enabled: true, root_cas_file: /nonexistent/ca.pem}
output:
  redis_streams: { stream: s, kind: cluster, tls: {enabled: true} }
]], {cmd = "lint"})
    assert.is_not.equals(0, r.code)
    assert.matches(":4:%d+: tls: /nonexistent/ca.pem", r.stderr)
    assert.is_nil(r.stderr:find(":6:%d+:"), r.stderr)   -- kind: cluster passes
    r = h.run_config([[
input:
  redis_pubsub: { channels: [a], kind: cluster }
output:
  redis_pubsub: { channel: a, master: mymaster }
]], {cmd = "lint"})
    assert.is_nil(r.stderr:find(":2:%d+:"), r.stderr)
    assert.matches(":4:%d+: master: master names a Sentinel master: only with kind: failover", r.stderr)
    r = h.run_config([[
cache_resources:
  - label: c
    redis: {url: 'redis://127.0.0.1:1', tls: {enabled: true, client_certs: [{cert_file: /nonexistent/c.pem, key_file: k}]}}
input: {stdin: {}}
output: {drop: {}}
]], {cmd = "lint"})
    assert.is_not.equals(0, r.code)
    assert.matches(":3:%d+: tls.client_certs: /nonexistent/c.pem", r.stderr)
  end)
end)
