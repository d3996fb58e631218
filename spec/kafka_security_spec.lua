-- Safe edges on Kafka (docs/security.md), on one real broker: an HTTP
-- request's credentials never become Kafka headers (read back with kcat), and
-- store.access binds the streams API of `store.backend: kafka` as it binds the
-- embedded store's (curl, npm eventsource, npm ws).
local h = require("spec.helpers")
local kafka = require("spec.kafka_helpers")
local api = require("spec.api_helpers")
local curl, as, names = api.curl, api.as, api.names

local why = kafka.unavailable()
local describe_kafka = why and pending or describe

describe_kafka("safe edges on Kafka" .. (why and (": " .. why) or ""), function()
  local k, srv
  setup(function()
    k = kafka.start()
    srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  auth:
    api_keys:
      keys: {k-alice: alice, k-bob: bob, k-ops: ops}
    admin: [ops]
store:
  backend: kafka
  kafka: {addresses: []] .. k.addr .. [[], session_timeout: 6s, request_timeout: 5s}
  access:
    streams: ['${ctx.user}.*']
    groups: ['${ctx.user}-*']
input:
  http_server: {path: /in, metadata: {include_headers: [x-region, authorization, x-api-key]}}
output:
  kafka: {addresses: []] .. k.addr .. [[], topic: ops.requests}
]])
  end)
  teardown(function()
    local rc = srv and srv.stop()
    if k then k.stop() end
    assert.are.equal(0, rc)
  end)

  it("sends no credential of the request as a Kafka header", function()
    local code = curl(srv, "-X POST -d '{\"n\":1}' -H 'X-API-Key: k-alice' -H 'Authorization: Bearer tok-secret' " ..
      "-H 'Cookie: s=cookie-secret' -H 'X-Region: eu' 'URL/in?api_key=k-alice&access_token=tok-secret'")
    assert.are.equal(200, code)
    local _, out = h.sh("timeout 30 kcat -b " .. k.addr .. " -C -t ops.requests -o beginning -c 1 -e -q -f '%h|%s\\n'")
    assert.matches("x%-region=eu", out)
    assert.matches('{"n":1}', out, 1, true)
    for _, s in ipairs({"k-alice", "tok-secret", "cookie-secret", "authorization", "x-api-key", "cookie"}) do
      assert.is_nil(out:lower():find(s, 1, true), s .. " in " .. out)
    end
  end)

  it("keeps each user to their own topics: list, REST, SSE, WebSocket, groups, create and delete", function()
    for _, s in ipairs({"alice.orders", "bob.orders"}) do
      assert.are.equal(201, (as("k-ops", srv, "-X POST URL/stream/" .. s)))
      assert.are.equal(200, (as("k-ops", srv, "-X POST -d '{\"data\":\"" .. s .. "\"}' URL/stream/" .. s .. "/publish")))
    end
    local _, list = as("k-alice", srv, "URL/stream/list")
    assert.are.same({"alice.orders"}, names(list.streams))
    local _, all = as("k-ops", srv, "URL/stream/list")
    local seen = {}
    for _, s in ipairs(all.streams) do seen[s] = true end
    assert.is_true(seen["alice.orders"] and seen["bob.orders"] and seen["ops.requests"])
    local code, body = as("k-alice", srv, "'URL/stream/alice.orders/consume/alice-1?from_offset=0&wait_ms=3000'")
    assert.are.equal(200, code)
    assert.are.equal("alice.orders", body.events[1].data)
    for _, path in ipairs({"/stream/bob.orders/consume/alice-1?from_offset=0", "/stream/bob.orders/info",
                           "/stream/bob.orders/group/alice-g/consume?consumer=c", "/stream/ops.requests/stats"}) do
      assert.are.equal(403, (as("k-alice", srv, "'URL" .. path .. "'")), path)
    end
    assert.are.same({{status = 403}}, api.node("sse", srv.url .. "/stream/bob.orders/sse/alice-1?api_key=k-alice"))
    assert.are.same({{status = 403}},
      api.node("ws", "ws://127.0.0.1:" .. srv.port .. "/stream/bob.orders/ws/alice-1?api_key=k-alice"))
    assert.are.equal(403, (as("k-alice", srv, "-X DELETE URL/stream/bob.orders")))
    assert.are.equal(403, (as("k-alice", srv, "-X POST URL/stream/alice.new")))
    -- consumer names: alice's group is hers to see, the admin's is not
    assert.are.equal(403, (as("k-alice", srv, "-X POST URL/stream/alice.orders/group/bob-g")))
    local function member(key, g)
      -- joined, then committed by auto_commit on the next consume: Kafka lists the group
      for _ = 1, 2 do
        assert.are.equal(200, (as(key, srv, "'URL/stream/alice.orders/group/" .. g .. "/consume?consumer=c&wait_ms=3000'")))
      end
    end
    member("k-alice", "alice-g")
    member("k-ops", "ops-g")
    local all_groups = h.wait_for(function()
      local _, b = as("k-ops", srv, "URL/stream/alice.orders/groups")
      local n = names(b.groups)
      return #n == 2 and n
    end, 30)
    assert.are.same({"alice-g", "ops-g"}, all_groups)
    local _, groups = as("k-alice", srv, "URL/stream/alice.orders/groups")
    assert.are.same({"alice-g"}, names(groups.groups))
    assert.are.equal(200, (as("k-ops", srv, "-X DELETE URL/stream/bob.orders")))
  end)
end)
