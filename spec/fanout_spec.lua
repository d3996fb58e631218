-- Broadcast fan-out (http_server output to many SSE and WebSocket clients):
-- every client gets every event in order, and the events a loop turn
-- broadcasts go to each client in one write, not one write per event.
local h = require("spec.helpers")

describe("broadcast fan-out", function()
  it("writes a 100-message batch to each of 16 SSE and WebSocket clients with one write per client", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  generate: {interval: 100ms, batch_size: 100, mapping: 'meta.event = "tick"; return tostring(i) .. "\nsecond line"'}
output:
  http_server: {path: "", sse_path: /sse, ws_path: /ws, replay_bytes: 0}
]])
    local pid = h.read(srv.dir .. "/pid.txt"):match("%d+")
    local ok, err = pcall(function()
      local code, out, stderr = h.sh(string.format("cd spec/node && node fanout.js %s/sse ws://127.0.0.1:%d/ws 8 300 1300 %s",
        srv.url, srv.port, pid))
      assert.are.equal(0, code, out .. stderr)
      local r = h.json.decode(out)
      assert.are.same({}, r.bad)
      assert.are.equal(16, r.opened)
      -- Between the two readings the slowest client got 1,000 events, the
      -- others what they had not yet had at the first (a loaded machine
      -- leaves them apart): one write per event would be as many writes as
      -- events, one per client per batch about a hundredth of them.
      assert.is_true(r.events >= 1000, out)
      assert.is_true(r.writes * 10 < r.events, string.format("%d write syscalls for %d events", r.writes, r.events))
    end)
    h.stop_after(srv, ok, err)
  end)
end)

describe("broadcast fan-out to clients that reset", function()
  for _, kind in ipairs({"sse", "ws"}) do
    it(kind .. ": clients resetting while large events are being written to them are dropped, the server stays up", function()
      local srv = h.serve([[
http: {address: 127.0.0.1:$PORT, max_connections: 10000}
input:
  generate: {interval: 1ms, mapping: 'return string.rep("x", 100000)'}
output:
  http_server: {path: "", sse_path: /sse, ws_path: /ws, replay_bytes: 0}
]])
      local ok, err = pcall(function()
        local code, out, stderr = h.sh(string.format("python3 spec/tools/resetters.py %d /%s 100 10 %s",
          srv.port, kind, kind == "ws" and "--ws" or ""))
        assert.are.equal(0, code, out .. stderr)
        local r = h.json.decode(out)
        assert.are.equal(10, r.rounds)
        assert.are.equal(1000, r.read)   -- every client was being written to when it reset
        assert.are.equal(0, (h.sh("curl -sf -o /dev/null " .. srv.url .. "/ping")))
      end)
      h.stop_after(srv, ok, err)
    end)
  end
end)

describe("broadcast fan-out over TLS", function()
  it("an SSE client over https gets every event of batched broadcasts, whole and in order", function()
    local d = h.tmpdir()
    h.self_signed(d)
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  tls: {cert_file: ]] .. d .. [[/cert.pem, key_file: ]] .. d .. [[/key.pem}
input:
  generate: {interval: 20ms, batch_size: 50, mapping: 'return tostring(i) .. "\n" .. string.rep("y", 300)'}
output:
  http_server: {path: "", sse_path: /sse, replay_bytes: 0}
]], {scheme = "https", cacert = d .. "/cert.pem"})
    local ok, err = pcall(function()
      -- Reads 1,000 events (20 batches), bounded in time.
      local code, out = h.sh(string.format("timeout 30 curl -sN --cacert %s/cert.pem https://127.0.0.1:%d/sse | " ..
        "grep -m 2000 '^data: ' | grep -v '^data: y'", d, srv.port))
      assert.are.equal(0, code)
      local first, n = nil, 0
      for line in out:gmatch("[^\n]+") do
        local i = tonumber(line:match("^data: (%d+)$"))
        assert.is_not_nil(i, line)
        first = first or i
        assert.are.equal(first + n, i)
        n = n + 1
      end
      assert.are.equal(1000, n)
    end)
    h.stop_after(srv, ok, err)
    h.rmdir(d)
  end)
end)

describe("broadcast fan-out from a generate input slower than its interval", function()
  it("a tick that takes longer than the interval still lets the loop hand its events to the HTTP workers", function()
    -- Each tick spins 3 ms at a 1 ms interval: every tick is overdue when it
    -- ends. The SSE request crosses from its worker to the engine's loop and
    -- the events cross back, both only between timer phases.
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT, workers: 2}
input:
  generate: {interval: 1ms, mapping: 'local t0 = time.now_ms() while time.now_ms() - t0 < 3 do end return {i = i}'}
output:
  http_server: {path: "", sse_path: /sse, replay_bytes: 0}
]])
    local ok, err = pcall(function()
      local _, out = h.sh("curl -sN -m 60 " .. srv.url .. "/sse | grep -m 5 '^data: '")
      local n = select(2, out:gsub("data: ", ""))
      assert.are.equal(5, n, out)
    end)
    h.stop_after(srv, ok, err)
  end)
end)
