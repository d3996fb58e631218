-- Resuming SSE and WebSocket clients: ids that are not ids are refused (400
-- listing the accepted forms) on every endpoint that takes Last-Event-ID, and
-- the quickstart's /sse (delivery: round_robin) gives a reconnecting client
-- what it missed, as broadcast does. Clients: curl and Python websockets.
local h = require("spec.helpers")
local json = h.json

local function curl(args)
  local _, out = h.sh("curl -s -m 10 -w '\\n%{http_code}' " .. args)
  local body, code = out:match("^(.*)\n(%d+)$")
  local ok, j = pcall(json.decode, body)
  return tonumber(code), ok and j or body
end

local function post(srv, path, body, key)
  return curl("-X POST --data-binary " .. h.shell_quote(json.encode(body)) .. " '" .. srv.url .. path .. "'" ..
    (key and (" -H 'X-API-Key: " .. key .. "'") or ""))
end

-- The status and body of a WebSocket upgrade request (curl speaks the handshake).
local function ws_upgrade(url, header)
  return curl("-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' " ..
    "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' " .. (header or "") .. " '" .. url .. "'")
end

local function q(s) return (s:gsub("[^%w:%-]", function(c) return string.format("%%%02X", c:byte()) end)) end

local BAD = {"xyz", "5abc", "2:1", "1700000000000-0", "0:1,0:2", "0:", ":1", "1,0:2", "0:1x", "-2", "0:1, 0:2",
  "0:99999999999999999999", "99999999999999999999"}

describe("Last-Event-ID that is not an id", function()
  local srv
  setup(function()
    srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
streams:
  fed:
    input: {stream: {name: feed, group: sse}}
    output: {http_server: {path: "", sse_path: /fed/sse, ws_path: /fed/ws}}
  plain:
    input: {generate: {interval: 1h, mapping: 'return 1'}}
    output: {http_server: {path: "", sse_path: /plain/sse, ws_path: /plain/ws}}
]])
    post(srv, "/stream/one", {partitions = 1})
    post(srv, "/stream/one/publish", {events = {{event = "a", data = 1}, {event = "b", data = 2}}})
    post(srv, "/stream/feed/publish", {data = 1})
  end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  local function refused(where, id, code, body)
    assert.are.equal(400, code, where .. " " .. id .. ": " .. tostring(body))
    assert.are.equal(400, body.status)
    assert.matches(id:gsub("%p", "%%%0"), body.error, 1)
    return body.error
  end

  it("is answered 400 with the accepted forms by the store API's SSE and WebSocket, header and query", function()
    for _, id in ipairs(BAD) do
      local e = refused("sse header", id,
        curl("-H " .. h.shell_quote("Last-Event-ID: " .. id) .. " '" .. srv.url .. "/stream/one/sse/s'"))
      assert.matches("PARTITION:OFFSET", e, 1, true)
      assert.matches('"0:41,1:17"', e, 1, true)
      assert.matches("partitions 0 to 0", e, 1, true)
      refused("sse query", id, curl("'" .. srv.url .. "/stream/one/sse/s?last_event_id=" .. q(id) .. "'"))
      refused("ws query", id, ws_upgrade(srv.url .. "/stream/one/ws/s?last_event_id=" .. q(id)))
      refused("ws header", id, ws_upgrade(srv.url .. "/stream/one/ws/s", "-H " .. h.shell_quote("Last-Event-ID: " .. id)))
    end
  end)

  it("is answered 400 by an http_server output's SSE and WebSocket, stream-fed or not", function()
    for _, id in ipairs(BAD) do
      local e = refused("fed sse header", id,
        curl("-H " .. h.shell_quote("Last-Event-ID: " .. id) .. " '" .. srv.url .. "/fed/sse'"))
      assert.matches("PARTITION:OFFSET", e, 1, true)
      refused("fed sse query", id, curl("'" .. srv.url .. "/fed/sse?last_event_id=" .. q(id) .. "'"))
      refused("fed ws", id, ws_upgrade(srv.url .. "/fed/ws?last_event_id=" .. q(id)))
      -- an output not fed by a stream numbers its events
      if id ~= "-2" then
        e = refused("plain sse", id,
          curl("-H " .. h.shell_quote("Last-Event-ID: " .. id) .. " '" .. srv.url .. "/plain/sse'"))
        assert.matches("decimal numbers", e, 1, true)
        refused("plain sse query", id, curl("'" .. srv.url .. "/plain/sse?last_event_id=" .. q(id) .. "'"))
        refused("plain ws", id, ws_upgrade(srv.url .. "/plain/ws?last_event_id=" .. q(id)))
      end
    end
  end)

  it("answers JSON for ids that are long, not UTF-8 or full of commas", function()
    local odd = {string.rep("7", 5000), "\xff\xfe0:1", "0:1\x01", string.rep("0:1,", 2000) .. "0:1"}
    for _, id in ipairs(odd) do
      for _, path in ipairs({"/stream/one/sse/s", "/fed/sse", "/plain/sse"}) do
        local code, body = curl("-H " .. h.shell_quote("Last-Event-ID: " .. id) .. " '" .. srv.url .. path .. "'")
        assert.are.equal(400, code, path .. ": " .. tostring(body):sub(1, 200))
        assert.are.equal(400, body.status, path)
        assert.is_true(#body.error < 600, path)
        -- valid JSON for a strict parser too (UTF-8 included)
        assert.are.equal(0, h.sh("curl -s -H " .. h.shell_quote("Last-Event-ID: " .. id) .. " '" .. srv.url .. path ..
          "' | /usr/bin/python3 -c 'import json, sys; json.loads(sys.stdin.buffer.read().decode())'"), path)
      end
    end
  end)

  it("still takes the ids the endpoints send", function()
    for _, id in ipairs({"0:0", "0", "0:-1"}) do
      local _, out = h.sh("curl -s -N -m 1 -H 'Last-Event-ID: " .. id .. "' '" .. srv.url .. "/stream/one/sse/s'")
      assert.matches(": connected", out, 1, true)
      _, out = h.sh("curl -s -N -m 1 -H 'Last-Event-ID: " .. id .. "' '" .. srv.url .. "/fed/sse'")
      assert.matches(": connected", out, 1, true)
    end
    -- an empty one is none
    for _, path in ipairs({"/stream/one/sse/s3", "/fed/sse", "/plain/sse"}) do
      local _, out = h.sh("curl -s -N -m 1 -H 'Last-Event-ID;' '" .. srv.url .. path .. "?last_event_id='")
      assert.matches(": connected", out, 1, true)
    end
    local _, out = h.sh("curl -s -N -m 1 -H 'Last-Event-ID: 0:0' '" .. srv.url .. "/stream/one/sse/s2'")
    assert.matches("id: 0:1\n", out, 1, true)
    _, out = h.sh("curl -s -N -m 1 -H 'Last-Event-ID: 7' '" .. srv.url .. "/plain/sse'")
    assert.matches(": connected", out, 1, true)
  end)
end)

-- A background curl on an SSE URL; wait(n) returns the data lines once n came.
local function sse_client(url, header)
  local out, pidf = h.tmpname(), h.tmpname()
  os.execute(string.format("curl -s -N -m 20 %s '%s' > %s 2>/dev/null & echo $! > %s",
    header and ("-H " .. h.shell_quote(header)) or "", url, out, pidf))
  local c = {}
  function c.text() return h.read(out) or "" end
  function c.data()
    local t = {}
    for id, d in c.text():gmatch("id: ([^\n]+)\ndata: ([^\n]+)") do t[#t + 1] = {id = id, data = json.decode(d)} end
    return t
  end
  function c.wait(n)
    h.wait_for(function() return #c.data() >= n end, 20)
    return c.data()
  end
  function c.connected() return h.wait_for(function() return c.text():find(": connected", 1, true) end, 10) end
  function c.stop()
    os.execute("kill " .. (h.read(pidf) or ""):match("%d+") .. " 2>/dev/null")
    os.remove(pidf)
  end
  return c
end

describe("quickstart /sse (delivery: round_robin) resumes with Last-Event-ID", function()
  local srv
  setup(function()
    local yaml = h.read("examples/quickstart.yaml"):gsub("%${HTTP_ADDRESS:[^}]*}", "127.0.0.1:$PORT")
    srv = h.serve(yaml)
  end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  it("gives a reconnecting client what its earlier connection was sent after that id, then what came meanwhile", function()
    local a = sse_client(srv.url .. "/sse?api_key=alice-key")
    assert.truthy(a.connected())
    for n = 1, 2 do assert.are.equal(200, (post(srv, "/push-event", {n = n}, "alice-key"))) end
    local got = a.wait(2)
    a.stop()
    assert.are.same({"1", "2"}, {got[1].id, got[2].id})
    -- published while alice is away; she only took in event 1
    for n = 3, 4 do assert.are.equal(200, (post(srv, "/push-event", {n = n}, "alice-key"))) end
    local b = sse_client(srv.url .. "/sse?api_key=alice-key", "Last-Event-ID: 1")
    local again = b.wait(3)
    b.stop()
    local ns, ids = {}, {}
    for k, e in ipairs(again) do ns[k], ids[k] = e.data.n, e.id end
    assert.are.same({2, 3, 4}, ns)
    assert.are.same({"2", "3", "4"}, ids)
  end)

  it("does not give one connection what another, still connected, got", function()
    local a = sse_client(srv.url .. "/sse?api_key=bob-key")
    local b = sse_client(srv.url .. "/sse?api_key=bob-key")
    assert.truthy(a.connected() and b.connected())
    for n = 1, 4 do assert.are.equal(200, (post(srv, "/push-event", {n = n}, "bob-key"))) end
    h.wait_for(function() return #a.data() + #b.data() >= 4 end, 20)
    local ga = a.data()
    a.stop()
    assert.are.equal(2, #ga, a.text())
    -- a comes back having seen only its first: it gets its second, not b's
    local a2 = sse_client(srv.url .. "/sse?api_key=bob-key", "Last-Event-ID: " .. ga[1].id)
    local re = a2.wait(1)
    assert.are.same({ga[2].id}, {re[1].id})
    assert.are.equal(ga[2].data.n, re[1].data.n)
    a2.stop()
    b.stop()
  end)

end)

-- Waits until the server has no SSE client left (it noticed the last one go).
local function no_sse_clients(srv)
  return h.wait_for(function()
    local _, m = h.sh("curl -s " .. srv.url .. "/metrics")
    return m:find('sluice_http_streams{kind="sse"} 0', 1, true)
  end, 20)
end

describe("round_robin SSE resume", function()
  it("says `: gap` when the connection an id went to is no longer known", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
streams:
  rr:
    input: {http_server: {path: /in}}
    output: {http_server: {path: "", sse_path: /rr, delivery: round_robin, replay_bytes: 24}}
]])
    finally(function() assert.are.equal(0, srv.stop()) end)
    local a = sse_client(srv.url .. "/rr")
    assert.truthy(a.connected())
    for n = 1, 5 do assert.are.equal(200, (post(srv, "/in", {n = n}))) end
    a.wait(5)
    a.stop()
    -- 24 bytes keep the last 3 of these 7-byte events (3, 4 and 5), and which connection got each
    local b = sse_client(srv.url .. "/rr", "Last-Event-ID: 3")
    local got = b.wait(2)
    b.stop()
    assert.are.same({"4", "5"}, {got[1].id, got[2].id})
    -- no client: held (the POSTs are answered once a client took them), then given to the next one after its resume
    assert.truthy(no_sse_clients(srv))
    local posts = {}
    for n = 6, 9 do posts[#posts + 1] = "curl -s -m 10 -o /dev/null --data-binary '{\"n\":" .. n .. "}' " .. srv.url .. "/in" end
    os.execute("(" .. table.concat(posts, "; ") .. ") &")
    local c = sse_client(srv.url .. "/rr", "Last-Event-ID: 1")
    local later = c.wait(4)
    c.stop()
    assert.matches(": gap: events after 1 are no longer kept\n", c.text(), 1, true)
    assert.are.same({6, 7, 8, 9}, {later[1].data.n, later[2].data.n, later[3].data.n, later[4].data.n})
    -- an id from before any event names no connection: nothing is gone
    local d = sse_client(srv.url .. "/rr", "Last-Event-ID: 0")
    assert.truthy(d.connected())
    assert.are.equal(200, (post(srv, "/in", {n = 10})))
    d.wait(1)
    d.stop()
    assert.is_nil(d.text():find(": gap", 1, true))
  end)
end)

describe("http_server output start, type_field and end_events", function()
  it("gives a late client what replay_bytes kept (start: earliest), filters and ends on the type in the content", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
streams:
  ev:
    input: {http_server: {path: /in}}
    output:
      http_server: {path: "", sse_path: /sse, ws_path: /ws, start: earliest, type_field: this.kind, end_events: [end]}
]])
    finally(function() assert.are.equal(0, srv.stop()) end)
    -- nobody is connected: broadcast drops them, and keeps them
    for _, k in ipairs({"a", "b", "a", "end", "a"}) do assert.are.equal(200, (post(srv, "/in", {kind = k}))) end
    local _, out = h.sh("timeout 10 curl -s -N '" .. srv.url .. "/sse?types=b'")
    local got = {}
    for id, d in out:gmatch("id: (%d+)\ndata: ([^\n]+)") do got[#got + 1] = id .. "=" .. json.decode(d).kind end
    -- b passes the filter, the end event always does, and the response ends after it
    assert.are.same({"2=b", "4=end"}, got)
    local ws = select(2, h.sh("/usr/bin/python3 spec/tools/ws_client.py 'ws://127.0.0.1:" .. srv.port ..
      "/ws?last_event_id=1' --wait 5"))
    local kinds, closed = {}, nil
    for _, l in ipairs(h.lines(ws)) do
      local m = json.decode(l)
      if m.text then kinds[#kinds + 1] = json.decode(m.text).kind end
      if m.closed then closed = m.closed end
    end
    assert.are.same({"b", "a", "end"}, kinds)
    assert.are.equal(1000, closed)
  end)

  it("refuses a type_field that is neither meta.KEY nor this.FIELD", function()
    local r = h.run_config("input: {stdin: {}}\noutput: {http_server: {sse_path: /s, type_field: kind}}\n",
      {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("type_field", r.stderr)
  end)
end)
