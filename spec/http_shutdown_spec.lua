-- What WebSocket clients of a stopping sluice see: a close frame with 1001
-- (going away), never an abnormal closure (1006), and a client that never
-- reads does not hold the exit up.
local h = require("spec.helpers")
local json = h.json

local NODE = "node spec/node/wsclose.js "

-- Starts a wsclose.js client in the background: its output file and pid.
local function client(srv, mode, path, name, msg)
  local out = srv.dir .. "/" .. name .. ".txt"
  local _, pid = h.sh(string.format("%s%s ws://127.0.0.1:%d%s %s > %s 2>&1 & echo $!", NODE, mode, srv.port, path,
    msg or "", out))
  assert.truthy(h.wait_for(function() return (h.read(out) or ""):find('"open"', 1, true) end), h.read(out))
  return out, pid:match("%d+")
end

local function closed(out)
  for _, l in ipairs(h.lines(h.read(out))) do
    local ok, v = pcall(json.decode, l)
    if ok and v.closed then return v end
  end
end

for _, workers in ipairs({1, 2}) do
  describe("shutdown with http.workers " .. workers, function()
    it("closes an input's and an output's WebSocket clients with 1001, and ends an SSE stream cleanly", function()
      local srv = h.serve(string.format([[
http:
  address: 127.0.0.1:$PORT
  workers: %d
streams:
  socks:
    input:
      http_server: {path: /in, ws_path: /in/ws}
    output:
      http_server: {path: /get, ws_path: /out/ws, sse_path: /out/sse}
]], workers))
      local ok, err = pcall(function()
        local inp = client(srv, "watch", "/in/ws", "in")
        local outp = client(srv, "watch", "/out/ws", "out")
        -- curl exits 0 on the last chunk, 18 on a connection cut mid-stream.
        local sse = srv.dir .. "/sse.txt"
        os.execute(string.format("(curl -sN -m 60 %s/out/sse; echo \"rc=$?\") > %s 2>&1 &", srv.url, sse))
        assert.truthy(h.wait_for(function() return (h.read(sse) or ""):find(": connected", 1, true) end), h.read(sse))
        -- Every client is subscribed once the message reaches each.
        h.sh(string.format("curl -s -m 5 -d hello %s/in", srv.url))
        assert.truthy(h.wait_for(function() return h.read(outp):find("hello", 1, true) end), h.read(outp))
        assert.truthy(h.wait_for(function() return h.read(sse):find("data: hello", 1, true) end), h.read(sse))
        srv.stop(true)
        local ci, co = h.wait_for(function() return closed(inp) end), h.wait_for(function() return closed(outp) end)
        assert.are.same({1001, "stream stopping"}, {ci and ci.closed, ci and ci.reason}, h.read(inp))
        assert.are.same({1001, "going away"}, {co and co.closed, co and co.reason}, h.read(outp))
        assert.truthy(h.wait_for(function() return h.read(sse):find("rc=", 1, true) end), h.read(sse))
        assert.matches("rc=0", h.read(sse))
      end)
      h.stop_after(srv, ok, err)
    end)

    it("answers a WebSocket message still in flight, then closes its connection with 1001", function()
      -- round_robin with no reader holds the message until the drain hands it back.
      local srv = h.serve(string.format([[
http:
  address: 127.0.0.1:$PORT
  workers: %d
streams:
  held:
    input:
      http_server: {path: /in, ws_path: /in/ws}
    output:
      http_server: {path: /get, delivery: round_robin}
]], workers))
      local ok, err = pcall(function()
        local inp = client(srv, "watch", "/in/ws", "in", "held")
        assert.truthy(h.wait_for(function()
          local _, m = h.sh("curl -s -m 5 " .. srv.url .. "/metrics")
          return m:find('input_received{stream="held"[^}]*} 1')
        end), "the message did not arrive")
        srv.stop(true)
        local c = h.wait_for(function() return closed(inp) end)
        assert.are.equal(1001, c and c.closed, h.read(inp))
        assert.truthy(h.read(inp):find("no client took the message before shutdown", 1, true), h.read(inp))
      end)
      h.stop_after(srv, ok, err)
    end)

    it("closes a streams API reader's WebSocket with 1001 and ends its SSE cleanly", function()
      local srv = h.serve(string.format([[
http:
  address: 127.0.0.1:$PORT
  workers: %d
store:
  data_dir: ./data
]], workers))
      local ok, err = pcall(function()
        h.sh(string.format("curl -s -m 5 -XPOST -d '{}' %s/stream/s1", srv.url))
        local ws = client(srv, "watch", "/stream/s1/ws/a", "ws")
        local sse = srv.dir .. "/sse.txt"
        os.execute(string.format("(curl -sN -m 60 %s/stream/s1/sse/b; echo \"rc=$?\") > %s 2>&1 &", srv.url, sse))
        assert.truthy(h.wait_for(function() return (h.read(sse) or ""):find(": connected", 1, true) end), h.read(sse))
        srv.stop(true)
        local c = h.wait_for(function() return closed(ws) end)
        assert.are.same({1001, "going away"}, {c and c.closed, c and c.reason}, h.read(ws))
        assert.truthy(h.wait_for(function() return h.read(sse):find("rc=", 1, true) end), h.read(sse))
        assert.matches("rc=0", h.read(sse))
      end)
      h.stop_after(srv, ok, err)
    end)

    it("ends an /admin/live viewer's SSE response with its last chunk", function()
      local srv = h.serve(string.format([[
http:
  address: 127.0.0.1:$PORT
  workers: %d
input:
  generate: {interval: 1h, mapping: 'return {}'}
output:
  drop: {}
]], workers))
      local ok, err = pcall(function()
        -- curl exits 0 on the last chunk, 18 on a connection cut mid-stream.
        local sse = srv.dir .. "/live.txt"
        os.execute(string.format("(curl -sN -m 60 '%s/admin/live?interval=100'; echo \"rc=$?\") > %s 2>&1 &", srv.url, sse))
        -- a tick's event after the first: the viewer is fed by its feed
        assert.truthy(h.wait_for(function()
          return select(2, (h.read(sse) or ""):gsub("event: status", "")) >= 2
        end), h.read(sse))
        srv.stop(true)
        assert.truthy(h.wait_for(function() return h.read(sse):find("rc=", 1, true) end), h.read(sse))
        assert.matches("rc=0", h.read(sse))
      end)
      h.stop_after(srv, ok, err)
      h.rmdir(srv.dir)
    end)

    it("exits 0 within its shutdown bound while a WebSocket client never reads", function()
      local srv = h.serve(string.format([[
http:
  address: 127.0.0.1:$PORT
  workers: %d
shutdown_timeout: 20s
streams:
  big:
    input:
      generate: {interval: 5ms, mapping: 'return string.rep("x", 65536)'}
    output:
      http_server: {path: /get, ws_path: /big, max_buffer: 256MiB}
]], workers))
      local pid
      local ok, err = pcall(function()
        local _
        _, pid = client(srv, "stall", "/big", "stall")
        -- The kernel's buffers both ways are full: sluice's send queue to it holds MBs.
        local function send_q()
          local _, o = h.sh("ss -tnH state established '( sport = :" .. srv.port .. " )'")
          local most = 0
          for q in o:gmatch("%d+%s+(%d+)%s") do most = math.max(most, tonumber(q)) end
          return most
        end
        assert.truthy(h.wait_for(function() return send_q() > 1000000 end, 30), tostring(send_q()))
        assert.are.equal(0, srv.stop(true))
        assert.is_nil(srv.stderr():find("shutdown_timeout reached", 1, true), srv.stderr())
      end)
      if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
      h.stop_after(srv, ok, err)
    end)
  end)
end
