-- examples/shannon-events: Shannon's streaming endpoints served by sluice,
-- driven by clients written against Shannon's documentation (seed 004): a
-- browser EventSource in headless Chromium, Python websockets and curl.
local h = require("spec.helpers")
local json = h.json

local WS = "/usr/bin/python3 spec/tools/ws_client.py "
local SHANNON = {"WORKFLOW_STARTED", "AGENT_STARTED", "thread.message.delta", "thread.message.delta",
  "thread.message.delta", "thread.message.delta", "thread.message.delta", "thread.message.completed",
  "AGENT_COMPLETED", "WORKFLOW_COMPLETED", "done"}

local function serve(pace, opts)
  opts = opts or {}
  local yaml = h.read("examples/shannon-events/shannon.yaml")
    :gsub("%${HTTP_ADDRESS:127%.0%.0%.1:4195}", "127.0.0.1:$PORT"):gsub("%${WORKFLOW_PACE:150ms}", pace)
  opts.before = function(dir)
    assert(os.execute("cp -r examples/shannon-events/public examples/shannon-events/event.lua " ..
      "examples/shannon-events/workflow.lua " .. dir))
  end
  return h.serve(yaml, opts)
end

local function ask(srv, query)
  local _, out = h.sh("curl -s -i -m 10 -X POST -H 'Content-Type: application/json' -d " ..
    h.shell_quote(json.encode({query = query})) .. " " .. srv.url .. "/api/v1/tasks/stream")
  local status = tonumber(out:match("^HTTP/1.1 (%d+)"))
  local headers, body = out:match("^(.-)\r\n\r\n(.*)$")
  return status, json.decode(body), headers
end

-- The SSE events of a whole curl output: {name, id, data}.
local function events(text)
  local t = {}
  for block in text:gmatch("(.-)\n\n") do
    local id, name, data = block:match("id: ([^\n]*)"), block:match("event: ([^\n]*)"), block:match("data: ([^\n]*)")
    if data then t[#t + 1] = {id = id, name = name or "message", data = data} end
  end
  return t
end

local function names(evs)
  local t = {}
  for k, e in ipairs(evs) do t[k] = e.name end
  return t
end

local function ws_messages(out)
  local msgs, closed = {}, nil
  for _, l in ipairs(h.lines(out)) do
    local m = json.decode(l)
    if m.text then msgs[#msgs + 1] = json.decode(m.text) end
    if m.closed then closed = m end
  end
  return msgs, closed
end

-- A workflow that has run to its end (its stream holds STREAM_END at offset 10).
local function finished(srv, query)
  local status, t = ask(srv, query)
  assert.are.equal(201, status)
  assert.truthy(h.wait_for(function()
    local _, info = h.sh("curl -s " .. srv.url .. "/stream/wf-" .. t.workflow_id .. "/info")
    return (json.decode(info).message_count or 0) >= 11
  end, 20))
  return t.workflow_id
end

describe("examples/shannon-events", function()
  local srv, wf
  setup(function()
    srv = serve("20ms")
    wf = finished(srv, "setup")
  end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  it("lints clean", function()
    local r = h.sluice("lint examples/shannon-events/shannon.yaml")
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("answers POST /api/v1/tasks/stream with 201, workflow_id, task_id and stream_url", function()
    local status, t, headers = ask(srv, "hello")
    assert.are.equal(201, status)
    assert.matches("^task%-%x+%-", t.workflow_id)
    assert.are.equal(t.workflow_id, t.task_id)
    assert.are.equal("/api/v1/stream/sse?workflow_id=" .. t.workflow_id, t.stream_url)
    assert.matches("X%-Workflow%-ID: " .. t.workflow_id:gsub("%-", "%%-"), headers)
    assert.matches("Link: </api/v1/stream/sse%?workflow_id=", headers)
  end)

  it("serves the workflow over SSE under Shannon's names from its start, and ends the response after done", function()
    -- no -m: curl returns because the server ends the stream
    local code, out = h.sh("timeout 20 curl -s -N '" .. srv.url .. "/api/v1/stream/sse?workflow_id=" .. wf .. "'")
    assert.are.equal(0, code, out)
    local evs = events(out)
    assert.are.same(SHANNON, names(evs))
    assert.are.equal("[DONE]", evs[#evs].data)
    local delta = json.decode(evs[3].data)
    assert.are.equal("Streams ", delta.delta)
    assert.are.equal(wf, delta.workflow_id)
    assert.are.equal(2, delta.seq)
    assert.are.equal("0:2", delta.stream_id)
    assert.are.equal("0:2", evs[3].id)
    local done = json.decode(evs[8].data)
    assert.are.equal("Streams that survive a reconnect.", done.response)
    assert.are.equal(5, done.metadata.tokens)
    local started = json.decode(evs[1].data)
    assert.are.same({"WORKFLOW_STARTED", "orchestrator", 0}, {started.type, started.agent_id, started.seq})
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", started.timestamp)
    assert.matches("X-Accel-Buffering", select(2, h.sh("curl -s -i -m 5 '" .. srv.url ..
      "/api/v1/stream/sse?workflow_id=" .. wf .. "'")), 1, true)
  end)

  it("filters by Shannon's types= (the end event always comes) and resumes from last_event_id or Last-Event-ID", function()
    local base = "'" .. srv.url .. "/api/v1/stream/sse?workflow_id=" .. wf
    local _, out = h.sh("timeout 20 curl -s -N " .. base .. "&types=LLM_OUTPUT,WORKFLOW_STARTED'")
    assert.are.same({"WORKFLOW_STARTED", "thread.message.completed", "done"}, names(events(out)))
    -- an event's stream_id, or its seq, as last_event_id
    for _, id in ipairs({"0:7", "7"}) do
      _, out = h.sh("timeout 20 curl -s -N " .. base .. "&last_event_id=" .. id .. "'")
      assert.are.same({"AGENT_COMPLETED", "WORKFLOW_COMPLETED", "done"}, names(events(out)))
    end
    _, out = h.sh("timeout 20 curl -s -N -H 'Last-Event-ID: 0:8' " .. base .. "'")
    assert.are.same({"WORKFLOW_COMPLETED", "done"}, names(events(out)))
    -- the first client of a workflow, resuming: its instance starts reading at the beginning, the client goes on after its id
    local other = finished(srv, "resume first")
    _, out = h.sh("timeout 20 curl -s -N -H 'Last-Event-ID: 0:8' '" .. srv.url .. "/api/v1/stream/sse?workflow_id=" ..
      other .. "'")
    assert.are.same({"WORKFLOW_COMPLETED", "done"}, names(events(out)))
    -- Shannon refuses a request without workflow_id; a Redis-style id is not one of sluice's
    local code, body = h.sh("curl -s -m 5 -w '\\n%{http_code}' '" .. srv.url .. "/api/v1/stream/sse'")
    assert.are.equal(0, code)
    assert.matches("\n400$", body)
    assert.matches("workflow_id", body, 1, true)
    _, body = h.sh("curl -s -m 5 -w '\\n%{http_code}' -H 'Last-Event-ID: 1700000000000-0' " .. base .. "'")
    assert.matches("\n400$", body)
  end)

  it("serves Shannon's JSON events over WebSocket (Python websockets), with types= and last_event_id, closing with 1000", function()
    local url = "'ws://127.0.0.1:" .. srv.port .. "/api/v1/stream/ws?workflow_id=" .. wf
    local msgs, closed = ws_messages(select(2, h.sh(WS .. url .. "' --wait 10")))
    assert.are.equal(11, #msgs)
    assert.are.same({1000, "end of stream"}, {closed.closed, closed.reason})
    for k, m in ipairs(msgs) do
      assert.are.same({wf, k - 1, "0:" .. (k - 1)}, {m.workflow_id, m.seq, m.stream_id})
    end
    assert.are.same({"LLM_PARTIAL", "Streams "}, {msgs[3].type, msgs[3].message})
    assert.are.equal("STREAM_END", msgs[11].type)
    msgs, closed = ws_messages(select(2, h.sh(WS .. url .. "&types=LLM_PARTIAL' --wait 10")))
    assert.are.equal(6, #msgs)
    assert.are.equal("STREAM_END", msgs[6].type)
    assert.are.equal(1000, closed.closed)
    for _, id in ipairs({"0:8", "8"}) do
      msgs = ws_messages(select(2, h.sh(WS .. url .. "&last_event_id=" .. id .. "' --wait 10")))
      assert.are.same({9, 10}, {msgs[1].seq, msgs[2].seq})
    end
  end)

  it("gives a WebSocket client that connected before the workflow ran every event live", function()
    local slow = serve("200ms")
    finally(function() assert.are.equal(0, slow.stop()) end)
    local _, t = ask(slow, "live")
    local ws = io.popen(WS .. "'ws://127.0.0.1:" .. slow.port .. "/api/v1/stream/ws?workflow_id=" .. t.workflow_id ..
      "' --wait 10")
    local msgs, closed = ws_messages(ws:read("a"))
    ws:close()
    assert.are.equal(11, #msgs)
    assert.are.equal(1000, closed.closed)
  end)
end)

describe("examples/shannon-events in Chromium", function()
  it("shows a workflow's events, and the page's EventSource resumes by itself after a restart mid-workflow", function()
    local srv = serve("300ms")
    local progress = h.tmpname()
    os.remove(progress)
    local page = io.popen("node spec/node/shannon.js ask " .. srv.url .. " " .. progress)
    -- once the page has 3 events, restart sluice; the workflow goes on meanwhile
    assert.truthy(h.wait_for(function() return h.read(progress) end, 40), "the page never had 3 events")
    assert.are.equal(0, srv.stop(true))
    srv = serve("300ms", {dir = srv.dir, port = srv.port})
    local out = page:read("a")
    page:close()
    os.remove(progress)
    assert.are.equal(0, srv.stop())
    local r = json.decode(out)
    assert.is_nil(r.error, out)
    -- the connection was lost mid-workflow, the browser reconnected (Last-Event-ID) and missed nothing, doubled nothing
    assert.are.equal(2, r.opens, out)
    assert.is_true(r.seenAtError >= 3 and r.seenAtError < 11, out)
    assert.are.same(SHANNON, names(r.seen))
    for k, e in ipairs(r.seen) do assert.are.equal("0:" .. (k - 1), e.id) end
    assert.are.equal("Streams that survive a reconnect. ", r.answer)
  end)

  it("follows ?workflow_id= with types= and last_event_id=", function()
    local srv = serve("20ms")
    finally(function() assert.are.equal(0, srv.stop()) end)
    local _, t = ask(srv, "follow")
    local function follow(q)
      local _, out = h.sh("node spec/node/shannon.js follow '" .. srv.url .. "/?workflow_id=" .. t.workflow_id .. q .. "'")
      local r = json.decode(out)
      assert.is_nil(r.error, out)
      return r
    end
    assert.are.same({"thread.message.delta", "thread.message.delta", "thread.message.delta", "thread.message.delta",
      "thread.message.delta", "done"}, names(follow("&types=LLM_PARTIAL").seen))
    local r = follow("&last_event_id=0:8")
    assert.are.same({"WORKFLOW_COMPLETED", "done"}, names(r.seen))
    assert.are.same({"0:9", "0:10"}, {r.seen[1].id, r.seen[2].id})
  end)
end)
