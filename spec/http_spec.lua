-- The HTTP server and the http_server input, through curl and raw sockets.
local h = require("spec.helpers")
local json = h.json

local RAW = "python3 spec/tools/raw_http.py "

local function curl(args)
  local code, out, err = h.sh("curl -s -m 5 " .. args)
  return out, code, err
end

-- "HTTP/1.1 200 OK" lines of a raw exchange, in order.
local function statuses(raw)
  local t = {}
  for s in raw:gmatch("HTTP/1%.1 (%d%d%d)") do t[#t + 1] = tonumber(s) end
  return t
end

describe("http server", function()
  local srv
  setup(function()
    srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  base_path: /api
  max_header_bytes: 1KiB
  max_body_bytes: 64
  read_timeout: 400ms
  idle_timeout: 600ms
input:
  http_server:
    path: /echo
    allowed_verbs: [POST]
pipeline:
  processors:
    - lua: 'return {body = content(), method = ctx.method}'
output:
  drop: {}
]])
  end)
  teardown(function()
    local err = srv.stderr()
    assert.are.equal(0, srv.stop(), err)
  end)

  it("answers /ping and /ready under base_path, with Date and X-Request-Id", function()
    local out = curl("-i " .. srv.url .. "/api/ping")
    assert.matches("^HTTP/1%.1 200 OK\r\n", out)
    assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", out)
    assert.matches("\r\nX%-Request%-Id: %x+%-", out)
    assert.matches("\r\n\r\npong$", out)
    assert.are.same({ready = true}, json.decode((curl(srv.url .. "/api/ready"))))
  end)

  it("answers 404 as JSON outside base_path and for unknown routes", function()
    local out, _, _ = curl("-w ' %{http_code}' " .. srv.url .. "/ping")
    assert.are.equal('{"error":"not found","status":404} 404', out)
    out = curl("-w ' %{http_code}' " .. srv.url .. "/api/nope")
    assert.matches(" 404$", out)
  end)

  it("answers HEAD without a body", function()
    local _, out = h.sh(RAW .. srv.port .. " 'HEAD /api/ping HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'")
    assert.matches("Content%-Length: 4\r\n", out)
    assert.matches("\r\n\r\n$", out)
  end)

  it("serves pipelined requests in order on one connection", function()
    local req = "GET /api/ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
    local _, out = h.sh(RAW .. srv.port .. " '" .. req .. "POST /api/echo HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\n\\r\\nhi" ..
      req .. "GET /api/ready HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'")
    assert.are.same({200, 200, 200, 200}, statuses(out))
    assert.matches('pong.*{"status":"ok"}.*pong.*{"ready":true}', out)
  end)

  it("reads chunked bodies and honours Expect: 100-continue", function()
    local _, out = h.sh(RAW .. srv.port .. " 'POST /api/echo HTTP/1.1\\r\\nHost: x\\r\\nTransfer-Encoding: chunked\\r\\n" ..
      "Expect: 100-continue\\r\\nConnection: close\\r\\n\\r\\n3\\r\\nabc\\r\\n2\\r\\nde\\r\\n0\\r\\n\\r\\n'")
    assert.are.same({100, 200}, statuses(out))
  end)

  it("refuses oversized headers (431), bodies (413) and garbage (400), then closes", function()
    local _, out = h.sh(RAW .. srv.port .. " 'GET /api/ping HTTP/1.1\\r\\nX-Big: " .. string.rep("x", 2000) .. "\\r\\n\\r\\n'")
    assert.matches("^HTTP/1%.1 431 .*Connection: close.*\"status\":431}$", out)
    local body = string.rep("y", 100)
    out = curl("-w ' %{http_code}' -X POST -d " .. body .. " " .. srv.url .. "/api/echo")
    assert.matches('{"error":"request body too large","status":413} 413', out)
    _, out = h.sh(RAW .. srv.port .. " 'NOT HTTP AT ALL\\r\\n\\r\\n'")
    assert.matches("^HTTP/1%.1 400 ", out)
    assert.matches('"status":400}$', out)
  end)

  it("times out slow requests with 408 and closes idle connections", function()
    local _, out = h.sh(RAW .. srv.port .. " --pause 1 'GET /api/ping HTTP/1.1\\r\\nHost: x\\r\\n' '\\r\\n'")
    assert.matches("^HTTP/1%.1 408 ", out)
    -- An idle keep-alive connection is closed by the server (no <silence> marker).
    _, out = h.sh(RAW .. srv.port .. " 'GET /api/ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'")
    assert.matches("pong$", out)
  end)

  it("answers 405 with Allow for other methods and OPTIONS with 204", function()
    local out = curl("-i -X DELETE " .. srv.url .. "/api/echo")
    assert.matches("^HTTP/1%.1 405 ", out)
    assert.matches("\r\nAllow: POST\r\n", out)
    out = curl("-i -X OPTIONS " .. srv.url .. "/api/echo")
    assert.matches("^HTTP/1%.1 204 ", out)
  end)

  it("refuses encoded slashes in paths", function()
    local out = curl("-w ' %{http_code}' " .. srv.url .. "/api/pi%2Fng")
    assert.matches(" 400$", out)
  end)
end)

describe("http_server input", function()
  it("turns requests into messages with context and answers after delivery", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server:
    path: /events/{topic}
    allowed_verbs: [post, PUT]
    metadata: {include_query: [user]}
pipeline:
  processors:
    - lua: |
        if this.fail then error("refused " .. ctx.params.topic) end
        return {
          body = this, topic = ctx.params.topic, user = ctx.query.user, sid = ctx.cookies.sid,
          agent = ctx.headers["user-agent"], rid = ctx.request_id, method = ctx.method,
          meta_method = meta.http_method, meta_user = meta.user, ip = meta.http_remote_ip,
        }
output:
  reject_errored:
    stdout: {}
]])
    local out = curl("-i -X PUT -A probe -H 'Cookie: a=1; sid=s1' -H 'X-Request-Id: req-1' -d '{\"n\":1}' '" ..
      srv.url .. "/events/orders?user=ada%20l'")
    assert.matches("^HTTP/1%.1 200 ", out)
    assert.matches('\r\n\r\n{"status":"ok"}$', out)
    assert.matches("\r\nX%-Request%-Id: req%-1\r\n", out)
    out = curl("-w ' %{http_code}' -X POST -d '{\"fail\":true}' " .. srv.url .. "/events/bad")
    assert.matches('{"error":"[^"]*config%.yaml:11: refused bad","status":502} 502', out)
    assert.are.equal(0, srv.stop(true))
    local line = json.decode(h.lines(h.read(srv.dir .. "/out.txt"))[1])
    h.rmdir(srv.dir)
    assert.are.same({
      body = {n = 1}, topic = "orders", user = "ada l", sid = "s1", agent = "probe", rid = "req-1", method = "PUT",
      meta_method = "PUT", meta_user = "ada l", ip = "127.0.0.1",
    }, line)
  end)

  it("answers 408 when delivery takes longer than timeout", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server: {path: /slow, timeout: 200ms}
pipeline:
  processors:
    - rate_limit: {count: 1, interval: 2s}
output:
  drop: {}
]])
    curl("-X POST -d a " .. srv.url .. "/slow")
    local out = curl("-w ' %{http_code}' -X POST -d b " .. srv.url .. "/slow")
    local err = srv.stderr()
    assert.are.equal(0, srv.stop(), err)
    assert.matches(" 408$", out)
  end)

  it("refuses two streams on one path, naming the other stream", function()
    local r = h.run_config([[
http:
  address: 127.0.0.1:1
streams:
  a:
    input: {http_server: {path: /same}}
    output: {drop: {}}
  b:
    input: {http_server: {path: /same}}
    output: {drop: {}}
]])
    assert.are.equal(1, r.code)
    assert.matches('path: /same is already served by stream "a"', r.stderr)
    r = h.run_config([[
streams:
  a:
    input: {http_server: {path: /same}}
    output: {drop: {}}
  b:
    input: {generate: {mapping: 'return 1'}}
    output: {http_server: {path: /same}}
  c:
    input: {http_server: {path: /ping}}
    output: {drop: {}}
]], {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(':7:%d+: path: /same is already served by stream "a"', r.stderr)
    assert.matches(':9:%d+: path: /ping is already served by sluice itself', r.stderr)
  end)
end)

describe("sync_response output", function()
  it("answers with the processed message, its status and listed headers, after every output acked", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server: {path: /enrich}
pipeline:
  processors:
    - lua: |
        this.user = ctx.query.user
        meta.http_status = "201"
        meta.x_trace = "t-1"
output:
  broker:
    pattern: fan_out
    outputs:
      - file: {path: events.ndjson}
      - sync_response:
          metadata_headers: [x_trace]
]])
    local out = curl("-i -X POST -d '{\"n\":1}' '" .. srv.url .. "/enrich?user=ada'")
    local events = h.read(srv.dir .. "/events.ndjson")
    assert.are.equal(0, srv.stop())
    assert.matches("^HTTP/1%.1 201 ", out)
    assert.matches("\r\nx_trace: t%-1\r\n", out)
    assert.matches("\r\nContent%-Type: application/json\r\n", out)
    assert.are.same({n = 1, user = "ada"}, json.decode(out:match("\r\n\r\n(.*)$")))
    -- The file got the event before the client got its answer.
    assert.are.same({n = 1, user = "ada"}, json.decode(events))
  end)

  it("gives 502 instead when another output of the fan_out fails", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server: {path: /x}
output:
  broker:
    outputs:
      - reject_errored: {drop: {}}
      - sync_response: {}
pipeline:
  processors:
    - lua: 'error("broken")'
]])
    local out = curl("-w ' %{http_code}' -X POST -d '{}' " .. srv.url .. "/x")
    assert.are.equal(0, srv.stop())
    assert.matches(" 502$", out)
  end)
end)

describe("http cors and static files", function()
  local srv, outside
  setup(function()
    outside = h.tmpdir()
    h.write(outside .. "/secret.txt", "secret")
    srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  cors:
    allowed_origins: [https://app.example]
  static:
    - path: /ui
      dir: public
input:
  http_server: {path: /in}
output:
  drop: {}
]], {before = function(dir)
      os.execute("mkdir -p " .. dir .. "/public/sub")
      h.write(dir .. "/public/index.html", "<h1>hi</h1>")
      h.write(dir .. "/public/app.js", "console.log(1)")
      h.write(dir .. "/public/sub/data.json", "{}")
      os.execute("ln -s " .. outside .. "/secret.txt " .. dir .. "/public/link.txt")
    end})
  end)
  teardown(function()
    assert.are.equal(0, srv.stop())
    h.rmdir(outside)
  end)

  it("adds CORS headers for allowed origins only", function()
    local out = curl("-i -X POST -H 'Origin: https://app.example' -d x " .. srv.url .. "/in")
    assert.matches("\r\nAccess%-Control%-Allow%-Origin: https://app%.example\r\n", out)
    assert.matches("\r\nVary: Origin\r\n", out)
    out = curl("-i -X POST -H 'Origin: https://evil.example' -d x " .. srv.url .. "/in")
    assert.is_nil(out:find("Access-Control-Allow-Origin", 1, true))
  end)

  it("answers preflights: 204 with the policy, 403 for other origins", function()
    local out = curl("-i -X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST' " .. srv.url .. "/in")
    assert.matches("^HTTP/1%.1 204 ", out)
    assert.matches("\r\nAccess%-Control%-Allow%-Methods: GET, HEAD, POST", out)
    assert.matches("\r\nAccess%-Control%-Max%-Age: 600\r\n", out)
    out = curl("-w ' %{http_code}' -X OPTIONS -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: POST' " .. srv.url .. "/in")
    assert.matches(" 403$", out)
  end)

  it("serves files with content types, index.html and ETag/304", function()
    local out = curl("-i " .. srv.url .. "/ui/app.js")
    assert.matches("^HTTP/1%.1 200 ", out)
    assert.matches("\r\nContent%-Type: text/javascript", out)
    local etag = out:match("\r\nETag: (\"[^\"]+\")\r\n")
    assert.is_not_nil(etag)
    out = curl("-w ' %{http_code}' -H 'If-None-Match: " .. etag .. "' " .. srv.url .. "/ui/app.js")
    assert.matches(" 304$", out)
    assert.matches("<h1>hi</h1>", (curl(srv.url .. "/ui/")))
    assert.matches("<h1>hi</h1>", (curl(srv.url .. "/ui")))
    assert.are.equal("{}", (curl(srv.url .. "/ui/sub/data.json")))
  end)

  it("never leaves the directory", function()
    for _, p in ipairs({"/ui/../config.yaml", "/ui/%2e%2e/config.yaml", "/ui/sub/..%2f..%2fconfig.yaml",
      "/ui/link.txt", "/ui/nope.txt"}) do
      local _, out = h.sh(RAW .. srv.port .. " 'GET " .. p .. " HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'")
      assert.matches("^HTTP/1%.1 40[04] ", out, 1)
      assert.is_nil(out:find("secret", 1, true), p)
      assert.is_nil(out:find("http_server", 1, true), p)
    end
  end)
end)

describe("http_server rate_limit", function()
  it("answers 429 with Retry-After beyond count per interval", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server:
    path: /limited
    rate_limit: {count: 3, interval: 2s}
output:
  drop: {}
]])
    local codes = {}
    for k = 1, 5 do codes[k] = tonumber((curl("-o /dev/null -w '%{http_code}' -X POST -d x " .. srv.url .. "/limited"))) end
    local out = curl("-i -X POST -d x " .. srv.url .. "/limited")
    assert.are.equal(0, srv.stop())
    assert.are.same({200, 200, 200, 429, 429}, codes)
    assert.matches("\r\nRetry%-After: [12]\r\n", out)
    assert.matches('"status":429}$', out)
  end)
end)

describe("http_server output", function()
  -- SSE events (id, data) read by curl for `secs` seconds.
  local function sse(url, secs)
    local _, out = h.sh(string.format("curl -s -i -N -m %s %s", secs, url))
    local events = {}
    for id, data in out:gmatch("id: (%d+)\ndata: ([^\n]*)\n\n") do events[#events + 1] = {id = tonumber(id), data = data} end
    return events, out
  end

  it("broadcasts to every SSE client and answers long-poll GETs", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  generate: {interval: 100ms, mapping: 'return {n = i}'}
output:
  http_server:
    path: /poll
    sse_path: /events
    heartbeat: 200ms
]])
    local p1 = h.tmpname()
    os.execute(string.format("curl -s -N -m 1.2 %s/events > %s &", srv.url, p1))
    local events, raw = sse(srv.url .. "/events", 1.2)
    os.execute("sleep 0.2")
    local other = h.read(p1) or ""
    os.remove(p1)
    local poll = curl("-i " .. srv.url .. "/poll")
    assert.are.equal(0, srv.stop())
    assert.matches("^HTTP/1%.1 200 ", raw)
    assert.matches("\r\nContent%-Type: text/event%-stream\r\n", raw)
    assert.matches("\r\nX%-Accel%-Buffering: no\r\n", raw)
    assert.matches(": keepalive\n\n", raw)
    assert.is_true(#events >= 5, raw)
    for k = 2, #events do
      assert.are.equal(events[k - 1].id + 1, events[k].id)
      assert.are.equal(json.decode(events[k - 1].data).n + 1, json.decode(events[k].data).n)
    end
    -- The other client saw the same events (broadcast), by id.
    local seen = {}
    for id, data in other:gmatch("id: (%d+)\ndata: ([^\n]*)\n\n") do seen[tonumber(id)] = data end
    local common = 0
    for _, e in ipairs(events) do if seen[e.id] then common = common + 1; assert.are.equal(e.data, seen[e.id]) end end
    assert.is_true(common >= 3)
    assert.matches("^HTTP/1%.1 200 ", poll)
    assert.is_number(json.decode(poll:match("\r\n\r\n(.*)$")).n)
  end)

  it("names events from meta.event and filters them with types=", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  generate: {interval: 50ms, mapping: 'meta.event = (i % 2 == 0) and "even" or "odd"; return tostring(i)'}
output:
  http_server: {sse_path: /events}
]])
    local _, raw = h.sh(string.format("curl -s -N -m 1 '%s/events?types=even'", srv.url))
    assert.are.equal(0, srv.stop())
    local n = 0
    for event, data in raw:gmatch("event: (%a+)\ndata: (%d+)\n\n") do
      n = n + 1
      assert.are.equal("even", event)
      assert.are.equal(0, tonumber(data) % 2)
    end
    assert.is_true(n >= 3, raw)
  end)

  it("answers 204 when nothing comes within timeout", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  generate: {interval: 1h, mapping: 'return "first"'}
output:
  http_server: {path: /poll, timeout: 300ms}
]])
    os.execute("sleep 0.2")
    local out = curl("-w '%{http_code}' " .. srv.url .. "/poll")
    assert.are.equal(0, srv.stop())
    assert.are.equal("204", out)
  end)

  it("round_robin gives each message to one client and waits for one", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  generate: {count: 6, interval: 0, mapping: 'return tostring(i)'}
output:
  http_server: {path: /poll, delivery: round_robin, timeout: 2s}
]])
    local got = {}
    for _ = 1, 6 do got[#got + 1] = (curl(srv.url .. "/poll")) end
    local rc = srv.stop()
    assert.are.equal(0, rc)
    assert.are.same({"1", "2", "3", "4", "5", "6"}, got)
  end)
end)

describe("websocket", function()
  local WS = "/usr/bin/python3 spec/tools/ws_client.py "

  local function ws_lines(out)
    local t = {}
    for _, l in ipairs(h.lines(out)) do t[#t + 1] = json.decode(l) end
    return t
  end

  it("input: each message is a message with the connection's context; sync_response answers on the socket", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server:
    path: /in
    ws_path: /ws
    ws_max_message_bytes: 1KiB
pipeline:
  processors:
    - lua: |
        if this.fail then error("bad input") end
        return {echo = this, user = ctx.query.user, method = meta.http_method}
output:
  broker:
    outputs:
      - file: {path: got.ndjson}
      - reject_errored: {sync_response: {}}
]])
    local _, out = h.sh(WS .. "'ws://127.0.0.1:" .. srv.port .. "/ws?user=ada' --send '{\"n\":1}' --send '{\"fail\":true}' --send '{\"n\":2}' --recv 3")
    local _, big = h.sh(WS .. "ws://127.0.0.1:" .. srv.port .. "/ws --send " .. string.rep("x", 2000) .. " --recv 1")
    local _, bad = h.sh(WS .. "ws://127.0.0.1:" .. srv.port .. "/ws --send-bytes c328 --recv 1")
    local got = h.read(srv.dir .. "/got.ndjson")
    assert.are.equal(0, srv.stop())
    local msgs = ws_lines(out)
    assert.are.same({echo = {n = 1}, user = "ada", method = "WS"}, json.decode(msgs[1].text))
    assert.matches("config%.yaml:%d+: bad input", json.decode(msgs[2].text).error)
    assert.are.equal(502, json.decode(msgs[2].text).status)
    assert.are.same({echo = {n = 2}, user = "ada", method = "WS"}, json.decode(msgs[3].text))
    assert.are.equal(1009, ws_lines(big)[1].closed)
    -- A binary message that is not JSON fails in the mapping and says so.
    assert.matches("not JSON", json.decode(ws_lines(bad)[1].text).error)
    -- The file branch of the fan_out keeps failed messages too (no reject_errored there).
    assert.are.equal(4, #h.lines(got))
  end)

  it("answers 426 to another protocol version and 403 to a foreign Origin", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  cors: {allowed_origins: [https://ok.example]}
input:
  http_server: {ws_path: /ws}
output:
  sync_response: {}
]])
    local up = "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "
    local v8 = curl("-i " .. up .. "-H 'Sec-WebSocket-Version: 8' " .. srv.url .. "/ws")
    local foreign = curl("-w ' %{http_code}' " .. up .. "-H 'Sec-WebSocket-Version: 13' -H 'Origin: https://evil.example' " ..
      srv.url .. "/ws")
    -- No Origin (not a browser): accepted, which the echo proves (a refused
    -- handshake makes the client exit 1 with nothing on stdout).
    local code, ok, err = h.sh(WS .. "ws://127.0.0.1:" .. srv.port .. "/ws --send hi --recv 1")
    assert.are.equal(0, srv.stop())
    assert.matches("^HTTP/1%.1 426 ", v8)
    assert.matches("\r\nSec%-WebSocket%-Version: 13\r\n", v8)
    assert.matches(" 403$", foreign)
    assert.are.equal(0, code, err)
    assert.are.same({{text = "hi"}}, ws_lines(ok))
  end)

  it("closes a client that stops reading with 1008 and keeps serving the others", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  generate: {interval: 10ms, batch_size: 16, mapping: 'return string.rep("x", 4096)'}
output:
  http_server: {ws_path: /sub, max_buffer: 64KiB}
]])
    local _, out = h.sh(WS .. "ws://127.0.0.1:" .. srv.port .. "/sub --stall 3 --wait 3")
    local _, fresh = h.sh(WS .. "ws://127.0.0.1:" .. srv.port .. "/sub --recv 2")
    local metrics = curl(srv.url .. "/metrics")
    assert.are.equal(0, srv.stop())
    local last = ws_lines(out)
    assert.are.equal(1008, last[#last].closed)
    -- At least the stalled one: on a loaded machine a batch (64 KiB, the
    -- whole max_buffer) may find the fresh client's socket full too, after
    -- it read what it wanted.
    local dropped = metrics:match('\nsluice_http_slow_clients_dropped_total{stream="main",kind="ws"} (%d+)\n')
    assert.is_true(tonumber(dropped or 0) >= 1, metrics)
    assert.are.equal(2, #ws_lines(fresh))
  end)

  it("closes with 1007 on a text frame that is not UTF-8 and 1002 on an unmasked frame", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server: {ws_path: /ws}
output:
  drop: {}
]])
    local up = "GET /ws HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n" ..
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n"
    -- Masked text frame (key 0) carrying C3 28, an invalid UTF-8 sequence.
    local _, bad_text = h.sh(RAW .. srv.port .. " '" .. up .. "\\x81\\x82\\x00\\x00\\x00\\x00\\xc3\\x28'")
    -- Unmasked text frame "hi": clients must mask.
    local _, unmasked = h.sh(RAW .. srv.port .. " '" .. up .. "\\x81\\x02hi'")
    assert.are.equal(0, srv.stop())
    assert.matches("^HTTP/1%.1 101 ", bad_text)
    -- A close frame (0x88) whose status code is 1007 (0x03EF) / 1002 (0x03EA).
    assert.matches("\x88[\x02-\x7d]\x03\xef", bad_text)
    assert.matches("\x88[\x02-\x7d]\x03\xea", unmasked)
  end)

  it("reads frames split across reads, fragments with a ping between them, and limits fragmented messages", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server: {ws_path: /ws, ws_max_message_bytes: 16}
output:
  sync_response: {}
]])
    local up = "GET /ws HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n" ..
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n"
    -- Masked frames with key 0, so payloads read as sent. The server must
    -- keep a frame's bytes across reads, and a fragmented message open
    -- across reads and an interleaved ping, while its idle connections keep
    -- no WebSocket state between messages.
    local parts = {
      up .. "\\x81\\x82\\x00\\x00",                                    -- "hi", cut in its mask key
      "\\x00\\x00h",                                                     -- ... and in its payload
      "i\\x01\\x83\\x00\\x00\\x00\\x00abc\\x89\\x80\\x00\\x00\\x00\\x00", -- fragment 1, then a ping
      "\\x80\\x83\\x00\\x00\\x00\\x00def",                               -- last fragment
      "\\x01\\x8a\\x00\\x00\\x00\\x000123456789",                        -- 10 bytes of a message ...
      "\\x80\\x8a\\x00\\x00\\x00\\x000123456789",                        -- ... and 10 more: over 16
    }
    local args = {}
    for k, p in ipairs(parts) do args[k] = "'" .. p .. "'" end
    local _, out = h.sh(RAW .. srv.port .. " --pause 0.3 " .. table.concat(args, " "))
    assert.are.equal(0, srv.stop())
    assert.matches("^HTTP/1%.1 101 ", out)
    local hi = out:find("\x81\x02hi", 1, true)
    local pong = out:find("\x8a\x00", 1, true)
    local abcdef = out:find("\x81\x06abcdef", 1, true)
    assert.truthy(hi and pong and abcdef and hi < pong and pong < abcdef)
    assert.matches("\x88[\x02-\x7d]\x03\xf1", out)   -- close 1009
  end)

  it("refuses a plain GET on a WebSocket path with 400", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server: {ws_path: /ws}
output:
  drop: {}
]])
    local out = curl("-w ' %{http_code}' " .. srv.url .. "/ws")
    assert.are.equal(0, srv.stop())
    assert.matches('"status":400} 400$', out)
  end)

  it("output: pushes every message to every client, binary when not UTF-8", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  http_server: {path: /pub}
output:
  http_server: {ws_path: /sub}
]])
    local f1, f2 = h.tmpname(), h.tmpname()
    os.execute(WS .. "ws://127.0.0.1:" .. srv.port .. "/sub --recv 2 --wait 3 > " .. f1 .. " &")
    os.execute(WS .. "ws://127.0.0.1:" .. srv.port .. "/sub --recv 2 --wait 3 > " .. f2 .. " &")
    -- both clients are connected before anything is published
    local streams = h.wait_for(function()
      return curl(srv.url .. "/metrics"):find('\nsluice_http_streams{kind="websocket"} 2\n', 1, true)
    end, 30)
    if not streams then srv.stop() end
    assert.truthy(streams, "the two clients did not connect")
    curl("-X POST -d hello " .. srv.url .. "/pub")
    h.sh("printf '\\377\\376' | curl -s -X POST --data-binary @- " .. srv.url .. "/pub")
    h.wait_for(function() return #h.lines(h.read(f1) or "") >= 2 and #h.lines(h.read(f2) or "") >= 2 end, 30)
    local a, b = ws_lines(h.read(f1) or ""), ws_lines(h.read(f2) or "")
    os.remove(f1); os.remove(f2)
    assert.are.equal(0, srv.stop())
    assert.are.same({{text = "hello"}, {binary = "fffe"}}, a)
    assert.are.same(a, b)
  end)
end)

describe("http auth", function()
  local JWT = "python3 spec/tools/jwt.py "
  local function token(...)
    local args = {}
    for k, a in ipairs({...}) do args[k] = h.shell_quote(a) end
    local _, out = h.sh(JWT .. table.concat(args, " "))
    return (out:gsub("%s+$", ""))
  end

  local srv, keydir
  setup(function()
    keydir = h.tmpdir()
    assert(os.execute("openssl genrsa -out " .. keydir .. "/key.pem 2048 2>/dev/null"))
    assert(os.execute("openssl rsa -in " .. keydir .. "/key.pem -pubout -out " .. keydir .. "/pub.pem 2>/dev/null"))
    srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  auth:
    jwt:
      secret: s3cret
      issuer: sluice-tests
streams:
  hs:
    input:
      http_server: {path: /hs}
    pipeline:
      processors:
        - lua: 'return {user = ctx.user, role = ctx.jwt.role}'
    output: {sync_response: {}}
  rs:
    input:
      http_server:
        path: /rs
        auth:
          jwt:
            public_key_file: ]] .. keydir .. [[/pub.pem
            required_claims: {role: admin}
    output: {sync_response: {}}
  keys:
    input:
      http_server:
        path: /keys
        auth:
          api_keys:
            keys: {k-123: bob}
    pipeline:
      processors:
        - lua: 'return {user = ctx.user}'
    output: {sync_response: {}}
]])
  end)
  teardown(function()
    assert.are.equal(0, srv.stop())
    h.rmdir(keydir)
  end)

  local function post(path, hdr)
    return curl("-i -X POST -d '{}' " .. (hdr or "") .. " " .. srv.url .. path)
  end

  it("accepts a valid HS256 token and fills ctx.user and ctx.jwt", function()
    local t = token("HS256", "s3cret", '{"sub":"ada","role":"dev","iss":"sluice-tests","exp":"now+60"}')
    local out = post("/hs", "-H 'Authorization: Bearer " .. t .. "'")
    assert.matches("^HTTP/1%.1 200 ", out)
    assert.are.same({user = "ada", role = "dev"}, json.decode(out:match("\r\n\r\n(.*)$")))
    -- Browsers' EventSource and WebSocket cannot set headers: access_token works too.
    assert.matches("^HTTP/1%.1 200 ", post("/hs?access_token=" .. t))
  end)

  it("refuses missing, expired, wrongly signed, foreign-issuer and alg-swapped tokens with 401", function()
    local out = post("/hs")
    assert.matches("^HTTP/1%.1 401 ", out)
    assert.matches('\r\nWWW%-Authenticate: Bearer realm="sluice"\r\n', out)
    local cases = {
      token("HS256", "s3cret", '{"sub":"ada","iss":"sluice-tests","exp":"now-120"}'),
      token("HS256", "other", '{"sub":"ada","iss":"sluice-tests","exp":"now+60"}'),
      token("HS256", "s3cret", '{"sub":"ada","iss":"elsewhere","exp":"now+60"}'),
      token("HS256", "s3cret", '{"sub":"ada","iss":"sluice-tests","nbf":"now+600"}'),
      "not.a.token",
    }
    for _, t in ipairs(cases) do
      out = post("/hs", "-H 'Authorization: Bearer " .. t .. "'")
      assert.matches("^HTTP/1%.1 401 ", out, 1, t)
      assert.matches('error="invalid_token"', out)
    end
  end)

  it("checks RS256 with the public key, refuses HS256 signed with that key, and answers 403 for missing claims", function()
    local admin = token("RS256", keydir .. "/key.pem", '{"sub":"eve","role":"admin","exp":"now+60"}')
    assert.matches("^HTTP/1%.1 200 ", post("/rs", "-H 'Authorization: Bearer " .. admin .. "'"))
    local user = token("RS256", keydir .. "/key.pem", '{"sub":"eve","role":"user","exp":"now+60"}')
    assert.matches("^HTTP/1%.1 403 ", post("/rs", "-H 'Authorization: Bearer " .. user .. "'"))
    local forged = token("HS256", h.read(keydir .. "/pub.pem"), '{"sub":"eve","role":"admin"}')
    assert.matches("^HTTP/1%.1 401 ", post("/rs", "-H 'Authorization: Bearer " .. forged .. "'"))
  end)

  it("accepts API keys in a header or the query, and nothing else", function()
    local out = post("/keys", "-H 'X-API-Key: k-123'")
    assert.are.same({user = "bob"}, json.decode(out:match("\r\n\r\n(.*)$")))
    assert.matches("^HTTP/1%.1 200 ", post("/keys?api_key=k-123"))
    assert.matches("^HTTP/1%.1 401 ", post("/keys", "-H 'X-API-Key: nope'"))
  end)

  it("keeps /ping public", function()
    assert.are.equal("pong", (curl(srv.url .. "/ping")))
  end)
end)

describe("tenant isolation", function()
  it("delivers each user only their messages, whatever the clients ask for", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  auth:
    api_keys:
      keys: {key-a: alice, key-b: bob}
input:
  generate:
    interval: 20ms
    mapping: 'return {user_id = (i % 2 == 0) and "alice" or "bob", n = i}'
output:
  http_server:
    path: /poll
    sse_path: /events
    tenant: ctx.user
    tenant_field: this.user_id
]])
    local fa, fb = h.tmpname(), h.tmpname()
    os.execute(string.format("curl -s -N -m 1.5 -H 'X-API-Key: key-a' %s/events > %s &", srv.url, fa))
    os.execute(string.format("curl -s -N -m 1.5 '%s/events?api_key=key-b' > %s &", srv.url, fb))
    local poll = curl("-H 'X-API-Key: key-b' " .. srv.url .. "/poll")
    local anon = curl("-w ' %{http_code}' " .. srv.url .. "/events")
    os.execute("sleep 1.8")
    local a, b = h.read(fa) or "", h.read(fb) or ""
    os.remove(fa); os.remove(fb)
    assert.are.equal(0, srv.stop())
    local function users(raw)
      local seen, n = {}, 0
      for data in raw:gmatch("data: ([^\n]+)") do
        seen[json.decode(data).user_id] = true
        n = n + 1
      end
      return seen, n
    end
    local sa, na = users(a)
    local sb, nb = users(b)
    assert.is_true(na >= 10 and nb >= 10, na .. " " .. nb)
    assert.are.same({alice = true}, sa)
    assert.are.same({bob = true}, sb)
    assert.are.equal("bob", json.decode(poll).user_id)
    assert.matches(" 401$", anon)
  end)

  it("refuses tenant without broadcast", function()
    local r = h.run_config("input: {stdin: {}}\noutput:\n  http_server: {path: /p, tenant: ctx.user, delivery: round_robin}\n",
      {cmd = "run", stdin = ""})
    assert.are.equal(1, r.code)
    assert.matches("tenant isolation is `tenant: ctx.user` with `delivery: broadcast`", r.stderr)
  end)
end)

describe("https", function()
  it("serves HTTPS and wss:// with the configured certificate", function()
    local d = h.tmpdir()
    h.self_signed(d)
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  tls: {cert_file: ]] .. d .. [[/cert.pem, key_file: ]] .. d .. [[/key.pem}
input:
  http_server: {path: /in}
output:
  drop: {}
]], {scheme = "https", cacert = d .. "/cert.pem"})
    local out = curl("-i --cacert " .. d .. "/cert.pem -X POST -d '{}' https://127.0.0.1:" .. srv.port .. "/in")
    local plain = curl("-w ' %{http_code}' -X POST -d '{}' http://127.0.0.1:" .. srv.port .. "/in")
    local keep = curl("--cacert " .. d .. "/cert.pem https://127.0.0.1:" .. srv.port .. "/ping https://127.0.0.1:" ..
      srv.port .. "/ping")
    assert.are.equal(0, srv.stop())
    h.rmdir(d)
    assert.matches("^HTTP/1%.1 200 ", out)
    assert.matches('{"status":"ok"}$', out)
    assert.matches(" 000$", plain)
    assert.are.equal("pongpong", keep)
  end)

  it("reports an unusable certificate at start", function()
    local r = h.run_config("http:\n  address: 127.0.0.1:1\n  tls: {cert_file: /nonexistent.pem, key_file: /nonexistent.pem}\n" ..
      "input: {http_server: {path: /x}}\noutput: {drop: {}}\n")
    assert.are.equal(1, r.code)
    assert.matches("http%.tls: /nonexistent%.pem", r.stderr)
  end)
end)

describe("SSE resume", function()
  it("replays what a client missed after Last-Event-ID, once and in order", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
input:
  generate: {interval: 20ms, mapping: 'return tostring(i)'}
output:
  http_server: {path: "", sse_path: /events, replay_bytes: 300}
]])
    local _, first = h.sh(string.format("curl -s -N -m 0.5 %s/events", srv.url))
    local last = 0
    for id in first:gmatch("id: (%d+)\n") do last = tonumber(id) end
    -- events keep coming while the client is away: 25 more at least
    local function received()
      local _, m = h.sh("curl -s " .. srv.url .. "/metrics")
      return tonumber(m:match("\ninput_received{[^}]*} (%d+)") or 0)
    end
    assert.truthy(h.wait_for(function() return received() >= last + 25 end, 30), "no events after " .. last)
    local _, again = h.sh(string.format("curl -s -N -m 0.5 -H 'Last-Event-ID: %d' %s/events", last, srv.url))
    -- 300 bytes keep events 137 and on at most (1 to 9 take a byte, 10 to 99 two, then three)
    assert.truthy(h.wait_for(function() return received() >= 200 end, 30), "fewer than 200 events")
    local _, far = h.sh(string.format("curl -s -N -m 0.3 '%s/events?last_event_id=0'", srv.url))
    assert.are.equal(0, srv.stop())
    assert.is_true(last > 3, first)
    local ids = {}
    for id in again:gmatch("id: (%d+)\n") do ids[#ids + 1] = tonumber(id) end
    assert.are.equal(last + 1, ids[1])
    for k = 2, #ids do assert.are.equal(ids[k - 1] + 1, ids[k]) end
    assert.is_true(#ids > 20, again)
    -- Beyond the kept window: told about the gap, then what is kept.
    assert.matches(": gap: events 1 to %d+ are gone", far)
  end)
end)
