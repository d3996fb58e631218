-- The HTTP server's edges as an attacker meets them: pipelined floods,
-- clients that never read, requests llhttp would let through, WebSocket
-- protocol errors. Plain sockets (spec/tools/*.py) where no client library
-- would misbehave so.
local h = require("spec.helpers")
local json = h.json

local RAW = "python3 spec/tools/raw_http.py "
local FLOOD = "python3 spec/tools/pipeline_flood.py "
local WSFLOOD = "python3 spec/tools/ws_flood.py "
-- RSS may grow this much (KiB) under any flood; before the fixes it grew by
-- gigabytes. Sanitizer builds keep freed memory in quarantine: more room.
local RSS_GROWTH = (os.getenv("SLUICE_BIN") or ""):find("asan", 1, true) and 400 * 1024 or 100 * 1024

local function pid_of(srv) return tonumber(h.read(srv.dir .. "/pid.txt"):match("%d+")) end

local function rss_kib(pid)
  local s = h.read("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local function run_json(cmd)
  local code, out, err = h.sh(cmd)
  assert(code == 0, "exit " .. tostring(code) .. ": " .. tostring(err))
  return json.decode(out)
end

describe("pipelining", function()
  -- Pipelines 20,000 pings behind a GET of first on one connection, reading
  -- the answers; checks they all came, in order, in bounded memory, and
  -- returns the status of the first answer.
  local function flood_behind(srv, first)
    local pid = pid_of(srv)
    local before = rss_kib(pid)
    local r = run_json(FLOOD .. srv.port .. " '" .. first .. "' 20000 --pid " .. pid)
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.are.equal(20001, r.answers)
    assert.are.equal(20000, r.pongs)
    assert.is_true(r.max_rss_kib - before < RSS_GROWTH, "RSS grew by " .. (r.max_rss_kib - before) .. " KiB")
    return r.first
  end

  it("answers 20,000 requests pipelined behind a long-poll GET, in order, in bounded memory", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server: {path: /in}
output:
  http_server: {path: /out, timeout: 3s}
]])
    -- The long-poll's 204 comes first, then every pong.
    assert.are.equal(204, flood_behind(srv, "/out"))
  end)

  it("answers 20,000 requests pipelined behind a store consume that waits", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
input:
  http_server: {path: /in}
output:
  stream: {name: q}
]])
    assert.are.equal(0, (h.sh("curl -sf -X POST -d '{}' " .. srv.url .. "/in")))
    -- The subscriber read the one event first: its consume waits 3 s for more.
    assert.are.equal(0, (h.sh("curl -sf '" .. srv.url .. "/stream/q/consume/s?wait_ms=0'")))
    assert.are.equal(200, flood_behind(srv, "/stream/q/consume/s?wait_ms=3000"))
  end)

  it("answers every request of a client that pipelines 20,000 and half-closes", function()
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\ninput: {http_server: {path: /in}}\noutput: {drop: {}}\n")
    local r = run_json(FLOOD .. srv.port .. " /ping 20000 --half-close")
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.are.equal(20001, r.answers)
    assert.are.equal(20001, r.pongs)
  end)

  it("stops reading a client that pipelines and never reads its answers, and serves others meanwhile", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server: {path: /in}
output:
  drop: {}
]])
    local pid = pid_of(srv)
    local before = rss_kib(pid)
    -- 2,000,000 pings are 56 MB of requests and 300 MB of answers.
    local r = run_json(FLOOD .. srv.port .. " /ping 2000000 --no-read --pid " .. pid)
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.is_true(r.stalled, "the server read all " .. r.sent .. " requests")
    assert.is_true(r.sent < 2000000)
    assert.are.equal(200, r.ping)
    assert.is_true(r.max_rss_kib - before < RSS_GROWTH, "RSS grew by " .. (r.max_rss_kib - before) .. " KiB")
  end)

  it("keeps a connection HTTP after answering an Upgrade it does not take (h2c)", function()
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\ninput: {http_server: {path: /in}}\noutput: {drop: {}}\n")
    local _, out = h.sh(RAW .. srv.port .. " 'GET /ping HTTP/1.1\\r\\nHost: x\\r\\nConnection: Upgrade, HTTP2-Settings\\r\\n" ..
      "Upgrade: h2c\\r\\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\\r\\n\\r\\nGET /ping HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'")
    assert.are.equal(0, srv.stop(), srv.stderr())
    local _, n = out:gsub("HTTP/1%.1 200 OK\r\n", "")
    assert.are.equal(2, n, out)
  end)
end)

describe("request strictness", function()
  local srv
  setup(function()
    srv = h.serve([[
http: {address: 127.0.0.1:$PORT, read_timeout: 20s}
input:
  http_server: {path: /in}
output:
  sync_response: {}
]])
  end)
  teardown(function() assert.are.equal(0, srv.stop(), srv.stderr()) end)

  -- Sends a request and returns the status and the JSON body of the answer.
  local function ask(req)
    local _, out = h.sh(RAW .. srv.port .. " '" .. req .. "'")
    local status = tonumber(out:match("^HTTP/1%.1 (%d+) "))
    local body = out:match("\r\n\r\n(.*)$")
    return status, body and body:sub(1, 1) == "{" and json.decode(body) or body
  end

  local post = "POST /in HTTP/1.1\\r\\n"
  local tail = "Content-Length: 2\\r\\nConnection: close\\r\\n\\r\\nhi"

  it("accepts a plain request, HTTP/1.0 without Host", function()
    assert.are.equal(200, (ask(post .. "Host: x\\r\\n" .. tail)))
    assert.are.equal(200, (ask("GET /ping HTTP/1.0\\r\\n\\r\\n")))
  end)

  it("refuses obsolete line folding with 400", function()
    local status, body = ask(post .. "Host: x\\r\\nX-A: a\\r\\n b\\r\\n" .. tail)
    assert.are.equal(400, status)
    assert.are.same({error = "obsolete line folding in a header (RFC 9112 5.2)", status = 400}, body)
    status = ask(post .. "Host: x\\r\\nX-A: a\\r\\n\\t\\r\\n" .. tail)
    assert.are.equal(400, status)
  end)

  it("refuses spaces in header names with 400", function()
    local status, body = ask(post .. "Host: x\\r\\nX A: a\\r\\n" .. tail)
    assert.are.equal(400, status)
    assert.are.equal(400, body.status)
    assert.are.equal(400, (ask(post .. "Host : x\\r\\n" .. tail)))
  end)

  it("refuses HTTP/1.1 without Host, and two Host lines, with 400", function()
    local status, body = ask(post .. tail)
    assert.are.equal(400, status)
    assert.are.same({error = "missing Host header", status = 400}, body)
    status, body = ask(post .. "Host: a\\r\\nHost: b\\r\\n" .. tail)
    assert.are.equal(400, status)
    assert.are.same({error = "more than one Host header", status = 400}, body)
  end)

  it("refuses a chunk larger than max_body_bytes with 413 at once, not after the read timeout", function()
    -- read_timeout is 20 s and raw_http.py gives up after 3 s of silence.
    local status, body = ask(post .. "Host: x\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\nFFFFFFFFFFFFFFFF\\r\\nabc")
    assert.are.equal(413, status)
    assert.are.same({error = "request body too large", status = 413}, body)
    status = ask(post .. "Host: x\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n3\\r\\nabc\\r\\n7FFFFF\\r\\nabc")
    assert.are.equal(413, status)
  end)
end)

describe("status lines", function()
  it("carry the reason phrase of every status sent (416 from the store, any code from sync_response)", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
input:
  http_server: {path: /in}
pipeline:
  processors:
    - lua: 'meta.http_status = tostring(ctx.query.status or 200)'
output:
  broker:
    pattern: fan_out
    outputs:
      - stream: {name: q}
      - sync_response: {}
]])
    local function line(url)
      local _, out = h.sh("curl -s -i -X POST -d '{}' '" .. url .. "'")
      return out:match("^(HTTP/1%.1 [^\r]*)\r\n")
    end
    local got = {
      line(srv.url .. "/in?status=201"), line(srv.url .. "/in?status=418"), line(srv.url .. "/in?status=422"),
      line(srv.url .. "/in?status=299"),
    }
    local _, range = h.sh("curl -s -i '" .. srv.url .. "/stream/q/consume/s?from_offset=99'")
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.are.same({"HTTP/1.1 201 Created", "HTTP/1.1 418 I'm a teapot", "HTTP/1.1 422 Unprocessable Content",
      "HTTP/1.1 299 "}, got)
    assert.matches("^HTTP/1%.1 416 Range Not Satisfiable\r\n", range)
  end)
end)

describe("websocket edges", function()
  local UP = "GET /ws HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n" ..
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n"
  local ECHO = [[
http: {address: 127.0.0.1:$PORT, idle_timeout: 30s}
input:
  http_server: {path: /in, ws_path: /ws, ws_max_message_bytes: 1MiB}
output:
  sync_response: {}
]]

  -- The close code of the first close frame in raw bytes, or nil.
  local function close_code(raw)
    local hi, lo = raw:match("\x88[\x02-\x7d](.)(.)")
    return hi and hi:byte() * 256 + lo:byte()
  end

  it("echoes in the frame type received: binary stays binary even when it is UTF-8", function()
    local srv = h.serve(ECHO)
    -- Masked with key 0: binary "hi" (with the upgrade request), empty
    -- binary, text "hi"; the answers come in order, then 3 s of silence.
    local _, out = h.sh(RAW .. srv.port .. " --pause 0.3 '" .. UP .. "\\x82\\x82\\x00\\x00\\x00\\x00hi' " ..
      "'\\x82\\x80\\x00\\x00\\x00\\x00' '\\x81\\x82\\x00\\x00\\x00\\x00hi'")
    assert.are.equal(0, srv.stop(), srv.stderr())
    local frames = out:match("\r\n\r\n(.*)$")
    assert.are.equal("\x82\x02hi\x82\x00\x81\x02hi\n<silence>", frames)
  end)

  it("closes with 1002 or 1009, never without a code, on frames refused from their header", function()
    local srv = h.serve(ECHO)
    local cases = {
      {"\\x89\\xfe\\x00\\x7e\\x00\\x00\\x00\\x00", 1002},      -- ping of 126 bytes
      {"\\x09\\x80\\x00\\x00\\x00\\x00", 1002},                -- fragmented ping
      {"\\x82\\xfe\\x00\\x05\\x00\\x00\\x00\\x00hello", 1002}, -- 5 in a 16-bit length
      {"\\x82\\xff\\x80\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x00", 1002},   -- top bit set
      {"\\x82\\xff\\x00\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00", 1009},   -- 16 MiB > 1 MiB
    }
    local got = {}
    for i, c in ipairs(cases) do
      local _, out = h.sh(RAW .. srv.port .. " '" .. UP .. "\\x89\\x82\\x00\\x00\\x00\\x00ok" .. c[1] .. "'")
      -- The frames before the refused one are read first (a ping is answered at once).
      got[i] = {out:find("\x8a\x02ok\x88", 1, true) ~= nil, close_code(out)}
    end
    assert.are.equal(0, srv.stop(), srv.stderr())
    for i, c in ipairs(cases) do assert.are.same({true, c[2]}, got[i], "case " .. i) end
  end)

  it("drops an echo client that sends and never reads with 1008, counted, in bounded memory", function()
    local srv = h.serve(ECHO)
    local pid = pid_of(srv)
    local before = rss_kib(pid)
    -- 1,000 binary messages of 256 KiB: 256 MB of echoes nobody reads.
    local r = run_json(WSFLOOD .. srv.port .. " /ws --count 1000 --size 262144 --pid " .. pid ..
      " --await-metric 'sluice_http_slow_clients_dropped_total{stream=\"main\",kind=\"ws\"} 1'")
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.is_true(r.metric)
    assert.are.equal(1008, r.close)
    assert.is_true(r.frames < 1000)
    assert.are.equal(200, r.ping)
    assert.is_true(r.max_rss_kib - before < RSS_GROWTH, "RSS grew by " .. (r.max_rss_kib - before) .. " KiB")
  end)

  it("stops reading a client that floods pings and never reads the pongs", function()
    local srv = h.serve(ECHO)
    local pid = pid_of(srv)
    local before = rss_kib(pid)
    -- 2,000,000 pings of 125 bytes: 262 MB of pongs nobody reads.
    local r = run_json(WSFLOOD .. srv.port .. " /ws --kind ping --size 125 --count 2000000 --pid " .. pid)
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.is_true(r.stalled, "the server read all " .. r.sent .. " pings")
    assert.are.equal(200, r.ping)
    -- Every ping read was answered: the pongs were waiting, not lost.
    assert.are.equal(r.sent, r.pongs)
    assert.is_true(r.max_rss_kib - before < RSS_GROWTH, "RSS grew by " .. (r.max_rss_kib - before) .. " KiB")
  end)
end)

describe("clients that stop reading (send_timeout)", function()
  local READER = "python3 spec/tools/slow_reader.py "
  local BIG = 12 * 1024 * 1024   -- more than the socket buffers of both ends hold
  local DROPPED = 'sluice_http_slow_clients_dropped_total{stream="%s",kind="send_timeout"} %d'

  -- A server with a 12 MiB static file and send_timeout 1s; extra is more YAML.
  local function serve(extra)
    return h.serve("http:\n  address: 127.0.0.1:$PORT\n  send_timeout: 1s\n  static: [{path: /files, dir: ./files}]\n" ..
      extra, {before = function(dir)
        os.execute("mkdir -p " .. dir .. "/files")
        h.write(dir .. "/files/big.bin", string.rep("x", BIG))
      end})
  end

  local function metrics(srv) return select(2, h.sh("curl -s " .. srv.url .. "/metrics")) end

  it("closes a connection that takes none of a large answer for send_timeout, and counts it", function()
    local srv = serve("input: {http_server: {path: /in}}\noutput: {drop: {}}\n")
    -- Reads nothing until the drop is counted, then what its socket holds.
    local r = run_json(READER .. srv.port .. " /files/big.bin --deadline 30 --await-metric '" ..
      DROPPED:format("http.static", 1) .. "'")
    local ping = h.sh("curl -sf " .. srv.url .. "/ping")
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.is_true(r.metric, "never dropped")
    assert.are.equal(200, r.status)
    assert.are.equal(BIG, r.content_length)
    -- Reset, with what waited for it: what its own socket held, then no more.
    assert.are.equal("reset", r["end"])
    assert.is_true(r.body < BIG)
    assert.are.equal(0, ping)
  end)

  it("keeps a reader that takes a large answer slowly but steadily", function()
    local srv = serve("input: {http_server: {path: /in}}\noutput: {drop: {}}\n")
    -- 256 KiB every 0.1 s: 12 MiB take 4.8 s, several send_timeouts.
    local r = run_json(READER .. srv.port .. " /files/big.bin --rcvbuf 65536 --read 262144 --every 0.1")
    local m = metrics(srv)
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.are.equal("complete", r["end"])
    assert.are.equal(BIG, r.body)
    assert.is_true(r.seconds > 2, "taken in " .. r.seconds .. " s: that proves nothing about a 1 s send_timeout")
    assert.is_nil(m:find('kind="send_timeout"', 1, true), m)
  end)

  it("closes durable SSE and WebSocket readers that read nothing, without a close frame", function()
    -- 16 MiB in the stream; a live reader pauses at 1 MiB unsent, and its
    -- connection used to stay so for good.
    local srv = serve([[
store: {data_dir: ./data}
streams:
  fill:
    input:
      generate: {count: 64, interval: 0s, mapping: "return '\"' .. string.rep('x', 262144) .. '\"'"}
    output:
      stream: {name: q}
  api:
    input: {http_server: {path: /in}}
    output: {drop: {}}
]])
    -- The WebSocket reader's socket holds a few frames, read after the reset.
    local ws = run_json(READER .. srv.port .. " '/stream/q/ws/a?from_offset=0' --ws --rcvbuf 1048576 --deadline 30 " ..
      "--await-metric '" .. DROPPED:format("store.api", 1) .. "'")
    local sse = run_json(READER .. srv.port .. " '/stream/q/sse/b?from_offset=0' --deadline 30 --await-metric '" ..
      DROPPED:format("store.api", 2) .. "'")
    assert.are.equal(0, srv.stop(), srv.stderr())
    assert.is_true(ws.metric and sse.metric, "never dropped")
    assert.are.equal(101, ws.status)
    assert.is_true(ws.frames > 0 and ws.frames < 64)
    assert.are.equal(json.null, ws.close)
    assert.are.equal("reset", ws["end"])
    assert.are.equal(200, sse.status)
    assert.are.equal("reset", sse["end"])
  end)

  it("never closes an idle SSE client, with or without heartbeats", function()
    local srv = serve([[
streams:
  quiet:
    input: {http_server: {path: /in}}
    output: {http_server: {path: /get, sse_path: /sse, heartbeat: 0s}}
  beating:
    input: {http_server: {path: /in2}}
    output: {http_server: {path: /get2, sse_path: /sse2, heartbeat: 200ms}}
]])
    local quiet, beating = srv.dir .. "/quiet.txt", srv.dir .. "/beating.txt"
    os.execute("curl -sN -m 60 " .. srv.url .. "/sse > " .. quiet .. " 2>&1 &")
    os.execute("curl -sN -m 60 " .. srv.url .. "/sse2 > " .. beating .. " 2>&1 &")
    local open = 'sluice_http_streams{kind="sse"} 2\n'
    local ok, err = pcall(function()
      assert.is_truthy(h.wait_for(function() return metrics(srv):find(open, 1, true) end, 20), metrics(srv))
      assert.is_truthy(h.wait_for(function() return (h.read(beating) or ""):find(": keepalive", 1, true) end, 20))
      -- A never-reader connected after them is dropped: send_timeout has run
      -- its course while they were connected with nothing waiting.
      local r = run_json(READER .. srv.port .. " /files/big.bin --deadline 30 --await-metric '" ..
        DROPPED:format("http.static", 1) .. "'")
      assert.is_true(r.metric, "the never-reader was not dropped")
      assert.are.equal(0, (h.sh("curl -sf -d '{\"n\":1}' " .. srv.url .. "/in")))
      assert.are.equal(0, (h.sh("curl -sf -d '{\"n\":2}' " .. srv.url .. "/in2")))
      assert.is_truthy(h.wait_for(function() return (h.read(quiet) or ""):find('data: {"n":1}', 1, true) end, 20),
        h.read(quiet))
      assert.is_truthy(h.wait_for(function() return (h.read(beating) or ""):find('data: {"n":2}', 1, true) end, 20),
        h.read(beating))
      local m = metrics(srv)
      assert.is_truthy(m:find(open, 1, true), m)
      assert.are.equal(1, select(2, m:gsub('kind="send_timeout"', "")), m)
    end)
    h.stop_after(srv, ok, err)
  end)
end)


describe("slow requests (slowloris)", function()
  local TRICKLE = "python3 spec/tools/trickle.py "
  local srv
  setup(function()
    srv = h.serve([[
http: {address: 127.0.0.1:$PORT, read_timeout: 1s, idle_timeout: 1s}
input: {http_server: {path: /in}}
output: {drop: {}}
]])
  end)
  teardown(function() assert.are.equal(0, srv.stop(), srv.stderr()) end)

  -- Bytes every 0.2 s: each comes well within the timeouts (1 s), the whole
  -- text takes far longer (16-20 s) than any of them.
  it("answers 408 to headers sent a byte at a time, read_timeout after the first byte", function()
    local r = run_json(TRICKLE .. srv.port .. " 0.2 'GET /ping HTTP/1.1\\r\\nHost: x\\r\\nX-Pad: " ..
      string.rep("a", 60) .. "\\r\\n\\r\\n'")
    assert.are.equal(408, r.status)
    assert.is_true(r.closed)
    assert.is_true(r.sent < r.total, "every byte was taken")
  end)

  it("answers 408 to a body sent a byte at a time", function()
    local r = run_json(TRICKLE .. srv.port .. " 0.2 '" .. string.rep("b", 80) ..
      "' 'POST /in HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 80\\r\\n\\r\\n'")
    assert.are.equal(408, r.status)
    assert.is_true(r.sent < r.total, "every byte was taken")
  end)

  it("closes a connection that sends only empty lines, idle_timeout after it opened", function()
    local r = run_json(TRICKLE .. srv.port .. " 0.2 '" .. string.rep("\\r\\n", 40) .. "'")
    assert.are.equal(json.null, r.status)
    assert.is_true(r.closed)
    assert.is_true(r.sent < r.total, "every byte was taken")
  end)
end)

-- A connection's timer is not restarted on every request: it fires at the
-- earliest deadline it was set to and waits again for a later one.
describe("a kept-alive connection between requests", function()
  it("waits idle_timeout, not the read_timeout its last request started", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT, read_timeout: 1s, idle_timeout: 20s}
input: {http_server: {path: /in}}
output: {drop: {}}
]])
    -- The second request comes 2 s after the first one: past its read_timeout.
    local GET = "GET /ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
    local _, out = h.sh(RAW .. srv.port .. " --pause 2 '" .. GET .. "' '" .. GET .. "'")
    assert.are.equal(0, srv.stop(), srv.stderr())
    local _, answers = out:gsub("HTTP/1.1 200 OK", "")
    assert.are.equal(2, answers, out)
    assert.truthy(out:find("<silence>$"), out)   -- still open 3 s after
  end)
end)
