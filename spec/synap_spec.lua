-- Synap's streams guides (seeds 002 "Complete Streams Guide" and 003 "Event
-- Streams" quick start) replayed against sluice: every curl command as the
-- guides print it (only the host differs), each with the answer's shape, and
-- their JavaScript WebSocket examples run as printed (Node, npm `ws` as the
-- browser's WebSocket). The Python examples use a client library and are not
-- requests; they are left out.
local h = require("spec.helpers")
local json = h.json

local HOST = "http://localhost:15500"

-- A command as printed; the answer's status and JSON body.
local function run(srv, cmd)
  local line = cmd:gsub(HOST, srv.url):gsub("ws://localhost:15500", "ws://127.0.0.1:" .. srv.port)
  local code, out, err = h.sh(line .. " -s -m 10 -w '\\n%{http_code}'")
  assert.are.equal(0, code, line .. ": " .. (err or ""))
  local body, status = out:match("^(.*)\n(%d+)$")
  local ok, j = pcall(json.decode, body)
  return tonumber(status), ok and j or body
end

-- A JavaScript example as printed (extra: what the page around it would
-- do), under Node until it logged `lines` lines. Returns a function that
-- waits for n of them (all by default) and returns those there are.
local function js(srv, code, lines, extra)
  local f = h.write(h.tmpname(".js"), code:gsub("ws://localhost:15500", "ws://127.0.0.1:" .. srv.port) .. (extra or ""))
  local out = h.tmpname()
  os.execute("node spec/node/snippet.js " .. lines .. " " .. f .. " > " .. out .. " 2>&1 &")
  return function(n)
    local got = h.wait_lines(out, n or lines, 25)
    if not n or n >= lines then
      os.remove(f)
      os.remove(out)
    end
    return got
  end
end

-- The seeds' commands, character for character.
local CREATE_WITH_SETTINGS = [[
curl -X POST http://localhost:15500/stream/notifications \
  -H "Content-Type: application/json" \
  -d '{
    "partitions": 1,
    "retention_hours": 24
  }']]
local CREATE = [[curl -X POST http://localhost:15500/stream/notifications]]
local LIST = [[curl http://localhost:15500/stream/list]]
local INFO = [[curl http://localhost:15500/stream/notifications/info]]
local DELETE = [[curl -X DELETE http://localhost:15500/stream/notifications]]
local PUBLISH = [[
curl -X POST http://localhost:15500/stream/notifications/publish \
  -H "Content-Type: application/json" \
  -d '{
    "event": "user.signup",
    "data": "New user registered"
  }']]
local PUBLISH_KEY = [[
curl -X POST http://localhost:15500/stream/notifications/publish \
  -H "Content-Type: application/json" \
  -d '{
    "event": "user.signup",
    "data": "New user",
    "partition_key": "user-123"
  }']]
local CONSUME = [[curl "http://localhost:15500/stream/notifications/consume/user-1?from_offset=0&limit=10"]]
local CONSUME_ALL = [[curl "http://localhost:15500/stream/notifications/consume/user-1?from_offset=0&limit=100"]]
local GROUP_CREATE = [[curl -X POST http://localhost:15500/stream/notifications/group/email-service]]
local GROUP_CONSUME = [[curl "http://localhost:15500/stream/notifications/group/email-service/consume?limit=10"]]
local GROUPS = [[curl http://localhost:15500/stream/notifications/groups]]
local STATS = [[curl http://localhost:15500/stream/notifications/stats]]
local WS_EXAMPLE = [[
const ws = new WebSocket('ws://localhost:15500/stream/notifications/ws/user-1?from_offset=0');

ws.onmessage = (event) => {
  const msg = JSON.parse(event.data);
  console.log('Event:', msg.event, 'Data:', msg.data);
};
]]
local RECONNECT_EXAMPLE = [[
let lastOffset = 0;

function connect() {
  const ws = new WebSocket(`ws://localhost:15500/stream/notifications/ws/user-1?from_offset=${lastOffset}`);
  
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    lastOffset = msg.offset + 1;
    handleMessage(msg);
  };
  
  ws.onclose = () => {
    setTimeout(connect, 1000);
  };
}
]]

-- The guide's stats example: these keys, with these types, per partition too.
local function assert_stats_shape(s)
  for _, k in ipairs({"message_count", "subscribers", "min_offset", "max_offset"}) do
    assert.are.equal("number", type(s[k]), k .. " in " .. json.encode(s))
  end
  assert.are.equal("table", type(s.partitions), json.encode(s))
  for i, p in ipairs(s.partitions) do
    assert.are.same({i - 1, "number", "number", "number"},
      {p.partition, type(p.message_count), type(p.min_offset), type(p.max_offset)})
  end
end

local CONFIG = [[
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
input: {generate: {interval: 1h, mapping: 'return 1'}}
output: {drop: {}}
]]

describe("Synap's streams guides, replayed", function()
  local srv
  setup(function() srv = h.serve(CONFIG) end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  it("quick start after the complete guide's create: create again without a body (200), publish, consume, WebSocket", function()
    local code, s = run(srv, CREATE_WITH_SETTINGS)
    assert.are.equal(201, code, json.encode(s))
    assert.are.same({"notifications", 1, 24}, {s.name, s.partition_count, s.retention_hours})
    -- the quick start's create, with no body, finds the stream the guide made with settings
    code, s = run(srv, CREATE)
    assert.are.equal(200, code, json.encode(s))
    assert.are.equal(24, s.retention_hours)
    code, s = run(srv, PUBLISH)
    assert.are.same({200, 0, 0}, {code, s.offset, s.partition})
    code, s = run(srv, CONSUME)
    assert.are.equal(200, code)
    assert.are.same({0, "user.signup", "New user registered"}, {s.events[1].offset, s.events[1].event, s.events[1].data})
    assert.are.equal("number", type(s.events[1].timestamp))
    local lines = js(srv, WS_EXAMPLE, 1)
    assert.are.same({"Event: user.signup Data: New user registered"}, lines())
  end)

  it("complete guide: lifecycle, publishing, consuming, groups, offsets and stats as printed", function()
    local code, s = run(srv, LIST)
    assert.are.equal(200, code)
    assert.are.same({"notifications"}, s.streams)
    code, s = run(srv, INFO)
    assert.are.equal(200, code)
    assert_stats_shape(s)
    assert.are.same({1, 1, 0, 0}, {s.message_count, s.subscribers, s.min_offset, s.max_offset})
    code, s = run(srv, PUBLISH)
    assert.are.same({200, 1}, {code, s.offset})
    code, s = run(srv, PUBLISH_KEY)
    assert.are.same({200, 2, 0}, {code, s.offset, s.partition})
    code, s = run(srv, CONSUME)
    assert.are.equal(3, #s.events)
    assert.are.same({"New user", "user-123"}, {s.events[3].data, s.events[3].key})
    local lines = js(srv, WS_EXAMPLE, 3)
    assert.are.same({"Event: user.signup Data: New user registered", "Event: user.signup Data: New user registered",
      "Event: user.signup Data: New user"}, lines())
    -- consumer groups, as the guide writes them: no consumer name
    code, s = run(srv, GROUP_CREATE)
    assert.are.same({201, "email-service"}, {code, s.group})
    code, s = run(srv, GROUP_CONSUME)
    assert.are.equal(200, code, json.encode(s))
    assert.are.equal(3, #s.events)
    assert.are.same({0}, s.partitions)
    -- the next consume goes on: the group's position moved
    code, s = run(srv, GROUP_CONSUME)
    assert.are.same({200, 0}, {code, #s.events})
    code, s = run(srv, GROUPS)
    assert.are.equal(200, code)
    assert.are.equal("email-service", s.groups[1].group)
    assert.are.same({3}, s.groups[1].committed)
    code, s = run(srv, CONSUME_ALL)
    assert.are.same({200, 3}, {code, #s.events})
    -- "Get Current Offset" and "Get Stream Stats": the guide's response shape
    code, s = run(srv, STATS)
    assert.are.equal(200, code)
    assert_stats_shape(s)
    assert.are.same({3, 1, 0, 2}, {s.message_count, s.subscribers, s.min_offset, s.max_offset})
    assert.are.same({0, 3, 0, 2}, {s.partitions[1].partition, s.partitions[1].message_count, s.partitions[1].min_offset,
      s.partitions[1].max_offset})
    -- info answers the same shape as stats
    local _, info = run(srv, INFO)
    for _, k in ipairs({"message_count", "subscribers", "min_offset", "max_offset", "partitions"}) do
      assert.are.same(s[k], info[k], k)
    end
  end)

  it("complete guide's reconnecting WebSocket goes on from lastOffset after the server restarts", function()
    local lines = js(srv, RECONNECT_EXAMPLE, 5,
      "\nfunction handleMessage(msg) { console.log(msg.offset, msg.data); }\nconnect();\n")
    -- the three events there are, then a restart: the example reconnects by itself
    assert.are.equal(3, #lines(3))
    assert.are.equal(0, srv.stop(true))
    srv = h.serve(CONFIG, {dir = srv.dir, port = srv.port})
    run(srv, PUBLISH)
    run(srv, PUBLISH_KEY)
    assert.are.same({"0 New user registered", "1 New user registered", "2 New user", "3 New user registered",
      "4 New user"}, lines())
  end)

  it("complete guide: delete", function()
    local code, s = run(srv, DELETE)
    assert.are.same({200, "notifications"}, {code, s.deleted})
    assert.are.equal(404, (run(srv, INFO)))
  end)
end)

describe("Synap-style consumption of a stream of several partitions", function()
  local srv
  setup(function() srv = h.serve(CONFIG) end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  local function publish(events)
    local code = run(srv, "curl -X POST " .. HOST .. "/stream/p3/publish -d " .. h.shell_quote(json.encode({events = events})))
    assert.are.equal(200, code)
  end

  it("pages with from_offset=next_offset through every event once, while partitions grow apart", function()
    assert.are.equal(201, (run(srv, "curl -X POST " .. HOST .. "/stream/p3 -d '{\"partitions\": 3}'")))
    local n, seen, count, from = 0, {}, 0, 0
    local function more(k, key)
      local evs = {}
      for _ = 1, k do
        n = n + 1
        evs[#evs + 1] = {event = "e", data = n, partition_key = key}
      end
      publish(evs)
    end
    more(7, "hot")   -- one partition runs ahead
    more(2)          -- round robin over the partitions
    for page = 1, 40 do
      local code, s = run(srv, "curl '" .. HOST .. "/stream/p3/consume/pager?from_offset=" .. from .. "&limit=3'")
      assert.are.equal(200, code, json.encode(s))
      for _, e in ipairs(s.events) do
        assert.is_nil(seen[e.data], "event " .. e.data .. " twice")
        seen[e.data] = true
        count = count + 1
      end
      from = s.next_offset
      -- more comes between pages, unevenly
      if page == 2 then more(5, "other") end
      if page == 4 then more(4) end
      if #s.events == 0 and count == n then break end
    end
    assert.are.equal(n, count)
    -- from_offset=0 still replays everything
    local _, all = run(srv, "curl '" .. HOST .. "/stream/p3/consume/again?from_offset=0&limit=100'")
    assert.are.equal(n, #all.events)
  end)

  it("shares a group's events between consumers that name none, each event once", function()
    assert.are.equal(201, (run(srv, "curl -X POST " .. HOST .. "/stream/p3/group/workers")))
    local got = {}
    for _ = 1, 10 do
      local _, s = run(srv, "curl '" .. HOST .. "/stream/p3/group/workers/consume?limit=4'")
      for _, e in ipairs(s.events) do
        assert.is_nil(got[e.data], "event " .. e.data .. " twice")
        got[e.data] = true
      end
      if #s.events == 0 then break end
    end
    local n = 0
    for _ in pairs(got) do n = n + 1 end
    assert.are.equal(18, n)
    local _, groups = run(srv, "curl " .. HOST .. "/stream/p3/groups")
    assert.are.same({"default"}, {groups.groups[1].members[1].consumer})
  end)
end)
