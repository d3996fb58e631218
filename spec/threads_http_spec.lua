-- http_server in front of pipeline.threads workers: requests are handed to
-- the pool and answered when they come back, so many more are open at once
-- than with one worker (where each runs to its answer before the next is
-- read). A request that finds the stream at max_in_flight waits for room
-- (up to the input's timeout) instead of being refused at once.
local h = require("spec.helpers")
local u = require("spec.upstream_helpers")

-- n POSTs to url over `conns` connections at once (curl --parallel); the
-- status codes, counted.
local function parallel_posts(dir, url, n, conns)
  local lines = {}
  for _ = 1, n do lines[#lines + 1] = 'url = "' .. url .. '"\nout = "/dev/null"' end
  h.write(dir .. "/urls.txt", table.concat(lines, "\n") .. "\n")
  local _, out = h.sh(string.format(
    "curl -s --parallel --parallel-immediate --parallel-max %d -m 60 -X POST -d '{\"a\":1}' -w '%%{http_code}\\n' -K %s/urls.txt",
    conns, dir))
  local codes = {}
  for c in out:gmatch("(%d+)\n") do codes[c] = (codes[c] or 0) + 1 end
  return codes
end

local function describe_codes(codes)
  local t = {}
  for c, k in pairs(codes) do t[#t + 1] = c .. ": " .. k end
  table.sort(t)
  return table.concat(t, ", ")
end

-- node spec/node/wsload.js: conns WebSocket connections to url, each
-- sending n messages at once; its JSON summary.
local function ws_load(url, conns, n)
  local json = require("cjson")
  local _, out, err = h.sh(string.format("cd spec/node && timeout -k 2 100 node wsload.js %s %d %d 90", url, conns, n))
  local last = h.lines(out)
  assert.truthy(#last > 0, "no summary from wsload.js: " .. (err or ""))
  return json.decode(last[#last])
end

-- The server-side sockets of port's established connections: their receive queues.
local function server_sockets(port)
  local _, ss = h.sh("ss -Htn state established '( sport = :" .. port .. " )'")
  local q = {}
  for line in ss:gmatch("[^\n]+") do q[#q + 1] = tonumber(line:match("^%s*(%d+)")) end
  return q
end

-- node spec/node/wsseq.js in the background (its lines to file); its pid.
local function ws_steps(url, file, ...)
  local args = {}
  for k, s in ipairs({...}) do args[k] = h.shell_quote(s) end
  local _, pid = h.sh(string.format("node spec/node/wsseq.js %s %s > %s 2>&1 & echo $!", url, table.concat(args, " "), file))
  return pid:match("%d+")
end

local function lines_of(file)
  local t = {}
  for _, l in ipairs(h.lines(h.read(file) or "")) do t[#t + 1] = h.json.decode(l) end
  return t
end

-- What the client got, in order: texts and its close code.
local function got(file)
  local t = {}
  for _, l in ipairs(lines_of(file)) do
    if l.text then t[#t + 1] = l.text elseif l.closed then t[#t + 1] = "closed " .. l.closed end
  end
  return t
end

-- Has file's client handed every message it sends to its socket, and has
-- sluice read every connection's bytes?
local function all_read(port, files, conns)
  for f, n in pairs(files) do
    local sent = 0
    for _, l in ipairs(lines_of(f)) do if l.sent then sent = sent + 1 end end
    if sent < n then return false end
  end
  local q = server_sockets(port)
  if #q ~= conns then return false end
  for _, v in ipairs(q) do if v ~= 0 then return false end end
  return true
end

-- A stream whose one transaction (max_in_flight 1) a message {"gate": PATH}
-- holds at the upstream until PATH exists; what passes is written to
-- got.ndjson and echoed to its client. WebSocket messages over 4 KiB close
-- their connection (1009).
local function gated(up, timeout)
  return string.format([[
http: {address: 127.0.0.1:$PORT}
max_in_flight: 1
input:
  http_server: {path: /in, ws_path: /ws, timeout: %s, ws_max_message_bytes: 4KiB}
pipeline:
  threads: 2
  processors:
    - lua: |
        if this.gate then http.request{url = "%s/gate?file=" .. this.gate, timeout = "120s"} end
        return this
output:
  broker:
    outputs:
      - file: {path: got.ndjson}
      - sync_response: {}
]], timeout, up.url)
end

-- Messages the stream took in.
local function received(srv)
  local prom = require("spec.prom")
  return prom.value(prom.samples(srv.url .. "/metrics"), "input_received_total", {stream = "main"})
end

-- Runs body(srv, gate) on a gated stream (input timeout `timeout`) whose one
-- transaction a message holds until the file gate exists; opens it after.
local function gated_run(timeout, body)
  local up = u.python()
  local dir = h.tmpdir()
  local gate = dir .. "/open"
  local srv = h.serve(gated(up, timeout))
  local ok, err = pcall(function()
    os.execute(string.format("curl -s -m 120 -d '{\"gate\":\"%s\"}' %s/in > /dev/null &", gate, srv.url))
    assert.truthy(h.wait_for(function() return received(srv) == 1 end, 30), "the gate message never came in")
    body(srv, gate)
  end)
  h.write(gate, "")   -- the stream drains, so that it can stop
  up.stop()
  h.stop_after(srv, ok, err)
  h.rmdir(dir)
end

local BUSY = '{"error":"busy: message not accepted","status":503}'

describe("http_server with pipeline.threads", function()
  it("answers 100 connections at once at the default max_in_flight: a request waits for room, none gets 503", function()
    -- each message takes a while on its worker, so that the 100 requests are
    -- all open together, beyond max_in_flight (64)
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server: {path: /in}
pipeline:
  threads: 2
  processors:
    - lua: |
        local x = 0
        for k = 1, 200000 do x = x + k % 3 end
        this.x = x
output:
  sync_response: {}
]])
    local ok, err = pcall(function()
      local codes = parallel_posts(srv.dir, srv.url .. "/in", 1000, 100)
      assert.are.equal(1000, codes["200"] or 0, describe_codes(codes))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("answers 503 with Retry-After to a request still waiting for room after timeout, leaves out one whose client left, and answers the waiting at a stop", function()
    -- the one transaction the stream admits waits at the upstream for a minute
    local up = u.python()
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
max_in_flight: 1
input:
  http_server: {path: /in, timeout: 2s}
pipeline:
  threads: 2
  processors:
    - lua: 'this.seen = true'
output:
  http_client: {url: "%s/delay?ms=60000", timeout: 120s}
]], up.url))
    local ok, err = pcall(function()
      local first = h.sh("curl -s -o /dev/null -m 30 -w '%{http_code}' -X POST -d '{\"n\":1}' " .. srv.url .. "/in")
      assert.truthy(h.wait_for(function() return up.stats().inflight == 1 end, 30), "the first message never reached the upstream")
      -- a client that gives up while its request waits for room
      h.sh("curl -s -o /dev/null -m 0.5 -X POST -d '{\"n\":2}' " .. srv.url .. "/in")
      local _, out = h.sh("curl -s -m 30 -D - -X POST -d '{\"n\":3}' " .. srv.url .. "/in")
      assert.matches("^HTTP/1.1 503", out)
      assert.matches("\r\nRetry%-After: 1\r\n", out)
      assert.matches('"error":"busy', out)
      -- one that waits when the stream stops
      os.execute(string.format("(curl -s -m 30 -o /dev/null -w '%%{http_code}' -X POST -d '{\"n\":4}' %s/in > %s/late.txt) &",
        srv.url, srv.dir))
      -- sluice read it (its socket's receive queue is empty) and did not answer
      assert.truthy(h.wait_for(function()
        local _, ss = h.sh("ss -Htn state established '( sport = :" .. srv.port .. " )'")
        return ss:match("^%s*0%s") and not ss:match("\n.")
      end, 30), "the last request never reached sluice")
      -- only the first message entered the stream
      assert.are.equal(1, received(srv))
      local pid = h.read(srv.dir .. "/pid.txt"):match("%d+")
      os.execute("kill -TERM " .. pid)
      assert.truthy(h.wait_for(function() return (h.read(srv.dir .. "/late.txt") or "") ~= "" end, 30))
      assert.are.equal("503", h.read(srv.dir .. "/late.txt"))
      up.stop()   -- its write fails now, so the stream can stop
      assert.are.equal(0, first)
    end)
    if not ok then up.stop() end
    local stopped, stop_err = pcall(srv.stop, false, {code = "any"})
    if not ok then error(err, 0) end
    if not stopped then error(stop_err, 0) end
  end)

  it("WebSocket: a message that finds the stream full waits for room with its connection's reads paused, none answered busy", function()
    -- 50 connections each send 20 messages at once, beyond max_in_flight 4
    -- many times over; each message takes a while on its pool worker
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
max_in_flight: 4
input:
  http_server: {ws_path: /ws, timeout: 60s}
pipeline:
  threads: 2
  processors:
    - lua: |
        local x = 0
        for k = 1, 20000 do x = x + k % 3 end
        return {c = this.c, i = this.i}
output:
  sync_response: {}
]])
    local ok, err = pcall(function()
      local r = ws_load("ws://127.0.0.1:" .. srv.port .. "/ws", 50, 20)
      local what = require("cjson").encode(r)
      assert.are.equal(50, r.opened, what)
      assert.are.equal(0, r.busy, what)
      assert.are.equal(1000, r.answers, what)
      assert.are.same({}, r.other, what)
      assert.are.equal(1000, received(srv))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("WebSocket: a waiting message is taken in arrival order, its connection's next one waits behind it, and one whose client left is dropped", function()
    gated_run("60s", function(srv, gate)
      local ws = "ws://127.0.0.1:" .. srv.port .. "/ws"
      local a, b = srv.dir .. "/a.txt", srv.dir .. "/b.txt"
      ws_steps(ws, a, 'send:{"n":1}', 'send:{"n":2}', "recv", "recv")
      local bpid = ws_steps(ws, b, 'send:{"n":99}', "recv")
      -- sluice has read all both sent (the gate's request, a and b): a's
      -- first and b's message wait for room, a's second behind a's first
      assert.truthy(h.wait_for(function() return all_read(srv.port, {[a] = 2, [b] = 1}, 3) end, 30),
        "the messages never reached sluice")
      os.execute("kill -TERM " .. bpid)
      assert.truthy(h.wait_for(function() return #server_sockets(srv.port) == 2 end, 30), "b's connection stayed")
      h.write(gate, "")
      assert.truthy(h.wait_for(function() return (lines_of(a)[#lines_of(a)] or {}).done end, 60), h.read(a))
      assert.are.same({'{"n":1}', '{"n":2}'}, got(a))
      -- b's message would have been taken before a's second: it is not in
      assert.are.equal(3, received(srv))
      assert.is_nil(h.read(srv.dir .. "/got.ndjson"):find("99", 1, true))
    end)
  end)

  it("WebSocket: a message still waiting after timeout is answered busy and its connection reads on, up to a frame it refuses", function()
    gated_run("1s", function(srv, gate)
      local ws = "ws://127.0.0.1:" .. srv.port .. "/ws"
      local d, f = srv.dir .. "/d.txt", srv.dir .. "/f.txt"
      -- busy after a second, then the frame behind it, too big, closes the connection
      ws_steps(ws, f, 'send:{"n":5}', "send:" .. string.rep("x", 5000), "recv", "recv")
      assert.truthy(h.wait_for(function() return #got(f) == 2 end, 60), h.read(f))
      assert.are.same({BUSY, "closed 1009"}, got(f))
      -- busy after a second, then the gate opens and the next message passes
      ws_steps(ws, d, 'send:{"n":1}', "recv", "touch:" .. gate, 'send:{"n":2}', "recv")
      assert.truthy(h.wait_for(function() return (lines_of(d)[#lines_of(d)] or {}).done end, 60), h.read(d))
      assert.are.same({BUSY, '{"n":2}'}, got(d))
    end)
  end)

  it("WebSocket: a reload answers a message still waiting for room busy and closes its connection 1001", function()
    gated_run("60s", function(srv)
      local e = srv.dir .. "/e.txt"
      ws_steps("ws://127.0.0.1:" .. srv.port .. "/ws", e, 'send:{"n":3}', "recv", "recv")
      assert.truthy(h.wait_for(function() return all_read(srv.port, {[e] = 1}, 2) end, 30), "the message never reached sluice")
      local conf = h.read(srv.dir .. "/config.yaml")
      h.write(srv.dir .. "/config.yaml", (conf:gsub("return this", "this.v = 2; return this")))
      local _, reply = h.sh("curl -s -m 60 -X POST " .. srv.url .. "/admin/reload")
      assert.truthy(h.wait_for(function() return #got(e) == 2 end, 30), reply .. " " .. h.read(e))
      assert.are.same({BUSY, "closed 1001"}, got(e))
    end)
  end)

  it("WebSocket: a client that sends far ahead while its messages wait is not read further, and gets every answer once there is room", function()
    gated_run("60s", function(srv, gate)
      -- 3,000 messages of ~1 KiB at once: 3 MiB, far beyond what sluice buffers
      os.execute(string.format("node spec/node/wsload.js ws://127.0.0.1:%d/ws 1 3000 90 1000 > %s/load.txt 2>&1 &",
        srv.port, srv.dir))
      -- the kernel holds what sluice does not read
      assert.truthy(h.wait_for(function()
        local q = server_sockets(srv.port)
        return #q == 2 and (q[1] > 0 or q[2] > 0)
      end, 30), "sluice read everything the client sent")
      h.write(gate, "")
      assert.truthy(h.wait_for(function() return (h.read(srv.dir .. "/load.txt") or ""):find("done") end, 90))
      local r = h.json.decode(h.lines(h.read(srv.dir .. "/load.txt"))[1])
      assert.are.equal(0, r.busy, h.json.encode(r))
      assert.are.equal(3000, r.answers, h.json.encode(r))
    end)
  end)
end)
