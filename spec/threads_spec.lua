-- pipeline.threads (core/pool.c): processors on N pool workers, each with its
-- own loop and Lua VM, while the input, transactions, the output and acks
-- stay on the stream's loop. Each Lua VM names itself (a global set once per
-- VM), so the specs see that both workers ran; `now()` (microseconds, RFC
-- 3339, so it sorts as text) shows which message finished first.
local h = require("spec.helpers")
local u = require("spec.upstream_helpers")
local otlp = require("spec.otlp_helpers")
local json = h.json

local function run(yaml, opts)
  local r = h.run_config(yaml, opts or {timeout = 120})
  assert.are.equal(0, r.code, r.stderr)
  return h.decode_lines(h.lines(r.stdout)), r
end

-- Message 1 works longest, the others a random while: with two workers the
-- second message is done long before the first.
local function busy_config(threads, ordered, count)
  return string.format([[
lua: {max_steps: 2000000000, max_time: 60s}
input:
  generate: {count: %d, interval: 0, batch_size: 1, mapping: 'return {n = i}'}
pipeline:
  threads: %d
  ordered: %s
  processors:
    - lua: |
        vm_id = vm_id or uuid_v4()
        local x = 0
        for k = 1, (this.n == 1 and 30000000 or math.random(1, 300000)) do x = x + k %% 3 end
        this.vm = vm_id
        this.at = now()
output:
  stdout: {}
]], count, threads, ordered and "true" or "false")
end

local function vms(out)
  local seen, n = {}, 0
  for _, m in ipairs(out) do
    if m.vm and not seen[m.vm] then seen[m.vm], n = true, n + 1 end
  end
  return n
end

-- Some message finished before an earlier one (by the clock).
local function passed(out)
  for i = 2, #out do
    if out[i].at < out[i - 1].at then return true end
  end
end

-- Sends {"n": 1} .. {"n": sends} on one WebSocket to url and returns the
-- first recv answers, decoded.
local function ws_answers(url, sends, recv)
  local args = {}
  for i = 1, sends do args[#args + 1] = "--send '{\"n\":" .. i .. "}'" end
  local _, out = h.sh("/usr/bin/python3 spec/tools/ws_client.py '" .. url .. "' " .. table.concat(args, " ") ..
    " --recv " .. recv)
  local got = {}
  for l in out:gmatch("[^\n]+") do got[#got + 1] = json.decode(json.decode(l).text) end
  return got
end

describe("pipeline.threads", function()
  it("keeps the input's order with two workers though later messages finish first", function()
    local out = run(busy_config(2, true, 300))
    assert.are.equal(300, #out)
    for i = 1, 300 do assert.are.equal(i, out[i].n) end
    assert.are.equal(2, vms(out))
    assert.is_true(passed(out), "no message finished before an earlier one: the order was never at stake")
  end)

  it("lets batches pass each other with ordered: false", function()
    local out
    -- bounded: message 1 takes a hundred times the others' longest
    for _ = 1, 5 do
      out = run(busy_config(2, false, 300))
      if out[1].n ~= 1 then break end
    end
    assert.are.equal(300, #out)
    assert.are_not.equal(1, out[1].n, "message 1 came first in 5 runs")
    local seen = {}
    for _, m in ipairs(out) do
      assert.is_nil(seen[m.n], "twice: " .. m.n)
      seen[m.n] = true
    end
    for i = 1, 300 do assert.is_true(seen[i], "missing " .. i) end
    assert.are.equal(2, vms(out))
  end)

  it("runs one worker per core by default, and none on one core", function()
    -- without pipeline.threads (nor SLUICE_THREADS): -1, one per core
    local path = h.write(h.tmpname(".yaml"), [[
input:
  generate: {count: 300, interval: 0, batch_size: 1, mapping: 'return {n = i}'}
pipeline:
  processors:
    - lua: |
        vm_id = vm_id or uuid_v4()
        local x = 0
        for k = 1, math.random(1, 300000) do x = x + k % 3 end
        this.vm = vm_id
output:
  stdout: {}
]])
    local function vms_with(prefix)
      local code, out, err = h.sh("env -u SLUICE_THREADS " .. prefix .. " timeout -k 5 120 " .. h.bin .. " run " .. path)
      assert.are.equal(0, code, err)
      local got = h.decode_lines(h.lines(out))
      assert.are.equal(300, #got)
      for i = 1, 300 do assert.are.equal(i, got[i].n) end
      return vms(got)
    end
    local _, cores = h.sh("nproc")
    cores = tonumber(cores)
    local n = vms_with("")
    assert.is_true(cores == 1 and n == 1 or n >= 2 and n <= cores, n .. " VMs on " .. cores .. " cores")
    assert.are.equal(1, vms_with("taskset -c 0"))
    os.remove(path)
  end)

  it("changes nothing with threads: 1 (one VM, the stream's)", function()
    local out = run(busy_config(1, true, 50))
    assert.are.equal(50, #out)
    for i = 1, 50 do assert.are.equal(i, out[i].n) end
    assert.are.equal(1, vms(out))
  end)

  it("flags only the message whose script failed, on either worker", function()
    local out = run([[
input:
  generate: {count: 200, interval: 0, batch_size: 4, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - lua: |
        vm_id = vm_id or uuid_v4()
        this.vm = vm_id
        if this.n % 10 == 0 then error("boom " .. this.n) end
    - lua: |
        if errored() then return {n = this.n, failed = error_message()} end
output:
  stdout: {}
]])
    assert.are.equal(200, #out)
    for i, m in ipairs(out) do
      assert.are.equal(i, m.n)
      if i % 10 == 0 then
        assert.matches("boom " .. i, m.failed)
      else
        assert.is_nil(m.failed)
      end
    end
    assert.are.equal(2, vms(out))
  end)

  it("writes the log lines of processors and scripts in input order, as one worker does", function()
    local out, r = run([[
logger: {level: info, format: json}
lua: {max_steps: 2000000000, max_time: 60s}
input:
  generate: {count: 300, interval: 0, batch_size: 1, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - lua: |
        local x = 0
        for k = 1, (this.n == 1 and 10000000 or math.random(1, 100000)) do x = x + k % 3 end
        log("info", "from lua", {n = this.n})
        this.at = now()
    - log: {message: 'line ${! this.n }'}
output:
  stdout: {}
]])
    assert.are.equal(300, #out)
    assert.is_true(passed(out), "no message finished before an earlier one: the order was never at stake")
    local fromlua, lines = {}, {}
    for _, l in ipairs(h.lines(r.stderr)) do
      local ok, t = pcall(json.decode, l)
      if ok and t.msg == "from lua" then fromlua[#fromlua + 1] = tonumber(t.n) end
      if ok and t.msg and t.msg:match("^line ") then lines[#lines + 1] = tonumber(t.msg:sub(6)) end
    end
    assert.are.equal(300, #fromlua)
    assert.are.equal(300, #lines)
    for i = 1, 300 do
      assert.are.equal(i, fromlua[i])
      assert.are.equal(i, lines[i])
    end
  end)

  it("shares a memory cache between workers: every incr counted once, a value read whole while rewritten", function()
    -- Both workers increment one key and rewrite one 100 kB value while they
    -- read it back: incr's answers are 1..N each once (a lost update would
    -- answer one twice), and a value replaced or evicted by the other worker
    -- mid-read is still read whole (the reader holds its entry).
    local out = run([[
cache_resources:
  - label: c
    memory: {default_ttl: 0, max_bytes: 1MiB}
input:
  generate: {count: 3000, interval: 0, batch_size: 1, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - lua: |
        vm_id = vm_id or uuid_v4()
        this.vm = vm_id
        this.count = assert(cache.incr("c", "count", 1))
        local v = string.rep(string.char(65 + this.n % 26), 100000)
        assert(cache.set("c", "big" .. this.n % 20, v))
        local got = cache.get("c", "big" .. (this.n + 1) % 20)
        this.whole = got == nil or got == string.rep(got:sub(1, 1), 100000)
output:
  stdout: {}
]])
    assert.are.equal(3000, #out)
    local seen = {}
    for i, m in ipairs(out) do
      assert.are.equal(i, m.n)
      assert.is_true(m.whole, "a value read torn: " .. i)
      assert.is_nil(seen[m.count], "incr answered twice: " .. tostring(m.count))
      seen[m.count] = true
    end
    for i = 1, 3000 do assert.is_true(seen[i], "incr never answered " .. i) end
    assert.are.equal(2, vms(out))
  end)

  it("counts the workers' processor metrics into the stream's series", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
streams:
  main:
    input: {generate: {count: 500, interval: 0, batch_size: 5, mapping: 'return {n = i}'}}
    pipeline:
      threads: 2
      processors:
        - lua: 'if this.n % 5 == 0 then error("five") end'
    output: {drop: {}}
  idle:   # keeps the process up once main has finished
    input: {generate: {interval: 1h, mapping: 'return 1'}}
    output: {drop: {}}
]])
    local prom = require("spec.prom")
    local ok, err = pcall(function()
      local s
      assert.truthy(h.wait_for(function()
        s = prom.samples(srv.url .. "/metrics")
        return (prom.value(s, "output_sent_total", {stream = "main"}) or 0) >= 500
      end, 60), "not all sent")
      local proc = {stream = "main", label = "lua"}
      assert.are.equal(500, prom.value(s, "processor_received_total", proc))
      assert.are.equal(500, prom.value(s, "processor_sent_total", proc))
      assert.are.equal(100, prom.value(s, "processor_error_total", proc))
      assert.are.equal(100, prom.value(s, "sluice_lua_errors_total", {stream = "main", label = "lua"}))
      assert.are.equal(100, prom.value(s, "processor_latency_ns_count", proc))
      -- drop writes on the workers: their counts reach the output's series
      assert.are.equal(500, prom.value(s, "output_sent_total", {stream = "main"}))
      assert.are.equal(100, prom.value(s, "output_latency_ns_count", {stream = "main"}))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("takes WebSocket messages whose contexts share the connection's lists, drops some on a worker", function()
    -- each message's context copies the connection's query and headers
    -- (shared entries, copy on write): the last ref must not go on a worker
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input: {http_server: {path: /in, ws_path: /ws}}
pipeline:
  threads: 2
  processors:
    - lua: |
        if this.n % 2 == 1 then return deleted() end
        return {n = this.n, user = ctx.query.user}
output: {sync_response: {}}
]])
    local answers = ws_answers("ws://127.0.0.1:" .. srv.port .. "/ws?user=ada", 40, 20)
    assert.are.equal(0, srv.stop())
    local got = {}
    for _, m in ipairs(answers) do
      assert.are.equal("ada", m.user)
      got[#got + 1] = m.n
    end
    assert.are.equal(20, #got)
    table.sort(got)
    for i = 1, 20 do assert.are.equal(2 * i, got[i]) end
  end)

  it("answers a WebSocket's messages in their order when some fail on a worker", function()
    -- Each message is answered when its transaction completes (with
    -- sync_response's reply, or the error): transactions must complete in
    -- input order however the workers finished (they came back 2,1,4,3).
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input: {http_server: {ws_path: /ws}}
pipeline:
  threads: 2
  processors:
    - lua: |
        if this.n % 3 == 0 then error("bad " .. this.n) end
        return {n = this.n}
output:
  reject_errored: {sync_response: {}}
]])
    local answers = ws_answers("ws://127.0.0.1:" .. srv.port .. "/ws", 60, 60)
    assert.are.equal(0, srv.stop())
    local got = {}
    for _, m in ipairs(answers) do got[#got + 1] = m.n or tonumber(m.error:match("bad (%d+)")) end
    assert.are.equal(60, #got)
    for i = 1, 60 do assert.are.equal(i, got[i], "answers: " .. table.concat(got, ",")) end
  end)

  it("stops a runaway script on a worker at lua.max_time (the guard watches the worker's thread)", function()
    -- straight-line code: no loop, no call, so only the watchdog's signal to
    -- the thread running the VM stops it
    local out = run([[
lua: {max_steps: 1000000000000, max_time: 300ms}
input:
  generate: {count: 4, interval: 0, batch_size: 1, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - lua: |
        if this.n == 2 then
          local f = assert(load(("x = ('x'):rep(1e7):upper() "):rep(10000)))
          f()
        end
    - lua: |
        if errored() then return {n = this.n, failed = error_message()} end
output:
  stdout: {}
]], {timeout = 60})
    assert.are.equal(4, #out)
    for i = 1, 4 do assert.are.equal(i, out[i].n) end
    assert.matches("time budget exceeded", out[2].failed)
    assert.is_nil(out[1].failed)
  end)

  it("runs a big batch whole on one worker, and each worker's Lua state is its own", function()
    local out = run([[
input:
  generate: {count: 20000, interval: 0, batch_size: 5000, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - lua: |
        seen = seen or {}
        seen[#seen + 1] = this.n
        this.mine = #seen
output:
  stdout: {}
]])
    assert.are.equal(20000, #out)
    local per = 0
    for i, m in ipairs(out) do
      assert.are.equal(i, m.n)
      if m.mine == 5000 then per = per + 1 end
    end
    assert.is_true(per >= 2, "both VMs counted their own batches")
  end)

  it("lets scripts on every worker call http.request, each worker on its own loop's client", function()
    local up = u.python()
    local ok, err = pcall(function()
      local out = run(string.format([[
input:
  generate: {count: 300, interval: 0, batch_size: 10, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - lua:
        max_concurrency: 8
        code: |
          vm_id = vm_id or uuid_v4()
          local r, err = http.get("%s/delay?ms=" .. (5 + (300 - this.n) %% 7 * 5) .. "&n=" .. this.n)
          assert(r, err)
          this.got = tonumber(json.decode(r.body).n)
          this.vm = vm_id
output:
  stdout: {}
]], up.url))
      assert.are.equal(300, #out)
      for i = 1, 300 do
        assert.are.equal(i, out[i].n)
        assert.are.equal(i, out[i].got)
      end
      assert.are.equal(2, vms(out))
      local st = up.stats()
      assert.is_true(st.max_inflight >= 2, "calls did not overlap")
    end)
    up.stop()
    if not ok then error(err, 0) end
  end)

  -- A tracer that a reload starts finds pooled chains running: the replaced
  -- instance of a stream drains on its pool workers, whose processors now
  -- trace and hand spans to the exporter from their threads. The message it
  -- holds goes through each script once: the upstream sees one /gate.
  it("traces on the workers of a pooled chain that a reload's tracer finds running", function()
    local up, rcv = u.python(), otlp.receiver()
    -- by path: /stats counts itself in "requests", which was >= 1 before the
    -- message came, and a reload then could come first (the message went
    -- through the new instance: the input's and both scripts' spans)
    local function gates() return up.stats().paths["/gate"] or 0 end
    local TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    local gate = h.tmpdir() .. "/open"
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
streams:
  a:
    input: {http_server: {path: /in, timeout: 120s}}
    pipeline:
      threads: 2
      processors:
        - lua: 'http.request{url = "%s/gate?file=%s", timeout = "120s"}'
        - lua: 'this.after = true'
    output: {sync_response: {}}
]], up.url, gate))
    local ok, err = pcall(function()
      os.execute(string.format("curl -s -m 120 -H 'traceparent: 00-%s-%s-01' -d '{\"n\":1}' %s/in > %s/answer.txt &",
        TRACE, PARENT, srv.url, srv.dir))
      assert.truthy(h.wait_for(function() return gates() >= 1 end, 30), "the message never reached the gate")
      -- the reload gives stream a a tracer: a new instance (pooled too) takes
      -- over, the old one still holds the message on a worker
      local conf = h.read(srv.dir .. "/config.yaml")
      h.write(srv.dir .. "/config.yaml", (conf:gsub("  a:\n", "  a:\n    tracer: {otlp: {endpoint: \"" .. rcv.endpoint ..
        "\", flush_interval: 50ms}}\n", 1)))
      local _, reply = h.sh("curl -s -m 60 -X POST " .. srv.url .. "/admin/reload")
      assert.are.same({"a"}, h.json.decode(reply).changed, reply)
      h.write(gate, "")
      assert.truthy(h.wait_for(function() return (h.read(srv.dir .. "/answer.txt") or ""):find("after") end, 60),
        "no answer: " .. srv.stderr())
      assert.truthy(otlp.wait_for_span(rcv, "lua"), "no processor span")
    end)
    local read, spans = pcall(rcv.spans)
    local got_gates, gate_requests = pcall(gates)
    up.stop()
    rcv.stop()
    local log = srv.stderr()
    h.stop_after(srv, ok, err)
    assert(read, spans)
    assert(got_gates, gate_requests)
    assert.are.equal(1, gate_requests, "the first script ran more than once; sluice's log:\n" .. log)
    -- only the second script's span: the message had passed the input and
    -- the first script before the tracer was on
    local seen = {}
    for _, sp in ipairs(spans) do
      assert.are.equal(TRACE, sp.traceId)
      if sp.name ~= "sync_response" then
        seen[#seen + 1] = sp.name .. " " .. tostring(sp.parentSpanId) .. " " .. sp.attrs["sluice.path"]
      end
    end
    assert.are.same({"lua " .. PARENT .. " root.pipeline.processors.1"}, seen,
      "sluice's log:\n" .. log)
  end)

  -- drop writes a pooled batch on its worker: the group's offsets still
  -- advance once for every message, and only once every message is out
  it("commits a store group's offsets for every message written by drop on the workers, each once", function()
    local N = 2000
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
input: {stream: {name: work, group: g}}
pipeline:
  threads: 2
  processors:
    - lua: 'this.seen = true'
output: {drop: {}}
]])
    local prom = require("spec.prom")
    local ok, err = pcall(function()
      for k = 0, N / 500 - 1 do
        local ev = {}
        for i = k * 500 + 1, k * 500 + 500 do ev[#ev + 1] = {data = {n = i}} end
        local f = h.write(h.tmpname(), json.encode({events = ev}))
        local code = h.sh("curl -s -f -m 30 -o /dev/null --data-binary @" .. f .. " " .. srv.url .. "/stream/work/publish")
        os.remove(f)
        assert.are.equal(0, code)
      end
      local groups
      assert.truthy(h.wait_for(function()
        local _, out = h.sh("curl -s -m 10 " .. srv.url .. "/stream/work/groups")
        groups = json.decode(out)
        local sum, lag = 0, 0
        for _, g in ipairs(groups.groups or {}) do
          if g.group == "g" then
            for _, c in ipairs(g.committed) do sum = sum + c end
            for _, l in ipairs(g.lag) do lag = lag + l end
          end
        end
        return sum == N and lag == 0
      end, 120), "offsets not committed: " .. json.encode(groups or {}))
      local samples = prom.samples(srv.url .. "/metrics")
      assert.are.equal(N, prom.value(samples, "processor_received_total", {stream = "main", label = "lua"}))
      assert.are.equal(N, prom.value(samples, "output_sent_total", {stream = "main"}))
    end)
    h.stop_after(srv, ok, err)
  end)

  -- Acks stay on the stream's loop: a kill -9 loses nothing (what was not
  -- acked comes again) and a clean stop re-delivers nothing.
  it("acks each batch once: kill -9 loses nothing, a clean stop re-delivers nothing", function()
    local N = 3000
    -- spin: the iterations of a message's loop
    local function yaml(spin)
      return string.format([[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
lua: {max_steps: 2000000000}
input: {stream: {name: work, group: g}}
pipeline:
  threads: 2
  processors:
    - lua: |
        local x = 0
        for k = 1, %s do x = x + k %% 3 end
output: {file: {path: out.ndjson}}
]], spin)
    end
    -- about half a millisecond or more a message, so that the kill below
    -- (once 300 of the 3,000 are out) comes mid-flow on a quiet machine too;
    -- the runs after it need no such pace (on a loaded machine the 2,700
    -- left took minutes at it)
    local slow, fast = yaml("math.random(500000, 1500000)"), yaml("0")
    local srv = h.serve(slow)
    local dir = srv.dir
    local function publish(from, to)
      local ev = {}
      for i = from, to do ev[#ev + 1] = {data = {n = i}} end
      local f = h.write(h.tmpname(), json.encode({events = ev}))
      local code = h.sh("curl -s -f -m 30 -o /dev/null --data-binary @" .. f .. " " .. srv.url .. "/stream/work/publish")
      os.remove(f)
      assert.are.equal(0, code)
    end
    local function ns()
      local t = {}
      for l in (h.read(dir .. "/out.ndjson") or ""):gmatch("([^\n]+)\n") do t[#t + 1] = json.decode(l).n end
      return t
    end
    for k = 0, N / 500 - 1 do publish(k * 500 + 1, k * 500 + 500) end
    assert.truthy(h.wait_for(function() return #ns() >= 300 end, 60), "no output")
    srv.kill()
    local at_kill = #ns()
    assert.is_true(at_kill < N, "the kill came after everything was written")
    srv = h.serve(fast, {dir = dir})
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function()
        local seen, n = {}, 0
        for _, v in ipairs(ns()) do if not seen[v] then seen[v], n = true, n + 1 end end
        return n == N
      end, 120), "not every message came through after the restart")
    end)
    h.stop_after(srv, ok, err, true)
    -- every message, each run in order: the second starts again at the
    -- first batch not acked, at most where the first run stopped writing
    local got = ns()
    local restarts = 0
    for i = 2, #got do
      if got[i] ~= got[i - 1] + 1 then
        restarts = restarts + 1
        assert.is_true(got[i] <= got[i - 1], "a gap after " .. got[i - 1])
      end
    end
    assert.is_true(restarts <= 1, restarts .. " restarts")
    -- a clean stop acked everything: a restart writes only what is new
    local before = #got
    srv = h.serve(fast, {dir = dir})
    ok, err = pcall(function()
      publish(N + 1, N + 1)
      assert.truthy(h.wait_for(function() return #ns() > before end, 60), "the new message did not come")
      local after = ns()
      assert.are.equal(before + 1, #after)
      assert.are.equal(N + 1, after[#after])
    end)
    h.stop_after(srv, ok, err)
  end)

  it("hot-reloads a module on every worker mid-flow: each message once, by either version", function()
    local N = 4000
    local mod = [[
local M = {}
function M.process(msg)
  local x = 0
  for k = 1, 2000 do x = x + k %% 3 end
  msg:set_content(msg:content() .. " %s")
  return msg
end
return M
]]
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input: {generate: {count: ]] .. N .. [[, interval: 1ms, batch_size: 2, mapping: 'return tostring(i)'}}
pipeline:
  threads: 2
  processors:
    - lua: {file: mod.lua}
output: {file: {path: out.txt}}
]], {before = function(dir) h.write(dir .. "/mod.lua", string.format(mod, "v1")) end})
    local dir = srv.dir
    local function lines() return h.lines(h.read(dir .. "/out.txt") or "") end
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return #lines() >= 100 end, 60), "no output")
      h.write(dir .. "/mod.lua.tmp", string.format(mod, "v2"))
      assert(os.rename(dir .. "/mod.lua.tmp", dir .. "/mod.lua"))
      local first_v2 = h.wait_for(function()
        local l = lines()
        for i = #l, 1, -1 do
          if l[i]:find(" v2$") then return #l end
        end
      end, 60)
      assert.truthy(first_v2, "v2 never ran")
      assert.is_true(first_v2 < N, "the reload came after the last message")
      assert.truthy(h.wait_for(function() return #lines() >= N end, 120), "not every message came")
    end)
    local got = lines()
    h.stop_after(srv, ok, err)
    assert.are.equal(N, #got)
    local v = {v1 = 0, v2 = 0}
    for i, l in ipairs(got) do
      local n, tag = l:match("^(%d+) (v%d)$")
      assert.are.equal(i, tonumber(n), "line " .. i .. ": " .. l)
      v[tag] = v[tag] + 1
    end
    assert.is_true(v.v1 > 0 and v.v2 > 0, "v1 " .. v.v1 .. ", v2 " .. v.v2)
  end)

  it("stops the input when the output does not take: queues stay bounded", function()
    -- every write waits a minute for its answer; 100 KB messages at full
    -- speed would be gigabytes within seconds
    local up = u.python()
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
max_in_flight: 8
input: {generate: {interval: 0, batch_size: 10, mapping: 'return string.rep("x", 100000)'}}
pipeline:
  threads: 2
  processors:
    - lua: 'this_len = #content()'
output: {http_client: {url: "%s/delay?ms=60000", timeout: 120s}}
]], up.url))
    local prom = require("spec.prom")
    local ok, err = pcall(function()
      local received
      -- the writes wait at the upstream, and the input stops: its count stays put across two scrapes
      assert.truthy(h.wait_for(function()
        local r = prom.value(prom.samples(srv.url .. "/metrics"), "input_received_total", {stream = "main"}) or 0
        local same = r > 0 and r == received
        received = r
        return same
      end, 60), "the input kept going")
      assert.is_true(received <= 8 * 10, received .. " messages taken in")
      assert.truthy(h.wait_for(function() return up.stats().inflight >= 1 end, 30), "no write reached the upstream")
      local pid = h.read(srv.dir .. "/pid.txt"):match("%d+")
      local rss = tonumber(h.read("/proc/" .. pid .. "/status"):match("VmRSS:%s*(%d+)"))
      assert.is_true(rss < 200 * 1024, "RSS " .. rss .. " kB")
    end)
    up.stop()   -- the writes fail now, so the stream can stop
    h.stop_after(srv, ok, err)
  end)
end)
