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
      local prom = require("spec.prom")
      assert.are.equal(1, prom.value(prom.samples(srv.url .. "/metrics"), "input_received_total", {stream = "main"}))
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
end)
