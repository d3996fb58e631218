-- The embedded event store through its REST, SSE and WebSocket API (curl,
-- Python websockets) and through pipelines (`stream` input and output),
-- including crash safety under kill -9.
local h = require("spec.helpers")
local json = h.json

local CONFIG = [[
http:
  address: 127.0.0.1:$PORT
store:
  data_dir: ./data
  segment_bytes: 4KiB
input:
  generate: {interval: 1h, mapping: 'return 1'}
output:
  drop: {}
]]

local function curl(srv, args)
  local _, out = h.sh("curl -s -m 10 -w '\\n%{http_code}' " .. args:gsub("URL", srv.url))
  local body, code = out:match("^(.*)\n(%d+)$")
  local ok, j = pcall(json.decode, body)
  return tonumber(code), ok and j or body
end

local function post(srv, path, body)
  return curl(srv, "-X POST -H 'Content-Type: application/json' --data-binary " .. h.shell_quote(json.encode(body)) ..
    " URL" .. path)
end

local WS = "/usr/bin/python3 spec/tools/ws_client.py "

describe("stream store API", function()
  local srv
  setup(function() srv = h.serve(CONFIG) end)
  teardown(function() if srv then srv.stop() end end)

  it("creates, lists, describes and deletes streams, with JSON errors", function()
    local code, s = post(srv, "/stream/a1", {partitions = 2, retention_hours = 1})
    assert.are.equal(201, code)
    assert.are.equal(2, s.partition_count)
    assert.are.equal(200, (post(srv, "/stream/a1", {partitions = 2, retention_hours = 1})))
    local c409, e = post(srv, "/stream/a1", {partitions = 3})
    assert.are.equal(409, c409)
    assert.matches("other settings", e.error)
    assert.are.equal(400, (post(srv, "/stream/a1x", {partitions = "two"})))
    assert.are.equal(400, (post(srv, "/stream/.hidden", {})))
    local _, l = curl(srv, "URL/stream/list")
    assert.is_true(#l.streams >= 1)
    local c404, e404 = curl(srv, "URL/stream/nope/info")
    assert.are.equal(404, c404)
    assert.are.equal(404, e404.status)
    assert.are.equal(200, (curl(srv, "-X DELETE URL/stream/a1")))
    assert.are.equal(404, (curl(srv, "URL/stream/a1/info")))
    assert.is_nil(h.read(srv.dir .. "/data/a1/stream.json"))
  end)

  it("publishes singly and in batches, keys keep per-partition order, consume pages by offset", function()
    post(srv, "/stream/k3", {partitions = 3})
    local events = {}
    for i = 1, 60 do events[i] = {event = "e", data = {i = i}, partition_key = "user-" .. (i % 5)} end
    local code, r = post(srv, "/stream/k3/publish", {events = events})
    assert.are.equal(200, code)
    assert.are.equal(60, #r.offsets)
    -- the same key always lands on the same partition, in publish order
    local part_of, last = {}, {}
    for i, o in ipairs(r.offsets) do
      local k = "user-" .. (i % 5)
      part_of[k] = part_of[k] or o.partition
      assert.are.equal(part_of[k], o.partition)
      if last[o.partition] then assert.are.equal(last[o.partition] + 1, o.offset) end
      last[o.partition] = o.offset
    end
    local seen, n = {}, 0
    for p = 0, 2 do
      local from = 0
      for _ = 1, 20 do
        local c, page = curl(srv, string.format("'URL/stream/k3/consume/pager?partition=%d&from_offset=%d&limit=7'", p, from))
        assert.are.equal(200, c)
        if #page.events == 0 then break end
        for _, e in ipairs(page.events) do
          assert.are.equal(p, e.partition)
          assert.is_nil(seen[e.data.i])
          seen[e.data.i] = true
          n = n + 1
        end
        from = page.next_offset
      end
    end
    assert.are.equal(60, n)
    local c400 = post(srv, "/stream/k3/publish", {events = {{data = 1}, {nodata = true}}})
    assert.are.equal(400, c400)
  end)

  it("describes the API in /openapi.json (OpenAPI 3.1)", function()
    local code, doc = curl(srv, "URL/openapi.json")
    assert.are.equal(200, code)
    assert.are.equal("3.1.0", doc.openapi)
    for _, p in ipairs({"/stream/list", "/stream/{name}", "/stream/{name}/publish", "/stream/{name}/consume/{subscriber}",
      "/stream/{name}/sse/{subscriber}", "/stream/{name}/ws/{subscriber}", "/stream/{name}/group/{group}/consume",
      "/stream/{name}/group/{group}/commit", "/stream/{name}/groups", "/stream/{name}/stats"}) do
      assert.is_table(doc.paths[p], p)
    end
  end)

  it("answers 416 with the valid range, or resets with offset_reset", function()
    post(srv, "/stream/r1", {})
    post(srv, "/stream/r1/publish", {events = {{data = 1}, {data = 2}}})
    local code, e = curl(srv, "'URL/stream/r1/consume/x?from_offset=9'")
    assert.are.equal(416, code)
    assert.are.equal(0, e.min_offset)
    assert.are.equal(1, e.max_offset)
    local c2, r = curl(srv, "'URL/stream/r1/consume/x?from_offset=9&offset_reset=latest'")
    assert.are.equal(200, c2)
    assert.are.equal(0, #r.events)
    assert.are.equal(2, r.next_offset)
  end)

  it("remembers a subscriber's position and wakes a long-poll at the next publish", function()
    post(srv, "/stream/lp", {})
    post(srv, "/stream/lp/publish", {data = "a"})
    local _, r = curl(srv, "URL/stream/lp/consume/sub1")
    assert.are.equal("a", r.events[1].data)
    local _, r2 = curl(srv, "URL/stream/lp/consume/sub1")
    assert.are.equal(0, #r2.events)
    local t0 = os.time()
    local poll = io.popen("curl -s -m 10 '" .. srv.url .. "/stream/lp/consume/sub1?wait_ms=5000'")
    os.execute("sleep 0.3")
    post(srv, "/stream/lp/publish", {data = "b"})
    local got = json.decode(poll:read("a"))
    poll:close()
    assert.are.equal("b", got.events[1].data)
    assert.is_true(os.time() - t0 < 4)
  end)

  it("serves SSE with partition:offset ids, resumes after Last-Event-ID, filters types, ends on end_events", function()
    post(srv, "/stream/ev", {})
    post(srv, "/stream/ev/publish", {events = {
      {event = "WORKFLOW_STARTED", data = 1}, {event = "LLM_PARTIAL", data = "a\nb"}, {event = "LLM_OUTPUT", data = 3},
      {event = "STREAM_END", data = 4}, {event = "AFTER", data = 5}}})
    local _, out = h.sh("curl -s -N -m 3 '" .. srv.url .. "/stream/ev/sse/s?types=LLM_OUTPUT&end_events=STREAM_END'")
    -- only LLM_OUTPUT passes the filter, but the end event is never swallowed; then the server ends it
    local names = {}
    for ev in out:gmatch("event: ([%w_]+)") do names[#names + 1] = ev end
    assert.are.same({"LLM_OUTPUT", "STREAM_END"}, names)
    assert.matches("id: 0:2\n", out)
    -- resume after 0:1 with Last-Event-ID: no gap, no duplicate
    local _, again = h.sh("curl -s -N -m 3 -H 'Last-Event-ID: 0:1' '" .. srv.url .. "/stream/ev/sse/t?end_events=STREAM_END'")
    local ids = {}
    for id in again:gmatch("id: ([%d:,%-]+)") do ids[#ids + 1] = id end
    assert.are.same({"0:2", "0:3"}, ids)
    -- a stream's own end_events apply when the reader names none
    post(srv, "/stream/ev2", {end_events = "STREAM_END"})
    post(srv, "/stream/ev2/publish", {events = {{event = "A", data = 1}, {event = "STREAM_END", data = 2}, {event = "B", data = 3}}})
    local _, own = h.sh("curl -s -N -m 3 '" .. srv.url .. "/stream/ev2/sse/s'")
    local seen = {}
    for ev in own:gmatch("event: ([%w_]+)") do seen[#seen + 1] = ev end
    assert.are.same({"A", "STREAM_END"}, seen)
    -- multi-line data is one JSON data line
    local _, all = h.sh("curl -s -N -m 3 '" .. srv.url .. "/stream/ev/sse/u?end_events=LLM_PARTIAL'")
    local d = json.decode(all:match("event: LLM_PARTIAL\ndata: ([^\n]+)"))
    assert.are.equal("a\nb", d.data)
  end)

  it("lets a slow SSE reader lag without slowing a fast one", function()
    post(srv, "/stream/slow", {})
    -- ~6 MiB of events: more than the 1 MiB a reader may have waiting in its
    -- socket, and more than one 4 MiB read turn
    local big = string.rep("y", 30000)
    for _ = 1, 50 do   -- 120 KB bodies: a command-line argument holds at most 128 KiB
      local evs = {}
      for i = 1, 4 do evs[i] = {event = "e", data = big} end
      post(srv, "/stream/slow/publish", {events = evs})
    end
    post(srv, "/stream/slow/publish", {event = "END", data = 0})
    -- the slow reader takes 1 KiB/s and stays connected while the fast one reads everything
    local slow_pid = h.tmpname()
    os.execute("curl -s -N -m 8 --limit-rate 1k -o /dev/null '" .. srv.url ..
      "/stream/slow/sse/slow?end_events=END' & echo $! > " .. slow_pid)
    os.execute("sleep 0.3")
    local function now()
      local _, o = h.sh("date +%s.%N")
      return tonumber(o)
    end
    local t0 = now()
    local _, fast = h.sh("curl -s -N -m 10 '" .. srv.url .. "/stream/slow/sse/fast?end_events=END' | grep -c '^data: '")
    local took = now() - t0
    os.execute("kill $(cat " .. slow_pid .. ") 2>/dev/null")
    os.remove(slow_pid)
    assert.are.equal("201", fast:match("%d+"))
    assert.is_true(took < 5, "the fast reader took " .. took .. " s")
    -- a reader at 2 MiB/s is paused while its socket is full and resumed as it drains: all of it
    local _, paced = h.sh("curl -s -N -m 15 --limit-rate 2M '" .. srv.url ..
      "/stream/slow/sse/paced?end_events=END' | grep -c '^data: '")
    assert.are.equal("201", paced:match("%d+"))
    -- the server is still fine
    assert.are.equal(200, (curl(srv, "URL/stream/slow/stats")))
  end)

  it("pushes over WebSocket from an offset and live", function()
    post(srv, "/stream/wsd", {})
    post(srv, "/stream/wsd/publish", {events = {{data = 1}, {data = 2}}})
    local ws = io.popen(WS .. "'ws://127.0.0.1:" .. srv.port .. "/stream/wsd/ws/w?from_offset=1' --recv 2 --wait 4")
    os.execute("sleep 0.5")
    post(srv, "/stream/wsd/publish", {data = 3})
    local lines = h.lines(ws:read("a"))
    ws:close()
    local got = {}
    for _, l in ipairs(lines) do
      local m = json.decode(l)
      if m.text then got[#got + 1] = json.decode(m.text).data end
    end
    assert.are.same({2, 3}, got)
  end)

  it("changes an existing group's settings on a POST that names them and keeps the others", function()
    post(srv, "/stream/gset", {partitions = 1})
    local c1, g1 = post(srv, "/stream/gset/group/g", {auto_commit = false, session_timeout_ms = 700})
    assert.are.equal(201, c1)
    assert.is_false(g1.auto_commit)
    local c2, g2 = post(srv, "/stream/gset/group/g", {auto_commit = true})
    assert.are.equal(200, c2)
    assert.is_true(g2.auto_commit)
    assert.are.equal(700, g2.session_timeout_ms)
    local _, g3 = curl(srv, "URL/stream/gset/group/g")
    assert.is_true(g3.auto_commit)
    assert.are.equal(700, g3.session_timeout_ms)
  end)

  it("spreads a group's partitions over its consumers and rebalances when one leaves", function()
    post(srv, "/stream/g4", {partitions = 4})
    local evs = {}
    for i = 1, 40 do evs[i] = {data = i, partition_key = "k" .. i} end
    post(srv, "/stream/g4/publish", {events = evs})
    assert.are.equal(201, (post(srv, "/stream/g4/group/workers", {auto_commit = false, session_timeout_ms = 500})))
    local _, a = curl(srv, "'URL/stream/g4/group/workers/consume?consumer=a&limit=100'")
    local _, b = curl(srv, "'URL/stream/g4/group/workers/consume?consumer=b&limit=100'")
    assert.are.same({1, 3}, b.partitions)
    -- a took everything before b joined; b is handed partitions 1 and 3 afresh (nothing committed)
    assert.are.equal(40, #a.events)
    -- commit b's partitions, then let b go silent: a gets all 4 back, and only what was not committed
    for _, e in ipairs(b.events) do
      post(srv, "/stream/g4/group/workers/commit", {partition = e.partition, offset = e.offset + 1})
    end
    os.execute("sleep 0.7")
    local _, a2 = curl(srv, "'URL/stream/g4/group/workers/consume?consumer=a&limit=100'")
    assert.are.same({0, 1, 2, 3}, a2.partitions)
    for _, e in ipairs(a2.events) do assert.is_true(e.partition == 0 or e.partition == 2, json.encode(e)) end
    local _, gs = curl(srv, "URL/stream/g4/groups")
    assert.are.equal("workers", gs.groups[1].group)
    assert.are.equal(1, #gs.groups[1].members)
    -- a consumer that leaves hands its partitions over at once
    curl(srv, "'URL/stream/g4/group/workers/consume?consumer=c&limit=1'")
    local c200, left = curl(srv, "-X DELETE URL/stream/g4/group/workers/members/c")
    assert.are.equal(200, c200)
    assert.are.equal(1, #left.members)
    assert.are.same({0, 1, 2, 3}, left.members[1].partitions)
    assert.are.equal(404, (curl(srv, "-X DELETE URL/stream/g4/group/workers/members/nobody")))
  end)
end)

describe("records whose bytes are not JSON or not UTF-8", function()
  -- http_server → stream: the request body, metadata, event name and key are
  -- whatever bytes the client and the script made of them
  local YAML = [[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
streams:
  write:
    input: {http_server: {path: /in}}
    pipeline:
      processors:
        - lua: 'meta.raw = "\xff\xfe"; meta.event = "ev\xff"'
    output: {stream: {name: bin, partition_key: '${! "k" .. string.char(0xc3) }'}}
  read:
    input: {stream: {name: bin, group: copy}}
    pipeline:
      processors:
        - lua: 'return json.encode({raw = meta.raw, event = meta.event, key = meta.stream_key, body = content()})'
    output: {file: {path: out.ndjson}}
]]

  local function b64(s)
    local _, out = h.sh("base64 -w0", s)
    return out
  end

  local function check(e, body)
    assert.are.equal(b64(body), e.data)
    assert.are.equal("base64", e.encoding)
    assert.are.equal(b64("ev\xff"), e.event)
    assert.are.equal("base64", e.event_encoding)
    assert.are.equal(b64("k\xc3"), e.key)
    assert.are.equal("base64", e.key_encoding)
    assert.are.same({base64 = b64("\xff\xfe")}, e.headers.raw)
  end

  it("serves them on consume, group consume, SSE and WebSocket, before and after a restart; a stream input gets the bytes back", function()
    local srv = h.serve(YAML)
    for _, body in ipairs({"\xff", "{\"ok\":1}", "\xc3\x28 not text"}) do
      local f = h.write(h.tmpname(), body)
      assert.are.equal(200, (curl(srv, "--data-binary @" .. f .. " URL/in")))
      os.remove(f)
    end
    for round = 1, 2 do
      local code, r = curl(srv, "'URL/stream/bin/consume/c" .. round .. "?from_offset=0'")
      assert.are.equal(200, code, tostring(r))
      assert.are.equal(3, #r.events)
      check(r.events[1], "\xff")
      assert.are.same({ok = 1}, r.events[2].data)   -- JSON stays JSON
      assert.is_nil(r.events[2].encoding)
      check(r.events[3], "\xc3\x28 not text")
      post(srv, "/stream/bin/group/g" .. round, {})
      local gc, g = curl(srv, "'URL/stream/bin/group/g" .. round .. "/consume?consumer=a&limit=10'")
      assert.are.equal(200, gc, tostring(g))
      assert.are.equal(3, #g.events)
      check(g.events[1], "\xff")
      -- SSE: one JSON data line per record, no `event:` line for a name that is not UTF-8
      local _, sse = h.sh("curl -s -N -m 2 '" .. srv.url .. "/stream/bin/sse/s" .. round .. "?from_offset=0'")
      local datas = {}
      for d in sse:gmatch("\ndata: ([^\n]+)") do datas[#datas + 1] = json.decode(d) end
      assert.are.equal(3, #datas, sse)
      check(datas[1], "\xff")
      assert.is_nil(sse:find("\nevent:", 1, true))
      assert.is_nil(sse:find("(null)", 1, true))
      local _, ws = h.sh(WS .. "'ws://127.0.0.1:" .. srv.port .. "/stream/bin/ws/w" .. round .. "?from_offset=0' --recv 3 --wait 3")
      local texts = {}
      for _, l in ipairs(h.lines(ws)) do
        local m = json.decode(l)
        if m.text then texts[#texts + 1] = json.decode(m.text) end
      end
      assert.are.equal(3, #texts, ws)
      check(texts[3], "\xc3\x28 not text")
      if round == 1 then
        srv.stop(true)
        srv = h.serve(YAML, {dir = srv.dir, port = srv.port})
      end
    end
    -- the stream input hands the same bytes back as content and metadata
    local lines = h.wait_lines(srv.dir .. "/out.ndjson", 3)
    srv.stop()
    assert.are.equal(3, #lines)
    local first = json.decode(lines[1])
    assert.are.same({raw = "\xff\xfe", event = "ev\xff", key = "k\xc3", body = "\xff"},
      {raw = first.raw, event = first.event, key = first.key, body = first.body})
  end)

  it("keeps a NUL in a published event name and serves it", function()
    local srv = h.serve(CONFIG)
    post(srv, "/stream/nul", {})
    local f = h.write(h.tmpname(), '{"event":"a\\u0000b","data":"x\\u0000y","partition_key":"\\udc00"}')
    local code = curl(srv, "--data-binary @" .. f .. " URL/stream/nul/publish")
    os.remove(f)
    assert.are.equal(200, code)
    local _, r = curl(srv, "'URL/stream/nul/consume/c?from_offset=0'")
    srv.stop()
    assert.are.equal("a\0b", r.events[1].event)
    assert.are.equal("x\0y", r.events[1].data)
    assert.are.equal("base64", r.events[1].key_encoding)   -- a lone surrogate is not UTF-8
  end)
end)

describe("stream store durability", function()
  -- A process killed with -9 loses nothing the kernel holds, so these runs
  -- simulate a power cut as well: with SLUICE_TEST_POWER_LOSS=1 each start
  -- first cuts the partitions back to what their last fsync covered.
  local POWER_LOSS = {env = "SLUICE_TEST_POWER_LOSS=1"}

  -- Publishes one event at a time until at least `want` were acknowledged,
  -- kills sluice (-9) while the publisher is still going, and returns the
  -- acknowledged {offset, n} pairs.
  local function publish_then_kill(srv, stream, want)
    local pub = io.popen("/usr/bin/python3 spec/tools/publisher.py " .. srv.url .. "/stream/" .. stream .. "/publish 100000")
    local acked = {}
    for line in pub:lines() do
      local off, n = line:match("^(%d+) (%d+)$")
      acked[#acked + 1] = {tonumber(off), tonumber(n)}
      if #acked == want then srv.kill() end
    end
    pub:close()
    assert.is_true(#acked >= want, "only " .. #acked .. " publishes acknowledged")
    assert.is_true(#acked < 100000, "the kill came after the publisher was done")
    return acked
  end

  local function restart(srv)
    return h.serve(CONFIG, {dir = srv.dir, port = srv.port, env = POWER_LOSS.env})
  end

  it("keeps every acknowledged event across kill -9 and a simulated power cut (fsync always), several times", function()
    local srv = h.serve(CONFIG, POWER_LOSS)
    finally(function() srv.stop() end)
    post(srv, "/stream/crash", {fsync = "always"})
    local acked = {}
    for round = 1, 3 do
      for _, a in ipairs(publish_then_kill(srv, "crash", 50)) do acked[#acked + 1] = {a[1], round * 1000000 + a[2]} end
      srv = restart(srv)
      local _, info = curl(srv, "URL/stream/crash/info")
      assert.is_true(info.message_count >= #acked, round .. ": " .. info.message_count .. " < " .. #acked)
    end
    -- every acknowledged offset holds what was published, in order
    local all, from = {}, 0
    for _ = 1, 1000 do
      local _, page = curl(srv, "'URL/stream/crash/consume/check?from_offset=" .. from .. "&limit=10000'")
      if #page.events == 0 then break end
      for _, e in ipairs(page.events) do all[e.offset] = e.data.n end
      from = page.next_offset
    end
    local round, last = 1, -1
    for _, a in ipairs(acked) do
      local n = a[2] % 1000000
      if math.floor(a[2] / 1000000) ~= round then round, last = math.floor(a[2] / 1000000), -1 end
      assert.are.equal(n, all[a[1]], "offset " .. a[1])
      assert.is_true(n > last)
      last = n
    end
  end)

  it("loses acknowledged events in the same power cut with fsync never: the simulation is a real loss", function()
    local srv = h.serve(CONFIG, POWER_LOSS)
    finally(function() srv.stop() end)
    -- one segment (no roll fsyncs it): nothing of this run is ever synced
    post(srv, "/stream/lossy", {fsync = "never", segment_bytes = 1048576})
    local acked = publish_then_kill(srv, "lossy", 50)
    srv = restart(srv)
    local _, info = curl(srv, "URL/stream/lossy/info")
    assert.are.equal(0, info.message_count, #acked .. " acknowledged")
  end)

  it("resumes SSE after Last-Event-ID, a subscriber and a group's commits across a restart", function()
    local srv = h.serve(CONFIG)
    post(srv, "/stream/rs", {partitions = 2})
    local evs = {}
    for i = 1, 10 do evs[i] = {event = "e", data = i, partition_key = "k" .. (i % 3)} end
    post(srv, "/stream/rs/publish", {events = evs})
    local _, first = h.sh("curl -s -N -m 2 '" .. srv.url .. "/stream/rs/sse/s?end_events=e' ")
    local id = first:match("id: ([%d:,%-]+)")
    local _, page = curl(srv, "'URL/stream/rs/consume/sub?limit=4'")
    assert.are.equal(4, #page.events)
    post(srv, "/stream/rs/group/g", {auto_commit = false})
    local _, got = curl(srv, "'URL/stream/rs/group/g/consume?consumer=c&limit=100'")
    for _, e in ipairs(got.events) do
      if e.data <= 5 then post(srv, "/stream/rs/group/g/commit", {partition = e.partition, offset = e.offset + 1}) end
    end
    srv.stop(true)
    srv = h.serve(CONFIG, {dir = srv.dir, port = srv.port})
    -- SSE: everything after the one event seen, once
    local _, rest = h.sh("curl -s -N -m 2 -H 'Last-Event-ID: " .. id .. "' '" .. srv.url .. "/stream/rs/sse/s2'")
    local n = select(2, rest:gsub("\ndata: ", ""))
    assert.are.equal(9, n + (rest:match("^data: ") and 1 or 0))
    -- WebSocket: the same resume, from the id list of an event it saw
    local ws_id = first:match("id: ([%d:,%-]+)")
    local _, ws_out = h.sh(WS .. "'ws://127.0.0.1:" .. srv.port .. "/stream/rs/ws/w?last_event_id=" .. ws_id .. "' --recv 9 --wait 3")
    local ws_n = 0
    for _, l in ipairs(h.lines(ws_out)) do if json.decode(l).text then ws_n = ws_n + 1 end end
    assert.are.equal(9, ws_n)
    -- the subscriber goes on after its 4
    local _, more = curl(srv, "'URL/stream/rs/consume/sub?limit=100'")
    assert.are.equal(6, #more.events)
    -- the group gets what it had not committed (per partition, after each commit)
    local _, again = curl(srv, "'URL/stream/rs/group/g/consume?consumer=c&limit=100'")
    local left = {}
    for _, e in ipairs(again.events) do left[#left + 1] = e.data end
    table.sort(left)
    assert.are.same({6, 7, 8, 9, 10}, left)
    srv.stop()
  end)

  local function segment(srv, stream, p)
    local _, f = h.sh("ls " .. srv.dir .. "/data/" .. stream .. "/" .. (p or 0) .. "/*.log | tail -1")
    return (f:gsub("%s+$", ""))
  end

  local function size_of(f)
    return tonumber(select(2, h.sh("stat -c %s " .. f)):match("%d+"))
  end

  it("cuts a torn last record at start-up after copying it aside, and serves the rest", function()
    local srv = h.serve(CONFIG)
    finally(function() srv.stop() end)
    post(srv, "/stream/torn", {})
    for i = 1, 5 do post(srv, "/stream/torn/publish", {data = i}) end
    srv.stop(true)
    local f = segment(srv, "torn")
    local whole = h.read(f)
    assert(os.execute("truncate -s " .. (#whole - 5) .. " " .. f))
    srv = h.serve(CONFIG, {dir = srv.dir, port = srv.port})
    local _, r = curl(srv, "'URL/stream/torn/consume/x?from_offset=0'")
    assert.are.same({1, 2, 3, 4}, {r.events[1].data, r.events[2].data, r.events[3].data, r.events[4].data})
    assert.are.equal(4, #r.events)
    local cut = tonumber(srv.stderr():match("cut a torn tail of (%d+) bytes"))
    assert.is_number(cut, srv.stderr())
    -- what was cut is in <segment>.<byte>.corrupt, byte for byte
    local kept = size_of(f)
    assert.are.equal(whole:sub(kept + 1, #whole - 5), h.read(f .. "." .. kept .. ".corrupt"))
    assert.are.equal(#whole - 5 - kept, cut)
    assert.are.equal(200, (curl(srv, "URL/ready")))
    -- and the log goes on from there
    local _, p = post(srv, "/stream/torn/publish", {data = 6})
    assert.are.equal(4, p.offset)
  end)

  it("stops a partition at a flipped byte with valid records after it: served up to the damage, nothing cut", function()
    local srv = h.serve(CONFIG)
    finally(function() srv.stop() end)
    post(srv, "/stream/flip", {partitions = 2, segment_bytes = 1048576})
    local evs = {}
    for i = 1, 200 do evs[i] = {data = {i = i}, partition_key = "a"} end   -- "a" goes to partition 0
    post(srv, "/stream/flip/publish", {events = evs})
    assert.are.equal(0, select(2, post(srv, "/stream/flip/publish", {data = 0, partition_key = "a"})).partition)
    srv.stop(true)
    local f = segment(srv, "flip", 0)
    local bytes = h.read(f)
    local at = math.floor(#bytes / 2)
    bytes = bytes:sub(1, at) .. string.char(bit.bxor(bytes:byte(at + 1), 0x55)) .. bytes:sub(at + 2)
    h.write(f, bytes)
    srv = h.serve(CONFIG, {dir = srv.dir, port = srv.port})
    -- /ready, /admin/status and the log say where
    local code, ready = curl(srv, "URL/ready")
    assert.are.equal(503, code)
    assert.matches("partition 0 is stopped: .*corrupt record at byte %d+ %(offset %d+%)", ready.problems.store.flip)
    local _, status = curl(srv, "URL/admin/status")
    assert.are.equal(ready.problems.store.flip, status.problems.store.flip)
    assert.matches("level=error.*corrupt record at byte", srv.stderr())
    -- what comes before the damage is served, in order
    local _, r = curl(srv, "'URL/stream/flip/consume/x?partition=0&from_offset=0&limit=1000'")
    assert.is_true(#r.events > 50 and #r.events < 150, #r.events .. " served")
    for i, e in ipairs(r.events) do assert.are.equal(i, e.data.i) end
    -- the damaged partition takes nothing; unkeyed records go to the others
    local c503, e = post(srv, "/stream/flip/publish", {data = 1, partition_key = "a"})
    assert.are.equal(503, c503)
    assert.matches("partition 0 is stopped", e.error)
    local c200, ok = post(srv, "/stream/flip/publish", {events = {{data = 1}, {data = 2}}})
    assert.are.equal(200, c200)
    assert.are.same({1, 1}, {ok.offsets[1].partition, ok.offsets[2].partition})
    -- nothing was cut or copied: the file is as it was found
    assert.are.equal(bytes, h.read(f))
    assert.are.equal("0", select(2, h.sh("ls " .. srv.dir .. "/data/flip/0 | grep -c corrupt")):match("%d+"))
  end)

  it("answers a batch publish on a full disk 507 naming ENOSPC and keeps none of it; writes resume when there is room", function()
    local mnt
    local srv = h.serve(CONFIG, {before = function(dir)
      mnt = dir .. "/data"
      assert(os.execute("mkdir -p " .. mnt .. " && mount -t tmpfs -o size=1m tmpfs " .. mnt),
        "a disk-full spec needs to mount a tmpfs (root)")
    end})
    finally(function()
      srv.stop(true)
      os.execute("umount " .. mnt)
      h.rmdir(srv.dir)
    end)
    post(srv, "/stream/full", {partitions = 2, fsync = "always"})
    -- "a" goes to partition 0, "d" to partition 1
    for _, k in ipairs({"a", "d", "a", "d"}) do post(srv, "/stream/full/publish", {data = k, partition_key = k}) end
    post(srv, "/stream/full/group/g", {auto_commit = false})
    assert.are.equal(200, (post(srv, "/stream/full/group/g/commit", {partition = 0, offset = 1})))
    local offsets = h.read(mnt .. "/full/offsets.json")
    -- a full disk: a commit is answered 500 naming ENOSPC, and the saved offsets stay whole
    h.sh("dd if=/dev/zero of=" .. mnt .. "/filler bs=4k")
    local c500, ce = post(srv, "/stream/full/group/g/commit", {partition = 0, offset = 2})
    assert.are.equal(500, c500)
    assert.matches("No space left on device", ce.error)
    assert.are.equal(offsets, h.read(mnt .. "/full/offsets.json"))
    assert.is_nil(h.read(mnt .. "/full/offsets.json.tmp"))
    local _, g = curl(srv, "URL/stream/full/group/g")
    assert.are.equal(1, g.committed[1])   -- what is on disk, not what was refused
    -- 16 KiB free: room for the small records, not the big ones
    h.sh("truncate -s -16k " .. mnt .. "/filler")
    local big = string.rep("x", 30000)
    local batch = {events = {{data = "s1", partition_key = "a"}, {data = "s2", partition_key = "a"},
      {data = big, partition_key = "d"}, {data = big, partition_key = "d"}}}
    local code, e = post(srv, "/stream/full/publish", batch)
    assert.are.equal(507, code)
    assert.matches("No space left on device", e.error)
    local _, info = curl(srv, "URL/stream/full/info")
    assert.are.equal(4, info.message_count)   -- not 6: partition 0's two were taken back
    local _, page = curl(srv, "'URL/stream/full/consume/c?from_offset=0&partition=0'")
    assert.are.same({"a", "a"}, {page.events[1].data, page.events[2].data, page.events[3]})
    -- room again: the same batch is stored whole, right after what was there
    os.remove(mnt .. "/filler")
    local c200, r = post(srv, "/stream/full/publish", batch)
    assert.are.equal(200, c200)
    assert.are.same({2, 3, 2, 3}, {r.offsets[1].offset, r.offsets[2].offset, r.offsets[3].offset, r.offsets[4].offset})
    -- and after a crash every record reads back (CRCs intact), nothing half-written, no torn tail
    srv.kill()
    srv = h.serve(CONFIG, {dir = srv.dir, port = srv.port})
    local got = {}
    for p = 0, 1 do
      local c, pg = curl(srv, "'URL/stream/full/consume/v?from_offset=0&partition=" .. p .. "'")
      assert.are.equal(200, c)
      for _, ev in ipairs(pg.events) do got[#got + 1] = #ev.data end
    end
    assert.are.same({1, 1, 2, 2, 1, 1, 30000, 30000}, got)
    assert.is_nil(srv.stderr():find("torn tail", 1, true))
    assert.are.equal(200, (curl(srv, "URL/ready")))
  end)

  it("reports a stream it cannot open and positions it cannot read, and never starts them over", function()
    local srv = h.serve(CONFIG)
    finally(function() srv.stop() end)
    for _, n in ipairs({"bad", "gone", "subs", "grp"}) do post(srv, "/stream/" .. n, {partitions = 2}) end
    post(srv, "/stream/subs/publish", {events = {{data = 1}, {data = 2}}})
    curl(srv, "URL/stream/subs/consume/s1")
    post(srv, "/stream/grp/group/g", {})
    post(srv, "/stream/grp/group/h", {})
    srv.stop(true)
    local d = srv.dir .. "/data/"
    h.write(d .. "bad/stream.json", '{"partitions": 99999}')
    os.remove(d .. "gone/stream.json")
    h.write(d .. "subs/offsets.json", "{not json")
    h.write(d .. "grp/offsets.json", '{"group":{"g":"x","h":[0,0]}}')
    srv = h.serve(CONFIG, {dir = srv.dir, port = srv.port})
    local code, ready = curl(srv, "URL/ready")
    assert.are.equal(503, code)
    local p = ready.problems.store
    assert.matches("partitions", p.bad)
    assert.matches("stream.json", p.gone)
    assert.matches("offsets.json cannot be read", p.subs)
    assert.matches("group g", p.grp)
    local _, status = curl(srv, "URL/admin/status")
    assert.are.same(p, status.problems.store)
    for _, n in ipairs({"bad", "gone", "subs", "grp"}) do assert.matches("level=error.*stream " .. n, srv.stderr()) end
    -- a stream that cannot be opened answers 503 with why, and is not created again over its files
    local c503, e = curl(srv, "URL/stream/bad/info")
    assert.are.equal(503, c503)
    assert.matches("partitions", e.error)
    assert.are.equal(409, (post(srv, "/stream/bad", {})))
    assert.are.equal('{"partitions": 99999}', h.read(d .. "bad/stream.json"))
    -- positions that cannot be read are not served (nor reset, nor written over)
    assert.are.equal(503, (curl(srv, "URL/stream/subs/consume/s1")))
    assert.are.equal(503, (curl(srv, "'URL/stream/subs/group/g/consume?consumer=c'")))
    assert.are.equal(503, (curl(srv, "-N -m 2 URL/stream/subs/sse/s1")))
    assert.are.equal("{not json", h.read(d .. "subs/offsets.json"))
    assert.are.equal(200, (post(srv, "/stream/subs/publish", {data = 3})))   -- the records themselves are fine
    -- a bad entry stops only its own group
    assert.are.equal(503, (curl(srv, "'URL/stream/grp/group/g/consume?consumer=c'")))
    assert.are.equal(200, (curl(srv, "'URL/stream/grp/group/h/consume?consumer=c'")))
    -- DELETE is the operator's way to give a broken stream up
    assert.are.equal(200, (curl(srv, "-X DELETE URL/stream/bad")))
    assert.is_nil(h.read(d .. "bad/stream.json"))
    assert.is_nil(select(2, curl(srv, "URL/ready")).problems.store.bad)
  end)

  it("keeps a pipeline's stream output off a stream it cannot open, without crashing", function()
    local yaml = [[
http: {address: 127.0.0.1:$PORT}
shutdown_timeout: 1s
store: {data_dir: ./data}
input: {http_server: {path: /in, timeout: 1s}}
output: {stream: {name: '${! meta.to or "out" }'}}
]]
    local srv = h.serve(yaml)
    finally(function() srv.stop() end)
    assert.are.equal(200, (curl(srv, "-d 1 URL/in")))
    srv.stop(true)
    h.write(srv.dir .. "/data/out/stream.json", "{}")
    srv = h.serve(yaml, {dir = srv.dir, port = srv.port})
    -- a name known only per message: that write fails, the server goes on
    local c = curl(srv, "-d 2 URL/in")
    assert.is_true(c >= 400, tostring(c))   -- 408: the input gave up waiting for the output
    assert.are.equal(200, (curl(srv, "URL/ping")))
    assert.matches("stream out cannot be opened", srv.stderr())
    assert.are.equal("{}", h.read(srv.dir .. "/data/out/stream.json"))
    -- a fixed name: the config cannot run, and says why
    srv.stop(true, {code = 1})   -- the message it could not store is left undelivered at the shutdown timeout
    local ok, err = pcall(h.serve, (yaml:gsub("'%${! meta.to or \"out\" }'", "out")), {dir = srv.dir, port = srv.port})
    assert.is_false(ok)
    assert.matches("stream out cannot be opened", err)
    srv = h.serve(CONFIG)   -- for finally
  end)

  it("does not start a pipeline's stream input from a position it cannot read", function()
    local yaml = [[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
input: {stream: {name: feed, group: g}}
output: {file: {path: out.ndjson}}
]]
    local srv = h.serve(yaml)
    finally(function() srv.stop() end)
    post(srv, "/stream/feed/publish", {data = 1})
    h.wait_lines(srv.dir .. "/out.ndjson", 1)
    srv.stop(true)
    h.write(srv.dir .. "/data/feed/offsets.json", "[]")
    os.remove(srv.dir .. "/out.ndjson")
    srv = h.serve(yaml, {dir = srv.dir, port = srv.port})
    post(srv, "/stream/feed/publish", {data = 2})
    local code, ready = curl(srv, "URL/ready")
    assert.are.equal(503, code)
    assert.matches("offsets.json is not a JSON object", ready.streams.main)
    assert.matches("offsets.json is not a JSON object", ready.problems.store.feed)
    -- not re-read from the start (what an input reset to offset 0 writes within 2 s)
    assert.is_nil(h.wait_for(function() return h.read(srv.dir .. "/out.ndjson") end, 2))
  end)

  it("rolls segments and applies retention by bytes", function()
    local srv = h.serve((CONFIG:gsub("segment_bytes: 4KiB", "segment_bytes: 4KiB\n  retention_check: 100ms")))
    post(srv, "/stream/ret", {retention_bytes = 8192, segment_bytes = 4096})
    local big = string.rep("x", 500)
    local evs = {}
    for i = 1, 100 do evs[i] = {data = big .. i} end
    post(srv, "/stream/ret/publish", {events = evs})
    os.execute("sleep 0.4")
    local _, st = curl(srv, "URL/stream/ret/stats")
    assert.is_true(st.partitions[1].min_offset > 0, json.encode(st))
    assert.is_true(st.bytes <= 8192 + 4096, json.encode(st))
    assert.are.equal(99, st.partitions[1].max_offset)
    local code, e = curl(srv, "'URL/stream/ret/consume/x?from_offset=0'")
    assert.are.equal(416, code)
    assert.matches("removed by retention", e.error)
    srv.stop()
  end)
end)

describe("stream connectors", function()
  it("hands a record's CR and LF bytes to an http_server output's SSE client as line breaks, losing no line", function()
    local yaml = [[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
streams:
  write:
    input: {http_server: {path: /in}}
    output: {stream: {name: lines}}
  read:
    input: {stream: {name: lines, group: sse}}
    output: {http_server: {path: "", sse_path: /events}}
]]
    local srv = h.serve(yaml)
    finally(function() srv.stop() end)
    local f = h.write(h.tmpname(), "a\rb\r\nc\nd")
    assert.are.equal(200, (curl(srv, "--data-binary @" .. f .. " URL/in")))
    os.remove(f)
    -- resumed from before the first record (the client may come after it was sent)
    local code, out = h.sh("node spec/node/clients.js sse '" .. srv.url .. "/events?last_event_id=0:-1' 1")
    assert.are.equal(0, code, out)
    assert.are.equal("a\nb\nc\nd", json.decode(out).data)   -- npm eventsource
  end)

  it("lets an http_server output's SSE client resume from the stream after Last-Event-ID, across a restart", function()
    local yaml = [[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
input: {stream: {name: feed, group: sse}}
pipeline:
  processors:
    - lua: 'if this.n % 5 == 0 then return deleted() end'
output: {http_server: {path: "", sse_path: /live}}
]]
    local srv = h.serve(yaml)
    local sse = io.popen("curl -s -N -m 1.5 " .. srv.url .. "/live")
    os.execute("sleep 0.3")
    for _, n in ipairs({1, 2, 3, 4, 5, 6}) do post(srv, "/stream/feed/publish", {data = {n = n}}) end
    local first = sse:read("a")
    sse:close()
    local ids = {}
    for id in first:gmatch("id: ([%d:,%-]+)") do ids[#ids + 1] = id end
    assert.are.same({"0:0", "0:1", "0:2", "0:3", "0:5"}, ids)   -- offsets; n = 5 (offset 4) filtered out
    for _, n in ipairs({7, 8, 9}) do post(srv, "/stream/feed/publish", {data = {n = n}}) end
    srv.stop(true)
    srv = h.serve(yaml, {dir = srv.dir, port = srv.port})
    for _, n in ipairs({10, 11}) do post(srv, "/stream/feed/publish", {data = {n = n}}) end
    -- resuming after 0:1 gives every later event once, in order, through the processors
    local _, again = h.sh("curl -s -N -m 1.5 -H 'Last-Event-ID: 0:1' " .. srv.url .. "/live")
    srv.stop()
    local ns = {}
    for d in again:gmatch("data: ([^\n]+)") do ns[#ns + 1] = json.decode(d).n end
    assert.are.same({3, 4, 6, 7, 8, 9, 11}, ns)
  end)

  it("replays what a stream holds with until_end, then exits after committing", function()
    local d = h.tmpdir()
    local w = "store: {data_dir: " .. d .. "/data, api: false}\n" ..
      "input: {generate: {count: 300, interval: 0, batch_size: 50, mapping: 'return {n = i}'}}\n" ..
      "output: {stream: {name: hist}}\n"
    local r = h.run_config(w)
    assert.are.equal(0, r.code, r.stderr)
    local rd = "store: {data_dir: " .. d .. "/data, api: false}\n" ..
      "input: {stream: {name: hist, group: replay, batch_size: 64, until_end: true}}\n" ..
      "output: {stdout: {}}\n"
    r = h.run_config(rd)
    assert.are.equal(0, r.code, r.stderr)
    local lines = h.lines(r.stdout)
    assert.are.equal(300, #lines)
    assert.are.equal(300, json.decode(lines[300]).n)
    -- committed: a second replay of the same group has nothing left
    r = h.run_config(rd)
    h.rmdir(d)
    assert.are.equal(0, r.code)
    assert.are.equal("", r.stdout)
  end)

  it("carries messages generate → stream output → stream input → file, resuming a group after restart", function()
    local yaml = [[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
streams:
  produce:
    input:
      generate: {count: 50, interval: 0, batch_size: 7, mapping: 'meta.kind = "gen"; return {n = i}'}
    output:
      stream: {name: pipe, partition_key: '${! this.n % 3 }', partitions: 3}
  consume:
    input:
      stream: {name: pipe, group: g1}
    pipeline:
      processors:
        - lua: 'this.kind = meta.kind; this.p = meta.stream_partition; this.o = meta.stream_offset'
    output:
      file: {path: out.ndjson}
]]
    local srv = h.serve(yaml)
    for _ = 1, 100 do
      local n = select(2, (h.read(srv.dir .. "/out.ndjson") or ""):gsub("\n", ""))
      if n >= 50 then break end
      os.execute("sleep 0.05")
    end
    srv.stop(true)
    local seen = {}
    for _, l in ipairs(h.lines(h.read(srv.dir .. "/out.ndjson"))) do
      local d = json.decode(l)
      assert.are.equal("gen", d.kind)
      seen[d.n] = (seen[d.n] or 0) + 1
    end
    for i = 1, 50 do assert.are.equal(1, seen[i], "n=" .. i) end
    -- a restart resumes from the committed offsets: generate adds 50 more, and
    -- no record is read twice (every partition:offset appears once)
    srv = h.serve(yaml, {dir = srv.dir, port = srv.port})
    local lines
    for _ = 1, 100 do
      lines = h.lines(h.read(srv.dir .. "/out.ndjson") or "")
      if #lines >= 100 then break end
      os.execute("sleep 0.05")
    end
    srv.stop()
    assert.are.equal(100, #lines)
    local at = {}
    for _, l in ipairs(lines) do
      local d = json.decode(l)
      local k = d.p .. ":" .. d.o
      assert.is_nil(at[k], k)
      at[k] = true
    end
  end)
end)
