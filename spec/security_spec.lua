-- Safe edges (docs/security.md): what a request leaves in stored records
-- (request metadata allowlists; credentials never), who may use the streams
-- API (store.access: scopes, tenants' streams and consumer names) over REST
-- (curl), SSE (npm eventsource) and WebSocket (npm ws, Python websockets),
-- and the warning of an open API on a public address.
local h = require("spec.helpers")
local json = h.json
local api = require("spec.api_helpers")
local curl, as, names, node = api.curl, api.as, api.names, api.node

local SECRETS = {"tok-secret-1", "cHJveHk", "cookie-secret-2", "key-secret-3", "key-secret-4", "tok-secret-5", "k-alice"}

describe("request metadata", function()
  local srv
  setup(function()
    srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  auth:
    api_keys:
      keys: {k-alice: alice}
      header: X-Token
      query: token
store:
  data_dir: ./data
streams:
  plain:
    input: {http_server: {path: /plain}}
    pipeline:
      processors:
        - lua: 'this.region = ctx.headers["x-region"]; this.cookie = ctx.cookies.session; this.user = ctx.user'
    output: {stream: {name: plain}}
  listed:
    input:
      http_server:
        path: /listed
        metadata:
          include_headers: [X-Region, 'x-trace-*', authorization, proxy-authorization, cookie, x-api-key, x-token]
          include_query: [user, api_key, access_token, token]
    output: {stream: {name: listed}}
  every:
    input:
      http_server:
        path: /every
        metadata: {include_headers: ['*'], include_query: ['*']}
    output: {stream: {name: every}}
]])
  end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  local function send(path)
    local code = curl(srv, "-X POST -d '{\"n\":1}' -H 'X-Token: k-alice' -H 'Authorization: Bearer tok-secret-1' " ..
      "-H 'Proxy-Authorization: Basic cHJveHk=' -H 'Cookie: session=cookie-secret-2' -H 'X-API-Key: key-secret-3' " ..
      "-H 'X-Region: eu' -H 'X-Trace-Id: t-1' -H 'X-Other: o' " ..
      "'URL" .. path .. "?user=alice&api_key=key-secret-4&access_token=tok-secret-5&token=k-alice&other=1'")
    assert.are.equal(200, code)
  end

  local function stored(stream)
    local code, body = curl(srv, "-H 'X-Token: k-alice' 'URL/stream/" .. stream .. "/consume/s?from_offset=0'")
    assert.are.equal(200, code)
    assert.are.equal(1, #body.events)
    return body.events[1], json.encode(body)
  end

  it("copies no request header or query parameter unless the config names it; Lua still sees the request", function()
    send("/plain")
    local e, raw = stored("plain")
    local keys = {}
    for k in pairs(e.headers or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({"http_method", "http_path", "http_remote_ip", "http_request_id"}, keys)
    assert.are.same({n = 1, region = "eu", cookie = "cookie-secret-2", user = "alice"}, e.data)
    for _, s in ipairs(SECRETS) do
      if s ~= "cookie-secret-2" then assert.is_nil(raw:find(s, 1, true), s) end
    end
  end)

  it("copies what the allowlist names, and never a credential, even when listed or matched by *", function()
    send("/listed")
    send("/every")
    local l, lraw = stored("listed")
    assert.are.equal("eu", l.headers["x-region"])
    assert.are.equal("t-1", l.headers["x-trace-id"])
    assert.are.equal("alice", l.headers.user)
    assert.is_nil(l.headers["x-other"])
    assert.is_nil(l.headers.other)
    local e, eraw = stored("every")
    assert.are.equal("o", e.headers["x-other"])
    assert.are.equal("1", e.headers.other)
    assert.are.equal("eu", e.headers["x-region"])
    for _, name in ipairs({"authorization", "proxy-authorization", "cookie", "x-api-key", "x-token", "api_key",
                           "access_token", "token"}) do
      assert.is_nil(l.headers[name], name)
      assert.is_nil(e.headers[name], name)
    end
    for _, s in ipairs(SECRETS) do
      assert.is_nil(lraw:find(s, 1, true), s)
      assert.is_nil(eraw:find(s, 1, true), s)
    end
  end)

  it("leaves no credential in the store's files", function()
    send("/listed")
    send("/every")
    -- the plain stream's data holds the cookie Lua copied on purpose: left out here
    local _, out = h.sh("grep -rlaF -e tok-secret -e key-secret -e cHJveHk -e k-alice " ..
      h.shell_quote(srv.dir .. "/data") .. " ; true")
    assert.are.equal("", out)
    local _, any = h.sh("grep -rlaF x-region " .. h.shell_quote(srv.dir .. "/data") .. " ; true")
    assert.are_not.equal("", any)   -- the files hold what was allowed: this grep can find things
  end)
end)

describe("streams API access", function()
  local srv
  local JWT = "python3 spec/tools/jwt.py HS256 s3cret "
  local function token(claims)
    local _, out = h.sh(JWT .. h.shell_quote(json.encode(claims)))
    return (out:gsub("%s+$", ""))
  end

  setup(function()
    srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  auth:
    api_keys:
      keys: {k-alice: alice, k-bob: bob, k-reader: reader, k-writer: writer, k-ops: ops, k-dot: al.ice}
    jwt: {secret: s3cret}
    admin: [ops]
    scope_claim: scope
store:
  data_dir: ./data
  access:
    read: [alice, bob, reader, al.ice]
    write: [alice, bob, writer]
    streams: ['${ctx.user}.*', 'public.*']
    groups: ['${ctx.user}-*']
    streams_claim: streams
input:
  generate: {interval: 1h, mapping: 'return 1'}
output:
  drop: {}
]])
    for _, s in ipairs({"alice.orders", "bob.orders", "public.news", "al.ice.x", "carol.x"}) do
      assert.are.equal(201, (as("k-ops", srv, "-X POST URL/stream/" .. s)))
      assert.are.equal(200, (as("k-ops", srv, "-X POST -d '{\"data\":\"" .. s ..
        "\"}' URL/stream/" .. s .. "/publish")))
    end
  end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  it("lets alice read her stream and not bob's, over REST, SSE and WebSocket", function()
    local code, body = as("k-alice", srv, "'URL/stream/alice.orders/consume/alice-1?from_offset=0'")
    assert.are.equal(200, code)
    assert.are.equal("alice.orders", body.events[1].data)
    for _, path in ipairs({"/stream/bob.orders/consume/alice-1?from_offset=0", "/stream/bob.orders/info",
                           "/stream/bob.orders/stats", "/stream/bob.orders", "/stream/bob.orders/groups",
                           "/stream/bob.orders/group/alice-g/consume?consumer=c", "/stream/bob.orders/sse/alice-1"}) do
      code, body = as("k-alice", srv, "'URL" .. path .. "'")
      assert.are.equal(403, code, path)
      assert.matches("user alice may not use stream bob.orders", body.error, 1, true)
    end
    -- a stream that does not exist answers the same: a 403 tells nothing
    assert.are.equal(403, (as("k-alice", srv, "URL/stream/bob.nothing/info")))
    local base = "ws://127.0.0.1:" .. srv.port
    assert.are.same({{status = 403}}, node("sse", srv.url .. "/stream/bob.orders/sse/alice-1?api_key=k-alice"))
    assert.are.same({{status = 403}}, node("ws", base .. "/stream/bob.orders/ws/alice-1?api_key=k-alice"))
    local sse = node("sse", srv.url .. "/stream/alice.orders/sse/alice-2?api_key=k-alice&from_offset=0")
    assert.are.equal("alice.orders", json.decode(sse[1].data).data)
    local ws = node("ws", base .. "/stream/alice.orders/ws/alice-3?api_key=k-alice&from_offset=0")
    assert.are.equal("alice.orders", json.decode(ws[1].text).data)
    local _, py = h.sh("/usr/bin/python3 spec/tools/ws_client.py '" .. base ..
      "/stream/alice.orders/ws/alice-4?api_key=k-alice&from_offset=0' --recv 1 --wait 5")
    assert.are.equal("alice.orders", json.decode(json.decode(h.lines(py)[1]).text).data)
    local _, refused = h.sh("/usr/bin/python3 spec/tools/ws_client.py '" .. base ..
      "/stream/bob.orders/ws/alice-4?api_key=k-alice' --recv 1 --wait 5 2>&1")
    assert.matches("403", refused)
  end)

  it("refuses bob's stream however the path is spelled, and answers odd names without crashing", function()
    for _, path in ipairs({"//bob.orders/info", "/bob%2eorders/info", "/alice.orders/../bob.orders/info",
                           "/alice.orders%2f..%2fbob.orders/info", "/%2e%2e/bob.orders/info", "/bob.orders%00/info",
                           "/%ff%fe/info", "/" .. string.rep("a", 4000) .. "/info", "/*/info", "/bob.*/info"}) do
      local code, body = as("k-alice", srv, "--path-as-is 'URL/stream" .. path .. "'")
      assert.is_true(code == 400 or code == 403 or code == 404, path .. " " .. tostring(code))
      local raw = type(body) == "table" and json.encode(body) or tostring(body)
      assert.is_nil(raw:find('"data":"bob.orders"', 1, true), path)
    end
    assert.are.equal(200, (curl(srv, "URL/ping")))
  end)

  it("lists only the streams each user may use; admins see all", function()
    local function list(key) return as(key, srv, "URL/stream/list") end
    local code, body = list("k-alice")
    assert.are.equal(200, code)
    assert.are.same({"alice.orders", "public.news"}, names(body.streams))
    assert.are.same({"bob.orders", "public.news"}, names(select(2, list("k-bob")).streams))
    assert.are.same({"public.news"}, names(select(2, list("k-reader")).streams))
    assert.are.same({"al.ice.x", "alice.orders", "bob.orders", "carol.x", "public.news"},
      names(select(2, list("k-ops")).streams))
    -- a user whose name has a '.' matches no ${ctx.user} pattern (it could reach into "al.*" tenants)
    assert.are.same({"public.news"}, names(select(2, list("k-dot")).streams))
    assert.are.equal(403, (as("k-dot", srv, "URL/stream/al.ice.x/info")))
    assert.are.equal(401, (curl(srv, "URL/stream/list")))
  end)

  it("lets only admins create and delete streams", function()
    for _, key in ipairs({"k-alice", "k-writer", "k-reader"}) do
      assert.are.equal(403, (as(key, srv, "-X DELETE URL/stream/bob.orders")), key)
      local code, body = as(key, srv, "-X DELETE URL/stream/alice.orders")
      assert.are.equal(403, code, key)
      assert.matches("admin scope", body.error, 1, true)
      assert.are.equal(403, (as(key, srv, "-X POST URL/stream/alice.new")), key)
    end
    assert.are.equal(201, (as("k-ops", srv, "-X POST URL/stream/bob.tmp")))
    assert.are.same({"bob.orders", "bob.tmp", "public.news"}, names(select(2, as("k-bob", srv, "URL/stream/list")).streams))
    assert.are.equal(200, (as("k-ops", srv, "-X DELETE URL/stream/bob.tmp")))
    assert.are.equal(404, (as("k-ops", srv, "URL/stream/bob.tmp/info")))
  end)

  it("keeps read and write apart: a read key cannot publish, a write key cannot read or delete", function()
    local pub = "-X POST -d '{\"event\":\"e\",\"data\":1}' URL/stream/public.news/publish"
    local code, body = as("k-reader", srv, pub)
    assert.are.equal(403, code)
    assert.matches("user reader may not publish", body.error, 1, true)
    assert.are.equal(200, (as("k-reader", srv, "'URL/stream/public.news/consume/reader-1?from_offset=0'")))
    assert.are.equal(200, (as("k-writer", srv, pub)))
    assert.are.equal(403, (as("k-writer", srv, "'URL/stream/public.news/consume/writer-1?from_offset=0'")))
    assert.are.equal(403, (as("k-writer", srv, "-X DELETE URL/stream/public.news")))
  end)

  it("keeps consumer names to their owners on a shared stream", function()
    assert.are.equal(201, (as("k-alice", srv, "-X POST URL/stream/public.news/group/alice-g")))
    assert.are.equal(201, (as("k-bob", srv, "-X POST URL/stream/public.news/group/bob-g")))
    assert.are.equal(200, (as("k-bob", srv, "'URL/stream/public.news/consume/bob-1?from_offset=0'")))
    for _, path in ipairs({"/stream/public.news/group/bob-g/consume?consumer=c",
                           "/stream/public.news/consume/bob-1?from_offset=0", "/stream/public.news/sse/bob-1"}) do
      local code, body = as("k-alice", srv, "'URL" .. path .. "'")
      assert.are.equal(403, code, path)
      assert.matches("consumer name bob", body.error, 1, true)
    end
    assert.are.equal(403, (as("k-alice", srv, "-X POST -d '{\"partition\":0,\"offset\":0}' " ..
      "URL/stream/public.news/group/bob-g/commit")))
    assert.are.equal(200, (as("k-alice", srv, "'URL/stream/public.news/consume/alice-1?from_offset=0'")))
    local _, groups = as("k-alice", srv, "URL/stream/public.news/groups")
    assert.are.same({"alice-g"}, names(groups.groups))
    local _, info = as("k-alice", srv, "URL/stream/public.news/info")
    assert.are.same({"alice-1"}, names(info.subscriber_names))
    local _, stats = as("k-alice", srv, "URL/stream/public.news/stats")
    assert.are.equal(1, stats.subscribers)
    local _, all = as("k-ops", srv, "URL/stream/public.news/groups")
    assert.are.same({"alice-g", "bob-g"}, names(all.groups))
  end)

  it("takes scopes and streams from JWT claims", function()
    local reader = token({sub = "zed", scope = "openid stream:read", streams = {"carol.*"}, exp = "now+60"})
    local auth = "-H 'Authorization: Bearer " .. reader .. "' "
    local code, body = curl(srv, auth .. "URL/stream/list")
    assert.are.equal(200, code)
    assert.are.same({"carol.x", "public.news"}, names(body.streams))
    assert.are.equal(200, (curl(srv, auth .. "'URL/stream/carol.x/consume/zed-1?from_offset=0'")))
    assert.are.equal(403, (curl(srv, auth .. "-X POST -d '{\"data\":1}' URL/stream/carol.x/publish")))
    assert.are.equal(403, (curl(srv, auth .. "URL/stream/alice.orders/info")))
    -- no scope at all: nothing, not even a list
    local none = token({sub = "dave", exp = "now+60"})
    assert.are.equal(403, (curl(srv, "-H 'Authorization: Bearer " .. none .. "' URL/stream/list")))
    local admin = token({sub = "eve", scope = "admin", exp = "now+60"})
    assert.are.equal(200, (curl(srv, "-H 'Authorization: Bearer " .. admin .. "' -X DELETE URL/stream/carol.x")))
  end)
end)

describe("store.access lint", function()
  it("needs http.auth and names or patterns", function()
    local r = h.run_config([[
http: {address: 127.0.0.1:0}
store:
  access:
    streams: ['${ctx.user}/*', 'ok.*']
    read: ['${ctx.user}']
input: {generate: {count: 1, mapping: 'return 1'}}
output: {drop: {}}
]], {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("access rules need http.auth", r.stderr, 1, true)
    assert.matches("streams: \"${ctx.user}/*\" is not a name or pattern", r.stderr, 1, true)
    assert.matches("read lists users", r.stderr, 1, true)
    assert.matches("3 errors", r.stderr, 1, true)
  end)
end)

describe("an open API on a public address", function()
  local function started(http)
    local srv = h.serve(http .. [[
store: {data_dir: ./data}
input: {generate: {interval: 1h, mapping: 'return 1'}}
output: {drop: {}}
]])
    local err = srv.stderr()
    assert.are.equal(0, srv.stop())
    return err
  end

  it("is warned about at start, naming the risk", function()
    local err = started("http: {address: '0.0.0.0:$PORT'}\n")
    assert.matches('level=warn msg="http: 0.0.0.0:%d+ is not a loopback address and there is no http.auth: anyone ' ..
      'who reaches it may read, publish to, create and delete every stream %(/stream/%)', err)
  end)

  it("names the streams-mode API too, which runs anyone's pipelines", function()
    local srv = h.serve("http: {address: '0.0.0.0:$PORT', streams_api: true}\n", {cmd = "streams"})
    local err = srv.stderr()
    assert.are.equal(0, srv.stop())
    assert.matches("anyone who reaches it may run pipelines of their own (/streams)", err, 1, true)
  end)

  it("is not warned about on loopback, or with auth", function()
    assert.is_nil(started("http: {address: '127.0.0.1:$PORT'}\n"):find("level=warn", 1, true))
    local err = started("http:\n  address: '0.0.0.0:$PORT'\n  auth: {api_keys: {keys: {k: u}}}\n")
    assert.is_nil(err:find("level=warn", 1, true))
    assert.matches("listening on 0.0.0.0", err, 1, true)
  end)
end)
