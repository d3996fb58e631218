-- examples/mediation/mqtt-sse.yaml end to end: mosquitto_pub publishes sensor
-- readings at QoS 1 to a real Mosquitto, sluice enriches them in Lua into a
-- durable stream and serves it as SSE to its page in headless Chromium. sluice
-- is killed (-9) mid-flow and started again: the page, resuming with
-- Last-Event-ID, ends up showing every reading the broker acknowledged to the
-- producer (at least once).
local h = require("spec.helpers")
local mq = require("spec.mqtt_helpers")
local json = h.json

local N = 300

-- The page's state as the browser driver last wrote it.
local function page(out)
  local s = h.read(out)
  return s and s ~= "" and json.decode(s) or {rows = {}}
end

-- The distinct readings (by n) the page shows, and how many rows it shows.
local function shown(out)
  local st, seen, n = page(out), {}, 0
  assert(not st.error, st.error)
  for _, r in ipairs(st.rows) do
    local k = assert(tonumber(r[2]), "a row that is no reading: " .. json.encode(r))
    if not seen[k] then seen[k] = r; n = n + 1 end
  end
  return seen, n, #st.rows
end

describe("mediation: MQTT → Lua → stream → SSE in a browser", function()
  local b
  setup(function() b = mq.start() end)
  teardown(function() if b then b.stop() end end)

  it("kill -9 of sluice mid-flow: the page ends with every reading the broker acknowledged, enriched", function()
    local yaml = h.read("examples/mediation/mqtt-sse.yaml")
      :gsub("%${HTTP_ADDRESS:[^}]*}", "127.0.0.1:$PORT"):gsub("%${MQTT_URL:[^}]*}", b.url)
    local function copy_page(dir) assert(os.execute("cp -r examples/mediation/public " .. dir)) end
    local srv = h.serve(yaml, {before = copy_page})
    local out, stop, acked = h.tmpname(".json"), h.tmpname(".stop"), h.tmpname(".acked")
    os.remove(stop)
    local ok, err = pcall(function()
      os.execute(string.format("node spec/node/mediation.js page %s %s %s 240 > %s.log 2>&1 &", srv.url, out, stop, out))
      assert.truthy(h.wait_for(function() return page(out).status == "live" end, 60), h.read(out .. ".log"))
      -- readings that are not ones (not JSON, no number, bytes that are not
      -- UTF-8, empty) go to the dead-letter stream, not to the page
      local bad = h.tmpname()
      h.write(bad, "\xff\xfe{\"celsius\":\xc3")
      assert.are.equal(0, b.pub("-q 1 -t sensors/x/reading -m 'not json'"))
      assert.are.equal(0, b.pub("-q 1 -t sensors/x/reading -m '{\"n\":\"x\",\"celsius\":\"warm\"}'"))
      assert.are.equal(0, b.pub("-q 1 -t sensors/x/reading -f " .. bad))
      assert.are.equal(0, b.pub("-q 1 -t sensors/x/reading -n"))
      os.remove(bad)
      assert.truthy(h.wait_for(function()
        local _, info = h.sh("curl -s -m 2 " .. srv.url .. "/stream/readings-dead/info")
        return (info or ""):find('"message_count":4', 1, true)
      end, 30))
      -- the producer: one mosquitto_pub per reading; exit 0 means the broker
      -- sent its PUBACK, and only then is the reading counted as acknowledged
      os.execute(string.format(
        "(for i in $(seq 1 %d); do t=$(( (i %% 7) * 5 - 2 )); " ..
        "timeout 20 mosquitto_pub -p %d -q 1 -t sensors/s$((i %% 3))/reading -m \"{\\\"n\\\":$i,\\\"celsius\\\":$t.5}\" " ..
        "&& echo $i >> %s; done; echo done >> %s) > /dev/null 2>&1 &", N, b.port, acked, acked))
      assert.truthy(h.wait_for(function() local _, n = shown(out) return n >= 30 end, 60))
      srv.kill()
      local _, before = shown(out)
      local acked_before = #h.lines(h.read(acked) or "")
      -- killed mid-flow: the page had some, the producer was still going
      assert.is_true(before >= 30 and before < N, "shown before the kill: " .. before)
      assert.is_true(acked_before < N, "acknowledged before the kill: " .. acked_before)
      assert.truthy(h.wait_for(function() return page(out).status == "reconnecting" end, 30))
      srv = h.serve(yaml, {port = srv.port, dir = srv.dir})
      local lines = h.wait_lines(acked, N + 1, 120)
      assert.are.equal("done", lines[#lines])
      assert.are.equal(N + 1, #lines)
      local seen, n, rows
      h.wait_for(function()
        seen, n, rows = shown(out)
        return n >= N
      end, 120)
      for i = 1, N do
        local r = seen[i]
        assert.truthy(r, "reading " .. i .. " acknowledged by the broker and not shown")
        local t = tonumber(((i % 7) * 5 - 2) .. ".5")
        assert.are.same({"s" .. (i % 3), tostring(i), tostring(t), string.format("%.1f", t * 9 / 5 + 32),
          t > 30 and "hot" or (t < 5 and "cold" or "ok")}, r)
      end
      assert.is_true(rows >= N)
      print(string.format("\n  mqtt mediation: %d shown before kill -9 (%d acknowledged), %d rows after (%d duplicates)",
        before, acked_before, rows, rows - N))
    end)
    h.write(stop, "")
    h.stop_after(srv, ok, err)
    os.remove(out); os.remove(acked); os.remove(out .. ".log")
  end)
end)
