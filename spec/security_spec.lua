-- Safe edges (docs/security.md): what a request leaves in stored records
-- (request metadata allowlists; credentials never), who may use the streams
-- API (store.access: scopes, tenants' streams and consumer names) over REST
-- (curl), SSE (npm eventsource) and WebSocket (npm ws, Python websockets),
-- and the warning of an open API on a public address.
local h = require("spec.helpers")
local json = h.json

local function curl(srv, args)
  local _, out = h.sh("curl -s -m 10 -w '\\n%{http_code}' " .. args:gsub("URL", srv.url))
  local body, code = out:match("^(.*)\n(%d+)$")
  local ok, j = pcall(json.decode, body)
  return tonumber(code), ok and j or body
end

local function as(key, srv, args) return curl(srv, "-H 'X-API-Key: " .. key .. "' " .. args) end

local function node(mode, url, n)
  local _, out = h.sh(string.format("cd spec/node && node access.js %s %s %d", mode, h.shell_quote(url), n or 1))
  local t = {}
  for _, l in ipairs(h.lines(out)) do t[#t + 1] = json.decode(l) end
  return t
end

local function names(list)
  local t = {}
  for _, n in ipairs(list) do t[#t + 1] = type(n) == "table" and n.group or n end
  table.sort(t)
  return t
end

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

  it("is not warned about on loopback, or with auth", function()
    assert.is_nil(started("http: {address: '127.0.0.1:$PORT'}\n"):find("level=warn", 1, true))
    local err = started("http:\n  address: '0.0.0.0:$PORT'\n  auth: {api_keys: {keys: {k: u}}}\n")
    assert.is_nil(err:find("level=warn", 1, true))
    assert.matches("listening on 0.0.0.0", err, 1, true)
  end)
end)
