-- The quickstart (`make run`, examples/quickstart.yaml): Tyk's demo on the
-- embedded streams, where alice and bob each get only their own results, over
-- long-poll GET, SSE and WebSocket and through the streams API, and the
-- README's first commands work in order.
local h = require("spec.helpers")
local json = h.json
local api = require("spec.api_helpers")
local curl, as = api.curl, api.as
local demo = require("spec.demo_helpers")

local WS = "/usr/bin/python3 spec/tools/ws_client.py "

local function push(srv, key, body)
  return as(key, srv, "-X POST -H 'Content-Type: application/json' --data-binary " ..
    h.shell_quote(json.encode(body)) .. " URL/push-event")
end

-- The quickstart on a test port, with more users when asked.
local function quickstart(users)
  local yaml = h.read("examples/quickstart.yaml"):gsub("%${HTTP_ADDRESS:127%.0%.0%.1:4195}", "127.0.0.1:$PORT")
  local extra = {}
  for _, u in ipairs(users or {}) do extra[#extra + 1] = "        " .. u .. "-key: " .. u .. "\n" end
  yaml = yaml:gsub("(        admin%-key: admin\n)", "%1" .. table.concat(extra))
  return h.serve(yaml)
end

describe("quickstart", function()
  local srv
  local users = {}
  for u = 1, 10 do users[u] = "u" .. u end
  setup(function() srv = quickstart(users) end)
  teardown(function()
    -- Results held for long-poll clients that are gone go back at once: exit 0, not shutdown_timeout's 1.
    local ok, err = pcall(srv.stop, true)
    h.rmdir(srv.dir)
    assert(ok, err)
  end)

  it("listens on 127.0.0.1 unless HTTP_ADDRESS says otherwise", function()
    assert.matches("address: %${HTTP_ADDRESS:127%.0%.0%.1:4195}", h.read("examples/quickstart.yaml"))
  end)

  it("answers POST /push-event with the event enriched for the key's user, and 401 without a key", function()
    local code, e = push(srv, "alice-key", {foo = "a1"})
    assert.are.equal(200, code)
    assert.are.equal("alice", e.user_id)
    assert.matches("^%x+%-", e.job_id)
    assert.are.equal(401, (curl(srv, "-X POST -d '{}' 'URL/push-event?user=alice'")))
  end)

  it("delivers alice and bob only their own results over SSE and WebSocket", function()
    local sse = io.popen("curl -s -N -m 4 '" .. srv.url .. "/sse?api_key=alice-key'")
    local ws = io.popen(WS .. "'ws://127.0.0.1:" .. srv.port .. "/ws-in?api_key=bob-key' --recv 2 --wait 4")
    -- Results wait in each user's stream: clients may connect before or after the posts.
    for _, u in ipairs({"bob", "alice", "bob"}) do push(srv, u .. "-key", {foo = u}) end
    local sse_out, ws_out = sse:read("a"), ws:read("a")
    sse:close(); ws:close()
    demo.assert_alice_and_bob(sse_out, ws_out)
  end)

  it("gives each of 10 users every one of their results by long-poll GET, and none of the others'", function()
    for round = 1, 2 do
      for _, u in ipairs(users) do push(srv, u .. "-key", {round = round}) end
    end
    for _, u in ipairs(users) do
      local got = {}
      for _ = 1, 20 do
        local _, out = h.sh("curl -s -m 10 -H 'X-API-Key: " .. u .. "-key' " .. srv.url .. "/get-event")
        -- a batch comes as one message per line
        for _, l in ipairs(h.lines(out)) do
          local r = json.decode(l)
          assert.are.equal(u, r.user_id)
          got[r.round] = true
        end
        if got[1] and got[2] then break end
      end
      assert.is_true(got[1] and got[2], u)
    end
  end)

  it("shows each user only their own streams, which the others can neither read nor delete", function()
    push(srv, "alice-key", {foo = "mine"})
    push(srv, "bob-key", {foo = "his"})
    local code, body = as("alice-key", srv, "URL/stream/list")
    assert.are.equal(200, code)
    assert.are.same({"alice.completed"}, body.streams)
    local events = h.wait_for(function()
      local _, b = as("alice-key", srv, "'URL/stream/alice.completed/consume/alice-reader?from_offset=0&limit=1000'")
      for _, e in ipairs(b.events) do
        if e.data.foo == "mine" then return b.events end
      end
    end)
    for _, e in ipairs(events) do
      assert.are.equal("alice", e.data.user_id)
      -- the key that published it is nowhere in the record
      assert.is_nil(e.headers["x-api-key"])
      assert.is_nil(json.encode(e):find("alice-key", 1, true))
    end
    for _, path in ipairs({"/stream/bob.completed/consume/x?from_offset=0", "/stream/bob.completed/info",
                           "/stream/jobs/consume/x?from_offset=0"}) do
      assert.are.equal(403, (as("alice-key", srv, "'URL" .. path .. "'")), path)
    end
    local _, sse = h.sh("curl -s -m 3 -w '%{http_code}' '" .. srv.url .. "/stream/bob.completed/sse/x?api_key=alice-key'")
    assert.matches("403$", sse)
    local _, ws = h.sh(WS .. "'ws://127.0.0.1:" .. srv.port .. "/stream/bob.completed/ws/x?api_key=alice-key' 2>&1")
    assert.matches("403", ws)
    assert.are.equal(403, (as("alice-key", srv, "-X DELETE URL/stream/bob.completed")))
    assert.are.equal(403, (as("bob-key", srv, "-X DELETE URL/stream/alice.completed")))
    local _, all = as("admin-key", srv, "URL/stream/list")
    local seen = {}
    for _, s in ipairs(all.streams) do seen[s] = true end
    assert.is_true(seen.jobs and seen["alice.completed"] and seen["bob.completed"] and seen["u10.completed"])
  end)
end)

describe("README's first commands", function()
  it("work in order against make run's quickstart", function()
    local readme = h.read("README.md")
    local block = readme:match("`make run` starts.-```sh\n(.-)```")
    assert.is_not_nil(block)
    local srv = quickstart()
    local n = 0
    for line in block:gmatch("[^\n]+") do
      if line:match("^curl ") then
        n = n + 1
        local want = line:match("#.-(%d%d%d):") or "200"
        local cmd = line:gsub("#.*$", ""):gsub("localhost:4195", "127.0.0.1:" .. srv.port)
        -- -N lines stream until stopped: a short run shows they answer
        local streaming = cmd:find(" %-N ") ~= nil
        local code, out = h.sh(cmd:gsub("^curl ", "curl -s -m " .. (streaming and 2 or 10) .. " -w '\\n%%{http_code}' "))
        assert.is_true(code == 0 or (streaming and code == 28), line)
        assert.matches(want .. "$", out, nil, line)
        if want == "200" and not streaming then
          assert.is_nil(out:find('"error"', 1, true), line .. "\n" .. out)
        end
      end
    end
    assert.are.equal(0, srv.stop())
    assert.is_true(n >= 5)
  end)
end)
