-- http.workers (http/http_worker.c): the shared server's connections live on
-- N threads, each with its own SO_REUSEPORT listener; requests cross to the
-- engine's loop and answers come back to the connection's worker. The
-- per-worker counter sluice_http_worker_requests_total shows that both
-- workers took requests; real clients (curl, wrk, Python sockets).
local h = require("spec.helpers")
local json = h.json

local function curl(args)
  local _, out = h.sh("curl -s -m 10 " .. args)
  return out
end

local function metrics(srv) return curl("-k " .. srv.url .. "/metrics") end

-- 50 SSE and then 50 WebSocket clients, 4 at a time, each reset mid-stream
-- (spec/tools/resetters.py): every one read before it reset.
local function reset_storms(srv)
  for _, kind in ipairs({"sse", "ws"}) do
    local code, out, stderr = h.sh(string.format("timeout 120 python3 spec/tools/resetters.py %d /%s 50 4 %s",
      srv.port, kind, kind == "ws" and "--ws" or ""))
    assert.are.equal(0, code, out .. (stderr or ""))
    assert.are.equal(200, json.decode(out).read)
  end
end

-- A per-worker series of /metrics by worker id, and its sum.
local function by_worker(srv, series)
  local t, sum = {}, 0
  for id, n in metrics(srv):gmatch(series .. '{worker="(%d+)"} (%d+)') do
    t[tonumber(id)] = tonumber(n)
    sum = sum + tonumber(n)
  end
  return t, sum
end

-- Requests each worker handed to the engine so far, and their sum without
-- the scrape that read them (it crossed too).
local function per_worker(srv)
  local t, sum = by_worker(srv, "sluice_http_worker_requests_total")
  return t, sum - 1
end

-- A Python client per line of `script` ran against the port, printing one JSON line.
local function py(script, port)
  local path = h.tmpname()
  h.write(path, script)
  local code, out, err = h.sh(string.format("timeout 120 python3 %s %d", path, port))
  os.remove(path)
  assert.are.equal(0, code, out .. (err or ""))
  return json.decode(out)
end

-- N connections, each POSTing its own body K times (keep-alive), all at
-- once: every answer must be its own request's (sync_response), whichever
-- worker holds the connection.
local CLIENTS = [[
import http.client, json, sys, threading
port = int(sys.argv[1])
bad, done = [], [0]
lock = threading.Lock()
def client(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for k in range(20):
        body = json.dumps({"c": i, "k": k})
        c.request("POST", "/echo", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        got = r.read()
        with lock:
            if r.status != 200 or json.loads(got) != {"c": i, "k": k, "seen": True}:
                bad.append([i, k, r.status, got.decode(errors="replace")])
            done[0] += 1
ts = [threading.Thread(target=client, args=(i,)) for i in range(32)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps({"done": done[0], "bad": bad[:5]}))
]]

-- Serves yaml after an http section with two workers, runs body(srv), stops.
local function with_server(yaml, body, opts)
  local srv = h.serve("http:\n  address: 127.0.0.1:$PORT\n  workers: 2\n" .. yaml, opts)
  local ok, err = pcall(body, srv)
  h.stop_after(srv, ok, err)
end

describe("http.workers", function()
  it("spreads connections over both workers and answers each request on its own connection (sync_response)", function()
    with_server([[
input:
  http_server: {path: /echo}
pipeline:
  processors:
    - lua: 'this.seen = true'
output:
  sync_response: {}
]], function(srv)
    assert.matches("%(2 workers%)", srv.stderr())
    local r = py(CLIENTS, srv.port)
    assert.are.same({}, r.bad)
    assert.are.equal(32 * 20, r.done)
    local w, sum = per_worker(srv)
    -- 32 connections: the kernel's hash put some on each listener.
    assert.is_true((w[0] or 0) > 0 and (w[1] or 0) > 0, "requests by worker: " .. json.encode(w))
    assert.are.equal(32 * 20, sum)
    assert.matches('sluice_http_requests_total{route="/echo",status="200"} 640', metrics(srv), 1, true)
    end)
  end)

  it("answers pings on the workers themselves, counted with the others, and refuses bad requests there", function()
    with_server([[
  max_header_bytes: 1KiB
input:
  http_server: {path: /in}
output:
  drop: {}
]], function(srv)
    for _ = 1, 10 do assert.are.equal("pong", curl(srv.url .. "/ping")) end
    -- Pings never reach the engine: no worker handed any over.
    assert.are.equal(0, select(2, per_worker(srv)))
    assert.matches('sluice_http_requests_total{route="/ping",status="200"} 1%d', metrics(srv))
    local out = curl("-w ' %{http_code}' -H 'X-Big: " .. string.rep("a", 2000) .. "' " .. srv.url .. "/in")
    assert.matches('"status":431} 431$', out)
    out = curl("-w ' %{http_code}' -X POST --data-binary @- " .. srv.url .. "/in < /dev/null")
    assert.matches(" 200$", out)
    end)
  end)

  it("serves request-scoped streams and their SSE clients across workers", function()
    with_server([[
streams:
  out:
    input:
      generate: {interval: 20ms, mapping: 'return {user = "${ctx.query.user}", n = i}'}
    output:
      http_server: {sse_path: /sse}
    request_scope: {idle_timeout: 2s, max_instances: 8}
]], function(srv)
    local files = {}
    for i = 1, 8 do
      files[i] = srv.dir .. "/sse" .. i .. ".txt"
      -- Bounded: stopping sluice ends them, the time limit otherwise.
      os.execute(string.format("curl -sN -m 60 -H 'Accept: text/event-stream' '%s/sse?user=u%d' > %s 2>&1 &",
        srv.url, (i - 1) % 4, files[i]))
    end
    for i = 1, 8 do
      local want = string.format('"user":"u%d"', (i - 1) % 4)
      assert.truthy(h.wait_for(function()
        local n = 0
        for l in (h.read(files[i]) or ""):gmatch("data: ([^\n]*)") do
          if not l:find(want, 1, true) then error("client " .. i .. " got another user's event: " .. l) end
          n = n + 1
        end
        return n >= 5
      end, 60), "client " .. i .. " got no events")
    end
    assert.are.equal(8, select(2, per_worker(srv)))
    assert.matches('sluice_http_streams{kind="sse"} 8', metrics(srv), 1, true)
    end)
  end)

  it("answers 300 POSTs pipelined on one connection in order, each crossing to the engine and back, then a half-close", function()
    with_server([[
input:
  http_server: {path: /echo}
output:
  sync_response: {}
]], function(srv)
    local r = py([=[
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
reqs = b"".join(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(str(k)), str(k).encode())
              for k in range(300))
s.sendall(reqs)
s.shutdown(socket.SHUT_WR)
data = b""
while True:
  b = s.recv(65536)
  if not b: break
  data += b
bodies = []
while data:
  head, _, rest = data.partition(b"\r\n\r\n")
  n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
  bodies.append(rest[:n].decode())
  data = rest[n:]
print(json.dumps({"bodies": bodies}))
]=], srv.port)
    local want = {}
    for k = 0, 299 do want[#want + 1] = tostring(k) end
    assert.are.same(want, r.bodies)
    end)
  end)

  it("refuses no request while the stream behind the path is reloaded under wrk on both workers", function()
    local function config(tag)
      return ([[
http:
  address: 127.0.0.1:$PORT
  workers: 2
streams:
  web:
    input:
      http_server: {path: /in}
    pipeline:
      processors:
        - lua: 'this.v = "TAG"'
    output:
      sync_response: {}
]]):gsub("TAG", tag)
    end
    local srv = h.serve((config("v0")))
    local ok, err = pcall(function()
      h.write(srv.dir .. "/post.lua", 'wrk.method = "POST"\nwrk.body = "{}"\n')
      os.execute(string.format("cd %s && (timeout -k 2 60 wrk -t2 -c16 -d6s -s post.lua %s/in > wrk.txt 2>&1; echo done > wrk.done) &",
        srv.dir, srv.url))
      -- Load is on both workers before the first reload.
      assert.truthy(h.wait_for(function()
        local w = per_worker(srv)
        return (w[0] or 0) > 50 and (w[1] or 0) > 50
      end, 30), "wrk never reached both workers")
      for i = 1, 4 do
        h.write(srv.dir .. "/config.yaml", (config("v" .. i):gsub("%$PORT", tostring(srv.port))))
        -- a reload builds the stream anew: under ThreadSanitizer with wrk on both
        -- workers it took longer than curl's usual 10 s
        local out = curl("-m 60 -w '\\n%{http_code}' -X POST " .. srv.url .. "/admin/reload")
        assert.matches('"changed":%["web"%]', out)
        assert.matches("\n200$", out)
      end
      -- The reloads happened while wrk ran.
      assert.is_nil(h.read(srv.dir .. "/wrk.done"), "wrk ended before the last reload: nothing was in flight")
      assert.truthy(h.wait_for(function() return h.read(srv.dir .. "/wrk.done") end, 60))
      local text = h.read(srv.dir .. "/wrk.txt")
      assert.truthy(tonumber(text:match("(%d+) requests in")) > 0, text)
      assert.is_nil(text:match("Non%-2xx or 3xx responses"), text)
      assert.is_nil(text:match("Socket errors"), text)
      assert.matches('"v":"v4"', curl("-X POST -d '{}' " .. srv.url .. "/in"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("survives clients that reset in the middle of a large answer on a worker, and of a broadcast after moving", function()
    with_server([[
  static: [{path: /files, dir: ./files}]
input:
  generate: {interval: 1ms, mapping: 'return string.rep("z", 2000)'}
output:
  http_server: {path: "", sse_path: /sse, ws_path: /ws, replay_bytes: 0}
]], function(srv)
    -- 40 clients read 64 KiB of an 8 MiB file, then reset (RST) while the worker writes.
    local r = py([=[
import json, socket, struct, sys
port, read = int(sys.argv[1]), 0
for i in range(40):
  s = socket.create_connection(("127.0.0.1", port), timeout=30)
  s.sendall(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
  got = 0
  while got < 65536:
      b = s.recv(65536)
      if not b: break
      got += len(b)
  read += got >= 65536
  s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
  s.close()
print(json.dumps({"read": read}))
]=], srv.port)
    assert.are.equal(40, r.read)
    reset_storms(srv)
    assert.are.equal("pong", curl(srv.url .. "/ping"))
    assert.are.equal(0, (h.sh("curl -sf -m 10 -o /dev/null " .. srv.url .. "/files/big.bin")))
    end, {before = function(dir)
      os.execute("mkdir -p " .. dir .. "/files")
      h.write(dir .. "/files/big.bin", string.rep("x", 8 * 1024 * 1024))
    end})
  end)
end)

-- Broadcast subscribers stay on the worker that accepted them (http_fan.c):
-- each broadcast event crosses to each worker once and the workers write
-- their own clients. sluice_http_worker_streams{worker} shows where they are.
describe("http.workers fan-out", function()
  local function worker_streams(srv) return by_worker(srv, "sluice_http_worker_streams") end

  -- spec/node/fanwork.js in the background, its lines to a file: ready()
  -- once every client has had an event; finish() once every one has had n,
  -- the clients' report of every event up to then.
  local function clients(srv, k, n, mode)
    local file, hold = srv.dir .. "/fanwork.txt", srv.dir .. "/release"
    os.execute(string.format("cd spec/node && timeout -k 2 100 node fanwork.js %s %d %d %s %s > %s 2>&1 &",
      srv.url, k, n, hold, mode or "", file))
    local function await(what)
      assert.truthy(h.wait_for(function() return (h.read(file) or ""):find(what, 1, true) end, 90),
        "clients: no " .. what .. " in " .. (h.read(file) or ""))
    end
    return {
      ready = function() await('"ready"') end,
      finish = function()
        if mode ~= "--until-closed" then
          await('"reached"')
          h.write(hold, "")
        end
        await('"final"')
        return json.decode((h.read(file) or ""):match('\n(%b{})\n?$'))
      end,
    }
  end

  -- k SSE and k WebSocket clients, spread over both workers, each get n events in order.
  local function every_event_on_both(srv, k, n)
    local c = clients(srv, k, n)
    c.ready()
    local w, sum = worker_streams(srv)
    assert.are.equal(2 * k, sum)
    assert.is_true(w[0] > 0 and w[1] > 0, "subscribers on one worker only: " .. json.encode(w))
    local r = c.finish()
    assert.are.same({}, r.bad)
    assert.are.equal(2 * k, r.opened)
  end

  local TICKS = [[
input:
  generate: {interval: 5ms, batch_size: 4, mapping: 'meta.event = "tick"; return tostring(i) .. "\nsecond line"'}
output:
  http_server: {path: "", sse_path: /sse, ws_path: /ws, replay_bytes: 0}
]]

  it("keeps SSE and WebSocket subscribers on both workers, each getting every event in order", function()
    with_server(TICKS, function(srv) every_event_on_both(srv, 10, 400) end)
  end)

  it("writes to SSE and WebSocket subscribers over TLS on both workers, every event in order", function()
    local d = h.tmpdir()
    h.self_signed(d)
    with_server("  tls: {cert_file: " .. d .. "/cert.pem, key_file: " .. d .. "/key.pem}\n" .. TICKS, function(srv)
      srv.url = "https://127.0.0.1:" .. srv.port
      every_event_on_both(srv, 10, 400)
    end, {scheme = "https", cacert = d .. "/cert.pem"})
    h.rmdir(d)
  end)

  it("drops a slow SSE and a slow WebSocket client, counted, while the others get every event", function()
    with_server([[
input:
  generate: {interval: 10ms, batch_size: 8, mapping: 'meta.event = "tick"; return tostring(i) .. "\nsecond line\n" .. string.rep("x", 4000)'}
output:
  http_server: {path: "", sse_path: /sse, ws_path: /ws, replay_bytes: 0, max_buffer: 64KiB}
]], function(srv)
      local c = clients(srv, 4, 3000)
      c.ready()
      local READER = "timeout 120 python3 spec/tools/slow_reader.py " .. srv.port
      local DROPPED = "'sluice_http_slow_clients_dropped_total{stream=\"main\",kind=\"%s\"} 1'"
      local _, sse = h.sh(READER .. " /sse --await-metric " .. DROPPED:format("sse"))
      local _, ws = h.sh(READER .. " /ws --ws --await-metric " .. DROPPED:format("ws"))
      sse, ws = json.decode(sse), json.decode(ws)
      assert.is_true(sse.metric, json.encode(sse))
      assert.are.equal("eof", sse["end"])
      assert.is_true(ws.metric, json.encode(ws))
      assert.are.equal(1008, ws.close)
      -- The slow ones are gone from their workers; the others stay.
      assert.truthy(h.wait_for(function() return select(2, worker_streams(srv)) == 8 end, 30),
        "worker streams: " .. json.encode((worker_streams(srv))))
      local r = c.finish()
      assert.are.same({}, r.bad)
      assert.are.equal(8, r.opened)
    end)
  end)

  it("serves the clients that stay through storms of clients resetting mid-broadcast on both workers", function()
    with_server(TICKS, function(srv)
      local c = clients(srv, 5, 1500)
      c.ready()
      reset_storms(srv)
      -- The reset ones are forgotten on both sides: 10 streams are left.
      assert.truthy(h.wait_for(function() return select(2, worker_streams(srv)) == 10 end, 30),
        "worker streams: " .. json.encode((worker_streams(srv))))
      local r = c.finish()
      assert.are.same({}, r.bad)
      assert.are.equal(10, r.opened)
      assert.are.equal("pong", curl(srv.url .. "/ping"))
    end)
  end)

  it("ends the subscribers on both workers after an end event, and sends them nothing after it", function()
    with_server([[
streams:
  ev:
    input: {http_server: {path: /in}}
    output:
      http_server: {path: "", sse_path: /sse, ws_path: /ws, type_field: this.kind, end_events: [end]}
]], function(srv)
      for i = 1, 10 do
        os.execute(string.format("(curl -sN -m 60 %s/sse > %s/sse%d.txt; echo $? > %s/sse%d.rc) &",
          srv.url, srv.dir, i, srv.dir, i))
        os.execute(string.format("/usr/bin/python3 spec/tools/ws_client.py ws://127.0.0.1:%d/ws --wait 60 > %s/ws%d.txt &",
          srv.port, srv.dir, i))
      end
      local w
      assert.truthy(h.wait_for(function()
        local sum
        w, sum = worker_streams(srv)
        return sum == 20
      end, 60), "subscribers: " .. json.encode(w))
      assert.is_true(w[0] > 0 and w[1] > 0, "subscribers on one worker only: " .. json.encode(w))
      for _, k in ipairs({"a", "end", "a"}) do
        assert.matches("200$", curl("-w '%{http_code}' -d '{\"kind\":\"" .. k .. "\"}' " .. srv.url .. "/in"))
      end
      for i = 1, 10 do
        -- The response ended after the end event (curl exits 0, not 28 for its time limit).
        assert.are.equal("0", h.wait_for(function() return (h.read(srv.dir .. "/sse" .. i .. ".rc") or ""):match("%d+") end, 60))
        local kinds = {}
        for d in h.read(srv.dir .. "/sse" .. i .. ".txt"):gmatch("data: ([^\n]+)") do kinds[#kinds + 1] = json.decode(d).kind end
        assert.are.same({"a", "end"}, kinds)
        local lines = h.wait_lines(srv.dir .. "/ws" .. i .. ".txt", 3, 60)
        kinds = {}
        for _, l in ipairs(lines) do
          local m = json.decode(l)
          kinds[#kinds + 1] = m.text and json.decode(m.text).kind or m.closed
        end
        assert.are.same({"a", "end", 1000}, kinds)
      end
      assert.truthy(h.wait_for(function() return select(2, worker_streams(srv)) == 0 end, 30))
    end)
  end)

  it("answers a subscriber's ping, sent with its upgrade request, and its close, from the engine's wslay through its worker", function()
    with_server([[
streams:
  ev:
    input: {http_server: {path: /in}}
    output:
      http_server: {path: "", ws_path: /ws}
]], function(srv)
      local UP = "GET /ws HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n" ..
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n"
      -- Eight connections: both workers hold some (SO_REUSEPORT); each is a stream that stays.
      for i = 1, 8 do
        local _, out = h.sh("python3 spec/tools/raw_http.py " .. srv.port .. " --pause 0.3 '" .. UP ..
          "\\x89\\x82\\x00\\x00\\x00\\x00ok' '\\x88\\x82\\x00\\x00\\x00\\x00\\x03\\xe8'")
        assert.matches("^HTTP/1%.1 101 ", out, nil, "connection " .. i)
        assert.truthy(out:find("\x8a\x02ok\x88\x02\x03\xe8", 1, true), "connection " .. i .. ": " .. out)
      end
      assert.truthy(h.wait_for(function() return select(2, worker_streams(srv)) == 0 end, 30))
    end)
  end)

  it("closes the subscribers on both workers of an output a reload removes", function()
    local function config(with_main)
      return "streams:\n" .. (with_main and ("  main:\n" .. TICKS:gsub("\n(.)", "\n    %1"):gsub("^", "    ")) or "") .. [[
  other:
    input:
      http_server: {path: /in}
    output:
      drop: {}
]]
    end
    with_server(config(true), function(srv)
      local c = clients(srv, 10, 0, "--until-closed")
      c.ready()
      local w, sum = worker_streams(srv)
      assert.are.equal(20, sum)
      assert.is_true(w[0] > 0 and w[1] > 0, "subscribers on one worker only: " .. json.encode(w))
      h.write(srv.dir .. "/config.yaml", ("http:\n  address: 127.0.0.1:$PORT\n  workers: 2\n" .. config(false))
        :gsub("%$PORT", tostring(srv.port)))
      local out = curl("-m 60 -w '\\n%{http_code}' -X POST " .. srv.url .. "/admin/reload")
      assert.matches("\n200$", out)
      local r = c.finish()
      assert.are.same({}, r.bad)
      table.sort(r.closes, function(a, b) return tostring(a) < tostring(b) end)
      local want = {}
      for i = 1, 10 do want[i], want[10 + i] = 1001, "sse" end
      assert.are.same(want, r.closes)
      assert.truthy(h.wait_for(function() return select(2, worker_streams(srv)) == 0 end, 30))
      assert.matches('sluice_http_streams{kind="sse"} 0', metrics(srv), 1, true)
      assert.are.equal("pong", curl(srv.url .. "/ping"))
    end)
  end)
end)
