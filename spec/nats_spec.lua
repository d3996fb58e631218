-- The nats and nats_jetstream inputs and outputs against a real nats-server
-- (Debian's, JetStream on) with nats-py as the peer (spec/tools/nats_peer.py).
-- One server for the file; each test uses subjects and streams of its own.
local h = require("spec.helpers")
local nats = require("spec.nats_helpers")
local json = h.json

local why = nats.unavailable()

-- Every line of path decoded as JSON.
local function json_lines(path)
  local t = {}
  for _, l in ipairs(h.lines(h.read(path) or "")) do t[#t + 1] = json.decode(l) end
  return t
end

-- The distinct values of field f of the lines of path.
local function distinct(path, f)
  local seen, n = {}, 0
  for _, l in ipairs(h.lines(h.read(path) or "")) do
    local v = json.decode(l)[f]
    if v ~= nil and not seen[v] then seen[v] = true; n = n + 1 end
  end
  return seen, n
end

-- sluice on fmt (string.format with the rest) with an HTTP address for /ready.
local function serve(fmt, ...)
  return h.serve("http: {address: 127.0.0.1:$PORT}\n" .. string.format(fmt, ...))
end

local function ready(srv)
  local _, out = h.sh("curl -s -m 2 " .. srv.url .. "/ready")
  return json.decode(out)
end

describe("nats (lint)", function()
  it("refuses bad subjects, queue names and JetStream options with their positions", function()
    local r = h.run_config([[
streams:
  a:
    input:
      nats: {urls: [nats://127.0.0.1:1], subject: 'orders..new', queue: 'a b'}
    output:
      nats: {urls: [nats://127.0.0.1:1], subject: 'out.*'}
  b:
    input:
      nats_jetstream: {urls: [nats://127.0.0.1:1], bind: true, durable: d}
    output:
      drop: {}
  c:
    input:
      nats_jetstream: {urls: [nats://127.0.0.1:1], subject: x, durable: d, pull: true, queue: q}
    output:
      nats_jetstream:
        urls: [nats://127.0.0.1:1]
        subject: x
        auth: {token: t, user: u, password: p}
]], {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":4:%d+: subject: not a NATS subject: orders%.%.new", r.stderr)
    assert.matches(":4:%d+: queue: not a queue group name", r.stderr)
    assert.matches(":6:%d+: subject: not a subject to publish to: out%.%*", r.stderr)
    assert.matches(":9:%d+: bind: `bind` needs `stream` and `durable`", r.stderr)
    assert.matches("auth: give one way to authenticate", r.stderr)
    assert.matches(":14:%d+: queue: a deliver group is for push consumers", r.stderr)
  end)
end)

describe("nats #nats", function()
  local s
  setup(function()
    if why then return end
    s = nats.start()
  end)
  teardown(function() if s then s.stop() end end)

  local function need()
    if why then pending(why) end
    return not why
  end

  -- POSTs body to sluice's http_server input at /in; its JSON answer, decoded.
  local function post(srv, body)
    local _, out = h.sh(string.format("curl -s -m 10 -d %s %s/in", h.shell_quote(body), srv.url))
    return json.decode(out)
  end

  it("core: subscribes with wildcards, and gives the subject and headers as metadata", function()
    if not need() then return end
    local out = h.tmpname(".jsonl")
    local srv = serve([[
input:
  nats: {urls: [%s], subject: 'core1.*.x'}
pipeline:
  processors:
    - lua: 'return {data = content(), subject = meta.nats_subject, h = meta.h, reply = meta.nats_reply_subject}'
output:
  file: {path: %s, codec: lines}
]], s.url, out)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      assert.are.equal(0, (nats.peer(s.url, "pub core1.a.x 3 --header h=v1")))
      assert.are.equal(0, (nats.peer(s.url, "pub core1.b.y 2")))   -- not matched
      assert.are.equal(0, (nats.peer(s.url, "pub core1.b.x 1 --start 3")))
      local lines = h.wait_lines(out, 4)
      assert.are.equal(4, #lines)
      local got = json_lines(out)
      assert.are.same({data = "m0", subject = "core1.a.x", h = "v1"}, got[1])
      assert.are.same({data = "m3", subject = "core1.b.x"}, got[4])
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  it("core: publishes to a subject evaluated per message, with headers", function()
    if not need() then return end
    local srv = serve([[
input:
  http_server: {path: /in}
output:
  nats:
    urls: [%s]
    subject: 'core2.${! this.user }'
    headers: {x-n: '${! this.n }'}
    metadata: {include_prefixes: [kind]}
pipeline:
  processors:
    - lua: 'meta.kind = "order"; meta.other = "no"'
]], s.url)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      local sub = nats.subscribe(s.url, "core2.>", 2)
      for i = 1, 2 do
        assert.are.equal(0, (h.sh(string.format("curl -sf -m 5 -d '{\"user\":\"u%d\",\"n\":%d}' %s/in", i, i, srv.url))))
      end
      local got = sub.wait()
      sub.done()
      assert.are.equal(2, #got)
      assert.are.equal("core2.u1", got[1].subject)
      assert.are.same({["x-n"] = "1", kind = "order"}, got[1].headers)
      assert.are.equal("core2.u2", got[2].subject)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("core: a queue group shares a subject between two sluice processes, each message to one of them", function()
    if not need() then return end
    local outs, srvs = {h.tmpname(".jsonl"), h.tmpname(".jsonl")}, {}
    for i = 1, 2 do
      srvs[i] = serve([[
input:
  nats: {urls: [%s], subject: 'qg.jobs', queue: workers}
pipeline:
  processors:
    - lua: 'return {data = content()}'
output:
  file: {path: %s, codec: lines}
]], s.url, outs[i])
    end
    local ok, err = pcall(function()
      for i = 1, 2 do assert.truthy(h.wait_for(function() return ready(srvs[i]).ready end, 20)) end
      assert.are.equal(0, (nats.peer(s.url, "pub qg.jobs 400")))
      local seen, total, each = {}, 0, {}
      h.wait_for(function()
        total = #h.lines(h.read(outs[1]) or "") + #h.lines(h.read(outs[2]) or "")
        return total >= 400
      end, 30)
      for i = 1, 2 do
        each[i] = 0
        for _, l in ipairs(json_lines(outs[i])) do
          assert.is_nil(seen[l.data], "delivered twice: " .. l.data)
          seen[l.data] = true
          each[i] = each[i] + 1
        end
      end
      assert.are.equal(400, each[1] + each[2])
      for k = 0, 399 do assert.truthy(seen["m" .. k], "lost m" .. k) end
      -- the group spread them (all 400 to one member: 2^-399)
      assert.is_true(each[1] > 0 and each[2] > 0)
    end)
    pcall(srvs[2].stop)
    h.stop_after(srvs[1], ok, err)
    for i = 1, 2 do os.remove(outs[i]) end
  end)

  it("core: huge, empty and non-UTF-8 payloads and headers arrive byte for byte", function()
    if not need() then return end
    local out = h.tmpname(".jsonl")
    local srv = serve([[
input:
  nats: {urls: [%s], subject: 'atk.in'}
pipeline:
  processors:
    - lua: |
        local c = content()
        local sum = 0
        for i = 1, #c, 997 do sum = (sum + c:byte(i)) %% 65536 end
        return {len = #c, sum = sum, first = c:sub(1, 4), h = meta.h}
output:
  file: {path: %s, codec: lines}
]], s.url, out)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      local big = h.tmpname(".bin")
      -- 1 MiB less the header room: the largest a default server (max_payload 1 MiB) takes
      h.sh("head -c 1048000 /dev/urandom > " .. big)
      local bad = h.write(h.tmpname(".bin"), "\xff\xfe\x00\xc3\x28ok")
      local empty = h.write(h.tmpname(".bin"), "")
      assert.are.equal(0, (nats.peer(s.url, "pub atk.in 1 --file " .. big)))
      assert.are.equal(0, (nats.peer(s.url, "pub atk.in 1 --header h=\xc3\xa9t\xc3\xa9 --file " .. bad)))
      assert.are.equal(0, (nats.peer(s.url, "pub atk.in 1 --file " .. empty)))
      local got = h.wait_lines(out, 3)
      assert.are.equal(3, #got)
      local data = h.read(big)
      local sum = 0
      for i = 1, #data, 997 do sum = (sum + data:byte(i)) % 65536 end
      local l1, l2, l3 = json.decode(got[1]), json.decode(got[2]), json.decode(got[3])
      assert.are.same({1048000, sum}, {l1.len, l1.sum})
      assert.are.equal(7, l2.len)
      assert.are.equal("\xff\xfe\x00\xc3", l2.first)
      assert.are.equal("été", l2.h)
      assert.are.equal(0, l3.len)
      os.remove(big); os.remove(bad); os.remove(empty)
      -- the server is still there for everyone
      assert.is_true(ready(srv).ready)
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  it("core output: a subject that is not one to publish to, a bad header or a payload over max_payload fails that message with the reason", function()
    if not need() then return end
    local srv = serve([[
retry: {max_retries: 1, initial_interval: 1ms}
input:
  http_server: {path: /in}
pipeline:
  processors:
    - lua: |
        meta.subj = this.s or "fine.big"
        meta.hv = this.hv or "v"
        if this.big then return string.rep("x", 2 * 1024 * 1024) end
output:
  nats:
    urls: [%s]
    subject: '${! meta.subj }'
    headers: {x-h: '${! meta.hv }'}
]], s.url)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      local sub = nats.subscribe(s.url, "fine.>", 1)
      local r = post(srv, '{"s":"with space"}')
      assert.are.equal(502, r.status)
      assert.matches('not a subject to publish to: "with space"', r.error)
      assert.matches("not a subject to publish to", post(srv, '{"s":"wild.*"}').error)
      assert.matches("not a subject to publish to", post(srv, '{"s":"trail."}').error)
      assert.matches("a name must be a token and a value one line", post(srv, '{"s":"fine.x","hv":"a\\r\\nb"}').error)
      assert.matches("nats: publish: Payload %d+ greater than maximum allowed: 1048576", post(srv, '{"big":1}').error)
      assert.are.equal("ok", post(srv, '{"s":"fine.ok"}').status)
      local got = sub.wait(1)
      sub.done()
      assert.are.equal("fine.ok", got[1].subject)
      assert.are.equal(1, #got)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("core output with a fixed subject and no headers (one loop per batch): a payload over max_payload fails with the reason, the rest arrive", function()
    if not need() then return end
    local srv = serve([[
retry: {max_retries: 1, initial_interval: 1ms}
input: {http_server: {path: /in}}
pipeline: {processors: [{lua: 'if this.big then return string.rep("x", 2 * 1024 * 1024) end'}]}
output: {nats: {urls: [%s], subject: fixed.out}}
]], s.url)
    local ok, err = pcall(function()
      local sub = nats.subscribe(s.url, "fixed.out", 1)
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      local big = post(srv, '{"big":1}')
      assert.are.equal("ok", post(srv, '{"small":1}').status)
      assert.are.equal(502, big.status)
      assert.matches("nats: publish: Payload %d+ greater than maximum allowed: 1048576", big.error)
      local got = sub.wait(1)
      sub.done()
      assert.are.same({1, "fixed.out", '{"small":1}'}, {#got, got[1].subject, got[1].data})
    end)
    h.stop_after(srv, ok, err)
  end)

  it("refuses a header name that is not a token at lint", function()
    local r = h.run_config("input: {stdin: {}}\noutput:\n  nats: {urls: [nats://x:1], subject: a, headers: {'a b': v}}\n", {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":3:%d+: a b: not a header name", r.stderr)
  end)

  it("jetstream: publishes acknowledged by PubAcks and consumes with a durable consumer, with JetStream metadata", function()
    if not need() then return end
    assert.are.equal(0, (nats.peer(s.url, "stream JS1 'js1.>'")))
    local out = h.tmpname(".jsonl")
    local srv = serve([[
streams:
  gen:
    input:
      generate: {count: 500, interval: 0s, mapping: 'return {n = i}'}
    output:
      nats_jetstream:
        urls: [%s]
        subject: 'js1.${! this.n %% 2 }'
        headers: {x-n: '${! this.n }'}
        max_in_flight: 64
  cons:
    input:
      nats_jetstream: {urls: [%s], subject: 'js1.>', durable: js1}
    pipeline:
      processors:
        - lua: |
            return {n = this.n, subject = meta.nats_subject, seq = tonumber(meta.nats_sequence_stream),
                    cseq = tonumber(meta.nats_sequence_consumer), delivered = meta.nats_num_delivered,
                    xn = meta["x-n"], ts = meta.nats_timestamp_unix_nano ~= nil}
    output:
      file: {path: %s, codec: lines}
]], s.url, s.url, out)
    local ok, err = pcall(function()
      local lines = h.wait_lines(out, 500, 30)
      assert.are.equal(500, #lines)
      local seqs = {}
      for _, l in ipairs(json_lines(out)) do
        assert.are.equal("js1." .. (l.n % 2), l.subject)
        assert.are.equal(tostring(l.n), l.xn)
        assert.are.equal("1", l.delivered)
        assert.is_true(l.ts)
        assert.is_nil(seqs[l.seq])
        seqs[l.seq] = true
      end
      local _, n = distinct(out, "n")
      assert.are.equal(500, n)
      local _, info = nats.peer(s.url, "info JS1")
      assert.are.equal(500, json.decode(info).messages)
      -- every one acknowledged to the server
      assert.truthy(h.wait_for(function()
        local _, c = nats.peer(s.url, "consumer JS1 js1")
        local ci = json.decode(c)
        return ci.num_ack_pending == 0 and ci.ack_floor == 500
      end, 20))
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  -- A PubAck's failure travels from cnats's thread to the batch as the item's
  -- error (a success carries none): the batch fails with the reason and is
  -- retried until a stream captures the subject.
  it("jetstream output: a publish no stream captures fails its batch with the PubAck's reason, and is stored once a stream takes the subject", function()
    if not need() then return end
    local srv = serve([[
streams:
  gen:
    input:
      generate: {count: 20, interval: 0s, batch_size: 5, mapping: 'return {n = i}'}
    output:
      nats_jetstream: {urls: [%s], subject: js5.x, ack_timeout: 1s}
]], s.url)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return srv.stderr():find("PubAck: No responders", 1, true) end, 30),
        srv.stderr())
      assert.are_not.equal(0, (nats.peer(s.url, "info JS5")))   -- no stream: nothing was stored
      assert.are.equal(0, (nats.peer(s.url, "stream JS5 'js5.>'")))
      assert.truthy(h.wait_for(function()
        local _, i = nats.peer(s.url, "info JS5")
        return (json.decode(i).messages or 0) >= 20
      end, 60), srv.stderr())
    end)
    h.stop_after(srv, ok, err)
  end)

  -- The distinct payloads stored in stream name, and how many messages it holds.
  local function stored(url, name)
    local _, out = nats.peer(url, "dump " .. name, 60)
    local seen, n = {}, 0
    for _, l in ipairs(h.lines(out or "")) do
      local ok, m = pcall(json.decode, l)
      if ok and m.data and not seen[m.data] then seen[m.data] = true; n = n + 1 end
    end
    return seen, n
  end

  -- A PubAck is the server's JSON answer on the publish's reply subject: an
  -- error in it fails the batch with its description, never acknowledges it.
  it("jetstream output: a PubAck with an error fails its batch with the server's reason; published again once the stream takes them, every message is stored", function()
    if not need() then return end
    assert.are.equal(0, (nats.peer(s.url, "stream JS6 'js6.>' --max-msgs 5")))
    local srv = serve([[
streams:
  gen:
    input:
      generate: {count: 12, interval: 0s, batch_size: 4, mapping: 'return "p" .. i'}
    output:
      nats_jetstream: {urls: [%s], subject: js6.x}
]], s.url)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return srv.stderr():find("PubAck: maximum messages exceeded", 1, true) end, 30),
        srv.stderr())
      local _, i = nats.peer(s.url, "info JS6")
      assert.are.equal(5, json.decode(i).messages)
      assert.are.equal(0, (nats.peer(s.url, "stream JS6 'js6.>' --max-msgs -1")))
      local seen, n
      assert.truthy(h.wait_for(function()
        seen, n = stored(s.url, "JS6")
        return n >= 12
      end, 60), srv.stderr())
      for k = 1, 12 do assert.truthy(seen["p" .. k], "lost p" .. k) end
    end)
    h.stop_after(srv, ok, err)
  end)

  -- 60 messages published one a batch to stream JS<name> on a server of
  -- their own, which is stopped (it reads nothing) once 3 are stored: their
  -- publishes fail at ack_timeout; then after(s2, pid, srv) resumes or
  -- replaces the server, and every message is stored in the end.
  local function stalled_publishes(name, after)
    local s2 = nats.start()
    assert.are.equal(0, (nats.peer(s2.url, "stream JS" .. name .. " '" .. name .. ".>'")))
    local srv = serve([[
streams:
  gen:
    input:
      generate: {count: 60, interval: 50ms, batch_size: 1, mapping: 'return "m" .. i'}
    output:
      nats_jetstream: {urls: [%s], subject: ]] .. name .. [[.x, ack_timeout: 300ms}
]], s2.url)
    local pid = (h.read(s2.dir .. "/server.pid") or ""):match("%d+")
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function()
        local _, i = nats.peer(s2.url, "info JS" .. name)
        return (json.decode(i).messages or 0) >= 3
      end, 30), srv.stderr())
      os.execute("kill -STOP " .. pid)
      local timed_out = h.wait_for(function() return srv.stderr():find("PubAck: none within ack_timeout (300 ms)", 1, true) end, 30)
      after(s2, pid, srv)
      assert.truthy(timed_out, srv.stderr())
      local seen, n
      assert.truthy(h.wait_for(function()
        seen, n = stored(s2.url, "JS" .. name)
        return n >= 60
      end, 90), srv.stderr())
      for k = 1, 60 do assert.truthy(seen["m" .. k], "lost m" .. k) end
    end)
    os.execute("kill -CONT " .. (pid or "0") .. " 2>/dev/null")
    h.stop_after(srv, ok, err)
    s2.stop()
  end

  -- A PubAck that does not come within ack_timeout fails its publish (its
  -- batch is published again); when it comes after all, it answers nothing.
  it("jetstream output: PubAcks held past ack_timeout (the server stopped) fail their batch, which is published again; the late ones change nothing", function()
    if not need() then return end
    stalled_publishes("js7", function(_, pid) os.execute("kill -CONT " .. pid) end)
  end)

  -- Publishes written to a connection that then breaks get no PubAck: after
  -- the reconnect they are published again.
  it("jetstream output: PubAcks lost with the connection (the server killed while it held them) fail their batch, published again after the reconnect", function()
    if not need() then return end
    stalled_publishes("js8", function(s2, pid, srv)
      os.execute("kill -9 " .. pid)
      assert.truthy(h.wait_for(function() return srv.stderr():find("nats: disconnected from", 1, true) end, 30), srv.stderr())
      assert.truthy(s2.restart())
    end)
  end)

  it("jetstream: a failed transaction is nak'ed and comes again after nak_delay, long before ack_wait", function()
    if not need() then return end
    assert.are.equal(0, (nats.peer(s.url, "stream JS2 'js2.>'")))
    assert.are.equal(0, (nats.peer(s.url, "pub js2.a 20 --js")))
    local out = h.tmpname(".jsonl")
    local srv = serve([[
input:
  nats_jetstream: {urls: [%s], subject: 'js2.>', durable: js2, ack_wait: 10m, nak_delay: 100ms, batch_count: 1}
pipeline:
  processors:
    - lua: |
        if meta.nats_num_delivered == "1" then error("first time fails") end
        return {data = content(), delivered = meta.nats_num_delivered}
output:
  reject_errored:
    file: {path: %s, codec: lines}
]], s.url, out)
    local ok, err = pcall(function()
      -- ack_wait is 10 minutes: only the nak brings them back within this bound
      local lines = h.wait_lines(out, 20, 60)
      assert.are.equal(20, #lines)
      for _, l in ipairs(json_lines(out)) do assert.are.equal("2", l.delivered) end
      assert.matches("sent back, redelivered in 100 ms", srv.stderr())
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  -- 2000 messages on stream JS<name> (subjects <name>.>) for an input
  -- (input, a YAML flow map with %s for the URL) that takes 50 per 100 ms:
  -- sluice is killed once 200 arrived, with some held unacknowledged, and
  -- started again; every message arrives, some of them delivered again.
  local function kill_midflow(name, input, consumer)
    assert.are.equal(0, (nats.peer(s.url, "stream JS" .. name .. " '" .. name .. ".>'")))
    if consumer then assert.are.equal(0, (nats.peer(s.url, consumer))) end
    assert.are.equal(0, (nats.peer(s.url, "pub " .. name .. ".a 2000 --js", 120)))
    local out = h.tmpname(".jsonl")
    local conf = string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  nats_jetstream: ]] .. input .. [[

pipeline:
  processors:
    - rate_limit: {count: 50, interval: 100ms}
    - lua: 'return {data = content(), delivered = meta.nats_num_delivered}'
output:
  file: {path: %s, codec: lines}
]], s.url, out)
    local srv = h.serve(conf)
    h.wait_lines(out, 200, 30)
    srv.kill()
    local ok, err = pcall(function()
      local before = #h.lines(h.read(out) or "")
      assert.is_true(before >= 200 and before < 2000, "killed mid-flow: " .. before)
      -- what it held unacknowledged when it died: the server still waits for those acks
      local _, c = nats.peer(s.url, "consumer JS" .. name .. " " .. name)
      assert.is_true(json.decode(c).num_ack_pending > 0, c)
    end)
    h.rmdir(srv.dir)
    if not ok then error(err, 0) end
    srv = h.serve(conf)
    ok, err = pcall(function()
      local seen, n
      h.wait_for(function()
        seen, n = distinct(out, "data")
        return n >= 2000
      end, 90)
      for i = 0, 1999 do assert.truthy(seen["m" .. i], "lost m" .. i) end
      local redelivered = 0
      for _, l in ipairs(json_lines(out)) do if l.delivered ~= "1" then redelivered = redelivered + 1 end end
      assert.is_true(redelivered > 0)
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end

  it("jetstream: kill -9 of sluice mid-flow loses nothing it had not acknowledged: the server delivers it again", function()
    if not need() then return end
    kill_midflow("js3", "{urls: [%s], subject: 'js3.>', durable: js3, ack_wait: 2s, max_ack_pending: 200, batch_count: 10}")
  end)

  it("jetstream: binds to an existing push consumer whose settings are not sluice's defaults", function()
    if not need() then return end
    assert.are.equal(0, (nats.peer(s.url, "stream JSB 'jsb.>'")))
    -- max_ack_pending 1000 and ack_wait 30 s are the server's defaults, not sluice's
    assert.are.equal(0, (nats.peer(s.url, "pushconsumer JSB jsb deliver.jsb")))
    assert.are.equal(0, (nats.peer(s.url, "pub jsb.a 50 --js")))
    local out = h.tmpname(".jsonl")
    local srv = serve([[
input:
  nats_jetstream: {urls: [%s], stream: JSB, durable: jsb, bind: true, max_ack_pending: 5, ack_wait: 1s}
pipeline:
  processors:
    - lua: 'return {data = content()}'
output:
  file: {path: %s, codec: lines}
]], s.url, out)
    local ok, err = pcall(function()
      local _, n = nil, 0
      h.wait_for(function()
        _, n = distinct(out, "data")
        return n >= 50
      end, 30)
      assert.are.equal(50, n, srv.stderr())
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  it("jetstream pull: two processes fetch in batches from one durable pull consumer, each message to one of them, with a nak coming again", function()
    if not need() then return end
    assert.are.equal(0, (nats.peer(s.url, "stream JSP 'jsp.>'")))
    local outs, srvs = {h.tmpname(".jsonl"), h.tmpname(".jsonl")}, {}
    local ok, err = pcall(function()
      for k = 1, 2 do
        srvs[k] = serve([[
input:
  nats_jetstream: {urls: [%s], subject: 'jsp.>', durable: jsp, pull: true, batch_count: 16, nak_delay: 100ms}
pipeline:
  processors:
    - rate_limit: {count: 50, interval: 100ms}
    - lua: |
        if content() == "m7" and meta.nats_num_delivered == "1" then error("m7 fails the first time") end
        return {data = content(), subject = meta.nats_subject, delivered = meta.nats_num_delivered,
                seq = tonumber(meta.nats_sequence_stream)}
output:
  reject_errored:
    file: {path: %s, codec: lines}
]], s.url, outs[k])
      end
      -- both fetch before the first message is there
      assert.truthy(h.wait_for(function()
        local _, c = nats.peer(s.url, "consumer JSP jsp")
        local ci = c and c ~= "" and json.decode(c)
        return ci and ci.num_waiting >= 2
      end, 30))
      assert.are.equal(0, (nats.peer(s.url, "pub jsp.a 1000 --js", 120)))
      local got = {}
      assert.truthy(h.wait_for(function()
        got = {}
        local n = 0
        for k = 1, 2 do
          for _, l in ipairs(json_lines(outs[k])) do
            if not got[l.data] then n = n + 1 end
            got[l.data] = (got[l.data] or 0) + 1
          end
        end
        return n >= 1000
      end, 60))
      for i = 0, 999 do assert.are.equal(1, got["m" .. i], "m" .. i) end
      local a, b = #json_lines(outs[1]), #json_lines(outs[2])
      assert.is_true(a > 0 and b > 0 and a + b == 1000, a .. " + " .. b)
      local m7
      for k = 1, 2 do
        for _, l in ipairs(json_lines(outs[k])) do if l.data == "m7" then m7 = l end end
      end
      assert.are.equal("2", m7.delivered)
      local _, c = nats.peer(s.url, "consumer JSP jsp")
      local ci = json.decode(c)
      assert.is_false(ci.push)
      assert.truthy(h.wait_for(function()
        local _, c2 = nats.peer(s.url, "consumer JSP jsp")
        return json.decode(c2).ack_floor == 1000
      end, 20))
      print(string.format("\n  pull consumer shared: %d and %d", a, b))
    end)
    local ok2, err2 = pcall(function() h.stop_after(srvs[1], ok, err) end)
    if srvs[2] then h.stop_after(srvs[2], ok2, err2) elseif not ok2 then error(err2, 0) end
    os.remove(outs[1]); os.remove(outs[2])
  end)

  it("jetstream pull: bound to an existing pull consumer, kill -9 mid-flow loses nothing: what it held comes again", function()
    if not need() then return end
    -- the consumer's settings (ack_wait 2 s, max_ack_pending 1000) are not
    -- sluice's defaults: bind takes them as they are
    kill_midflow("jsq", "{urls: [%s], stream: JSjsq, durable: jsq, bind: true, pull: true, batch_count: 10}",
      "pullconsumer JSjsq jsq")
  end)

  it("jetstream pull: stops at once with its queue full (the fetch waiting for room gives up)", function()
    if not need() then return end
    assert.are.equal(0, (nats.peer(s.url, "stream JSS 'jss.>'")))
    assert.are.equal(0, (nats.peer(s.url, "pub jss.a 3000 --js", 120)))
    local out = h.tmpname(".jsonl")
    local srv = serve([[
input:
  nats_jetstream: {urls: [%s], subject: 'jss.>', durable: jss, pull: true, batch_count: 1, max_ack_pending: 5000}
pipeline:
  processors:
    - rate_limit: {count: 10, interval: 100ms}
output:
  file: {path: %s, codec: lines}
]], s.url, out)
    local ok, err = pcall(function()
      h.wait_lines(out, 20, 30)
      -- the queue (1024) is full and the fetch waits for room
      assert.truthy(h.wait_for(function()
        local _, c = nats.peer(s.url, "consumer JSS jss")
        return json.decode(c).num_ack_pending >= 1000
      end, 30))
    end)
    h.stop_after(srv, ok, err)
    local got = #h.lines(h.read(out) or "")
    assert.is_true(got >= 20 and got < 3000, got)
    os.remove(out)
  end)

  it("jetstream: a server restart mid-flow: not ready while it is down, reconnects, nothing acknowledged is lost", function()
    if not need() then return end
    local s2 = nats.start()
    assert.are.equal(0, (nats.peer(s2.url, "stream JS4 'js4.>'")))
    local out = h.tmpname(".jsonl")
    local srv = serve([[
streams:
  gen:
    input:
      generate: {count: 3000, interval: 1ms, mapping: 'return {n = i}'}
    output:
      nats_jetstream: {urls: [%s], subject: js4.x, ack_timeout: 1s}
  cons:
    input:
      nats_jetstream: {urls: [%s], subject: 'js4.>', durable: js4, ack_wait: 2s}
    pipeline:
      processors:
        - lua: 'return {n = this.n}'
    output:
      file: {path: %s, codec: lines}
]], s2.url, s2.url, out)
    local ok, err = pcall(function()
      h.wait_lines(out, 300, 30)
      assert.truthy(s2.kill())
      local mid = #h.lines(h.read(out) or "")
      assert.is_true(mid < 3000, "restarted mid-flow: " .. mid)
      assert.truthy(h.wait_for(function() return not ready(srv).ready end, 20))
      assert.matches("nats: disconnected from nats://127%.0%.0%.1:%d+", ready(srv).streams.cons)
      assert.truthy(s2.restart())
      local seen, n
      h.wait_for(function()
        seen, n = distinct(out, "n")
        return n >= 3000
      end, 120)
      for i = 1, 3000 do assert.truthy(seen[i], "lost " .. i) end
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20), json.encode(ready(srv)) .. srv.stderr())
    end)
    h.stop_after(srv, ok, err)
    s2.stop()
    os.remove(out)
  end)

  it("a server absent at start: not ready with the reason, then flows once it is up (inputs and output)", function()
    if not need() then return end
    local port = h.port()
    local url = "nats://127.0.0.1:" .. port
    local out = h.tmpname(".jsonl")
    local srv = serve([[
streams:
  core:
    input:
      nats: {urls: [%s], subject: late.core}
    output:
      file: {path: %s, codec: lines}
  js:
    input:
      nats_jetstream: {urls: [%s], subject: 'late.js', durable: late}
    output:
      file: {path: %s, codec: lines}
  gen:
    input:
      generate: {count: 1, interval: 0s, mapping: 'return "m2"'}
    output:
      nats_jetstream: {urls: [%s], subject: late.js}
]], url, out, url, out, url)
    local s3
    local ok, err = pcall(function()
      local r = ready(srv)
      assert.is_false(r.ready)
      assert.matches("nats: connecting to nats://127%.0%.0%.1:" .. port, r.streams.core)
      s3 = nats.start({port = port})
      -- connected, but the JetStream consumer needs a stream: not ready, with the reason
      assert.truthy(h.wait_for(function() return (ready(srv).streams.js or ""):match("JetStream consumer on late%.js") end, 20))
      assert.are.equal(0, (nats.peer(s3.url, "stream LATE late.js")))
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      assert.are.equal(0, (nats.peer(s3.url, "pub late.core 1")))
      assert.are.equal(0, (nats.peer(s3.url, "pub late.js 1 --js --start 1")))
      -- and the output that waited for the server (and then for the stream) published too
      local lines = h.wait_lines(out, 3)
      table.sort(lines)
      assert.are.same({"m0", "m1", "m2"}, lines)
    end)
    h.stop_after(srv, ok, err)
    if s3 then s3.stop() end
    os.remove(out)
  end)

  it("a connection cnats closed for good (its first handshake timed out) is made again: not ready with the reason, then flows", function()
    if not need() then return end
    -- cnats gives a connection up for good when its first connect reached
    -- the server but the handshake failed ("No server available"): a gate
    -- that accepts and never answers, then lets connections through
    local gport, hold, glog = h.port(), h.tmpname(".hold"), h.tmpname(".log")
    h.write(hold, "")
    local _, gpid = h.sh(string.format("timeout -k 5 300 python3 spec/tools/nats_gate.py %d %d %s > %s 2>&1 & echo $!",
      gport, s.port, hold, glog))
    gpid = gpid:match("%d+")
    local url = "nats://127.0.0.1:" .. gport
    local out = h.tmpname(".jsonl")
    local srv
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return h.sh("timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. gport .. "'") == 0 end, 20))
      srv = serve([[
streams:
  core:
    input:
      nats: {urls: [%s], subject: gate.core}
    output:
      file: {path: %s, codec: lines}
  js:
    input:
      nats_jetstream: {urls: [%s], subject: 'gate.js', durable: gate}
    output:
      file: {path: %s, codec: lines}
]], url, out, url, out)
      assert.are.equal(0, (nats.peer(s.url, "stream GATE gate.js")))
      -- the held handshakes timed out and cnats closed both connections: said on /ready
      assert.truthy(h.wait_for(function()
        local r = ready(srv).streams or {}
        -- (the JetStream consumer's setup may fail on the closed connection first)
        return (r.core or ""):match("^nats: connection closed: No server available.*retrying")
          and (r.js or ""):lower():match("^nats: .*connection closed")
      end, 30), json.encode(ready(srv)) .. (h.read(glog) or ""))
      assert.is_false(ready(srv).ready)
      os.remove(hold)
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 60), json.encode(ready(srv)))
      assert.are.equal(0, (nats.peer(s.url, "pub gate.core 3")))
      assert.are.equal(0, (nats.peer(s.url, "pub gate.js 3 --js --start 3")))
      local lines = h.wait_lines(out, 6)
      table.sort(lines)
      assert.are.same({"m0", "m1", "m2", "m3", "m4", "m5"}, lines)
    end)
    if srv then h.stop_after(srv, ok, err) elseif not ok then error(err, 0) end
    if gpid then os.execute("kill " .. gpid .. " 2>/dev/null") end
    os.remove(hold)
    os.remove(glog)
    os.remove(out)
  end)

  it("authenticates with user and password or a token, and says why on /ready when refused", function()
    if not need() then return end
    local sa = nats.start({args = "--user alice --pass s3cret"})
    local st = nats.start({args = "--auth t0ken"})
    local out = h.tmpname(".txt")
    local srv = serve([[
streams:
  user:
    input:
      nats: {urls: [%s], subject: auth.a, auth: {user: alice, password: s3cret}}
    output:
      file: {path: %s, codec: lines}
  token:
    input:
      nats: {urls: [%s], subject: auth.t, auth: {token: t0ken}}
    output:
      file: {path: %s, codec: lines}
  wrong:
    input:
      nats: {urls: [%s], subject: auth.w, auth: {user: alice, password: nope}}
    output:
      drop: {}
]], sa.url, out, st.url, out, sa.url)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function()
        local r = ready(srv).streams or {}
        -- cnats closes a refused first login as "no server"; the connection
        -- made again says the refusal, and stays refused
        return not r.user and not r.token and (r.wrong or ""):lower():match("^nats: authorization violation$")
      end, 20), json.encode(ready(srv)))
      assert.are.equal(0, (nats.peer("nats://alice:s3cret@127.0.0.1:" .. sa.port, "pub auth.a 1")))
      assert.are.equal(0, (nats.peer("nats://t0ken@127.0.0.1:" .. st.port, "pub auth.t 1 --start 1")))
      local lines = h.wait_lines(out, 2)
      table.sort(lines)
      assert.are.same({"m0", "m1"}, lines)
    end)
    h.stop_after(srv, ok, err)
    sa.stop()
    st.stop()
    os.remove(out)
  end)

  it("serves a per-user subject behind SSE: a request-scoped input subject from $tyk_context", function()
    if not need() then return end
    local srv = serve([[
input:
  nats: {urls: [%s], subject: 'user.$tyk_context.request_data_user'}
output:
  http_server: {path: /get, sse_path: /sse}
]], s.url)
    local ok, err = pcall(function()
      local fa, fb = h.tmpname(".sse"), h.tmpname(".sse")
      os.execute(string.format("curl -s -N -m 20 '%s/sse?user=alice' > %s 2>&1 &", srv.url, fa))
      os.execute(string.format("curl -s -N -m 20 '%s/sse?user=bob' > %s 2>&1 &", srv.url, fb))
      -- each instance subscribes once its first client came: publish until both saw theirs
      local k = 0
      assert.truthy(h.wait_for(function()
        k = k + 1
        nats.peer(s.url, "pub user.alice 1 --start " .. k)
        nats.peer(s.url, "pub user.bob 1 --start " .. (1000 + k))
        local a, b = h.read(fa) or "", h.read(fb) or ""
        return a:match("data: m%d+") and b:match("data: m1%d%d%d")
      end, 15))
      local a, b = h.read(fa), h.read(fb)
      assert.is_nil(a:match("data: m1%d%d%d"), "alice got bob's: " .. a)
      for m in b:gmatch("data: m(%d+)") do assert.is_true(tonumber(m) > 1000, "bob got alice's: " .. b) end
      os.remove(fa)
      os.remove(fb)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("inputs read on the stream's loop: eight core and JetStream inputs start no reader, flusher or delivery thread of cnats", function()
    if not need() then return end
    assert.are.equal(0, (nats.peer(s.url, "stream LOOPT 'loopt.>'")))
    local function inputs(n)
      local t = {}
      for i = 1, n do
        t[#t + 1] = i % 2 == 1
          and string.format("      - nats: {urls: [%s], subject: 'loopc.%d'}", s.url, i)
          or string.format("      - nats_jetstream: {urls: [%s], subject: 'loopt.%d', durable: 'd%d'}", s.url, i, i)
      end
      return table.concat(t, "\n")
    end
    local function run(n)
      return serve("input:\n  broker:\n    inputs:\n%s\noutput: {drop: {}}\n", inputs(n))
    end
    local one, eight = run(1), run(8)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(one).ready and ready(eight).ready end, 30))
      -- each link keeps a thread of its own (connect, JetStream setup, close),
      -- and a JetStream one cnats's for the replies to its API requests: 11;
      -- on cnats's threads each input had three more (reader, flusher,
      -- delivery): 32
      local function threads(srv)
        local pid = (h.read(srv.dir .. "/pid.txt") or ""):match("%d+")
        return tonumber(((h.read("/proc/" .. pid .. "/status") or ""):match("Threads:%s*(%d+)")))
      end
      local more = threads(eight) - threads(one)
      assert.is_true(more >= 7 and more <= 14, "threads added by 7 inputs: " .. more)
    end)
    eight.stop()
    h.stop_after(one, ok, err)
  end)

  it("cnats's own threads (timers, callbacks, the collector freeing delivered messages) run ten nice levels below the loop", function()
    if not need() then return end
    local srv = serve("input:\n  nats: {urls: [%s], subject: nicec}\noutput: {drop: {}}\n", s.url)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      local pid = (h.read(srv.dir .. "/pid.txt") or ""):match("%d+")
      -- field 19 of a thread's stat: after "(comm) ", 16 fields, then nice
      local function nice(tid)
        local stat = h.read("/proc/" .. pid .. "/task/" .. tid .. "/stat") or ""
        return tonumber(stat:match("%) " .. ("%S+ "):rep(16) .. "(%-?%d+)"))
      end
      local loop = nice(pid)
      local lowered, others = 0, {}
      local _, tids = h.sh("ls /proc/" .. pid .. "/task")
      for tid in tids:gmatch("%d+") do
        local n = nice(tid)
        if n == math.min(loop + 10, 19) and n ~= loop then lowered = lowered + 1
        elseif tid ~= pid then others[#others + 1] = n end
      end
      -- cnats's timers, connection callbacks and collector; the link's own
      -- thread and sluice's stay at the loop's
      assert.is_true(lowered >= 3, "threads 10 below the loop's nice " .. loop .. ": " .. lowered)
      for _, n in ipairs(others) do assert.are.equal(loop, n) end
    end)
    h.stop_after(srv, ok, err)
  end)

  it("inputs read on the stream's loop: a burst of more than one turn (4096) arrives whole with nothing after it", function()
    if not need() then return end
    local out = h.tmpname(".txt")
    local srv = serve([[
input:
  nats: {urls: [%s], subject: loopb, batch_count: 4096}
output:
  file: {path: %s, codec: lines}
]], s.url, out)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv).ready end, 20))
      assert.are.equal(0, (nats.peer(s.url, "pub loopb 20000")))
      assert.truthy(h.wait_for(function() return #h.lines(h.read(out) or "") >= 20000 end, 30),
        "arrived: " .. #h.lines(h.read(out) or ""))
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)
end)
