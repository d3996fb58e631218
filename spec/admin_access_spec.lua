-- The control APIs need the admin scope when http.auth is set: /admin/status,
-- /admin/reload and streams mode's /streams (which runs pipelines, Lua code
-- included). Admins are http.auth.admin (users or patterns) or a token whose
-- http.auth.scope_claim holds `admin`, and the same admins create and delete
-- streams on /stream/. Without http.auth the APIs stay open (and a public
-- address is warned about). All with curl against a real server.
local h = require("spec.helpers")
local json = h.json
local api = require("spec.api_helpers")
local curl, as = api.curl, api.as

local JWT = "python3 spec/tools/jwt.py HS256 s3cret "
local function token(claims)
  local _, out = h.sh(JWT .. h.shell_quote(json.encode(claims)))
  return (out:gsub("%s+$", ""))
end
local function bearer(claims) return "-H 'Authorization: Bearer " .. token(claims) .. "' " end

-- A stream's config as a curl body argument.
local function body(path)
  return "--data-binary " .. h.shell_quote("input: {http_server: {path: " .. path .. "}}\noutput: {drop: {}}\n") .. " "
end

-- Every request the control APIs take: method, path, curl arguments.
local CONTROL = {
  {"GET", "/admin/status", ""},
  {"POST", "/admin/reload", ""},
  {"GET", "/streams", ""},
  {"POST", "/streams", "--data-binary '{}' "},
  {"GET", "/streams/fromfile", ""},
  {"GET", "/streams/fromfile/stats", ""},
  {"POST", "/streams/x", body("/x")},
  {"PUT", "/streams/x", body("/x")},
  {"PUT", "/streams/fromfile", body("/f2")},
  {"PATCH", "/streams/fromfile", "--data-binary '{output: {stdout: {}}}' "},
  {"DELETE", "/streams/fromfile", ""},
  {"DELETE", "/streams/x", ""},
}

local CONFIG = [[
http:
  address: 127.0.0.1:$PORT
  streams_api: true
  auth:
    api_keys:
      keys: {k-alice: alice, k-ops: ops, k-night: ops-night, k-star: '*'}
    jwt: {secret: s3cret}
    admin: [ops, 'ops-*']
    scope_claim: scope
store:
  data_dir: ./data
  access:
    streams: ['${ctx.user}.*']
streams:
  fromfile:
    input: {http_server: {path: /f}}
    output: {drop: {}}
]]

describe("control APIs with http.auth", function()
  local srv
  setup(function() srv = h.serve(CONFIG) end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  -- What an admin sees: the streams and the config version, to show a refused call changed nothing.
  local function state()
    local code, streams = as("k-ops", srv, "URL/streams")
    assert.are.equal(200, code)
    local _, status = as("k-ops", srv, "URL/admin/status")
    local ids = {}
    for id in pairs(streams) do ids[#ids + 1] = id end
    table.sort(ids)
    return {ids = ids, version = status.config.version}
  end

  local function refused(auth, who)
    local before = state()
    for _, c in ipairs(CONTROL) do
      local what = who .. " " .. c[1] .. " " .. c[2]
      local code, b = curl(srv, auth .. "-X " .. c[1] .. " " .. c[3] .. "URL" .. c[2])
      assert.are.equal(403, code, what)
      assert.are.equal("table", type(b), what)
      assert.are.equal(403, b.status, what)
      assert.matches("admin scope (http.auth.admin", b.error, 1, true)
    end
    assert.are.same(before, state())
  end

  it("answers a user who is not an admin 403 with a JSON body, and changes nothing", function()
    refused("-H 'X-API-Key: k-alice' ", "alice")
    local _, b = as("k-alice", srv, "URL/admin/status")
    assert.matches("user alice may not", b.error, 1, true)
    -- a key whose user is literally '*' is no pattern: not an admin
    refused("-H 'X-API-Key: k-star' ", "'*'")
  end)

  it("answers a token without the admin scope 403", function()
    refused(bearer({sub = "zed", scope = "openid stream:read stream:write", exp = "now+60"}), "stream scopes")
    -- the words of the claim count, not a part of one; another claim does not count
    refused(bearer({sub = "zed", scope = "administrator stream:admin", roles = "admin", exp = "now+60"}), "near words")
    refused(bearer({scope = {"read", "Admin"}, exp = "now+60"}), "no sub")
  end)

  it("answers 401 without credentials, as before", function()
    for _, c in ipairs(CONTROL) do
      assert.are.equal(401, (curl(srv, "-X " .. c[1] .. " " .. c[3] .. "URL" .. c[2])), c[1] .. " " .. c[2])
    end
  end)

  -- Runs the whole API as one admin: create, read, replace, patch, delete, reload, status.
  local function manages(auth, who)
    local function call(method, path, args)
      local code, b = curl(srv, auth .. "-X " .. method .. " " .. (args or "") .. "URL" .. path)
      assert.are.equal(200, code, who .. " " .. method .. " " .. path .. ": " .. json.encode(b))
      return b
    end
    assert.are.same({"x"}, call("POST", "/streams/x", body("/x")).added)
    assert.are.equal("/x", call("GET", "/streams/x").config.input.http_server.path)
    assert.are.same({"x"}, call("PUT", "/streams/x", body("/x2")).changed)
    assert.are.same({"x"}, call("PATCH", "/streams/x", "--data-binary '{output: {drop: {}}}' ").unchanged)
    assert.are.equal(0, call("GET", "/streams/x/stats").input_received)
    assert.truthy(call("GET", "/streams").x)
    assert.are.same({"x"}, call("DELETE", "/streams/x").removed)
    assert.are.same({"fromfile"}, call("POST", "/admin/reload").unchanged)
    assert.are.equal("running", call("GET", "/admin/status").streams.fromfile.state)
    -- the whole set, the file's stream kept
    assert.are.same({"fromfile"}, call("POST", "/streams", "--data-binary " .. h.shell_quote(json.encode(
      {fromfile = {input = {http_server = {path = "/f"}}, output = {drop = {}}}})) .. " ").unchanged)
  end

  it("lets an admin key, a user matching an admin pattern and tokens with the admin scope manage the server", function()
    manages("-H 'X-API-Key: k-ops' ", "ops")
    manages("-H 'X-API-Key: k-night' ", "ops-night")
    manages(bearer({sub = "zed", scope = "openid admin", exp = "now+60"}), "scope admin")
    manages(bearer({scope = {"stream:read", "admin"}, exp = "now+60"}), "scope list")
    manages(bearer({sub = "ops", exp = "now+60"}), "JWT user ops")
  end)

  it("uses the same admins for creating and deleting streams on /stream/", function()
    local code, b = as("k-alice", srv, "-X POST URL/stream/alice.new")
    assert.are.equal(403, code)
    assert.matches("admin scope (http.auth.admin", b.error, 1, true)
    assert.are.equal(201, (as("k-ops", srv, "-X POST URL/stream/alice.new")))
    local admin = bearer({sub = "zed", scope = "admin", exp = "now+60"})
    -- an admin sees every stream, whatever store.access.streams says
    code, b = curl(srv, admin .. "URL/stream/list")
    assert.are.equal(200, code)
    assert.are.same({"alice.new"}, b.streams)
    assert.are.equal(200, (curl(srv, admin .. "-X DELETE URL/stream/alice.new")))
    assert.are.equal(403, (curl(srv, bearer({sub = "zed", scope = "stream:admin", exp = "now+60"}) ..
      "-X POST URL/stream/zed.x")))
  end)
end)

describe("control APIs without http.auth", function()
  it("stay open, as before", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  streams_api: true
streams:
  fromfile:
    input: {http_server: {path: /f}}
    output: {drop: {}}
]])
    local ok, err = pcall(function()
      assert.are.equal(200, (curl(srv, "URL/admin/status")))
      assert.are.same({"fromfile"}, select(2, curl(srv, "-X POST URL/admin/reload")).unchanged)
      assert.are.same({"x"}, select(2, curl(srv, "-X POST " .. body("/x") .. "URL/streams/x")).added)
      assert.are.same({"x"}, select(2, curl(srv, "-X DELETE URL/streams/x")).removed)
      assert.truthy(select(2, curl(srv, "URL/streams")).fromfile)
    end)
    h.stop_after(srv, ok, err)
  end)
end)

describe("admin lint", function()
  local function lint(yaml)
    local r = h.run_config(yaml, {cmd = "lint"})
    return r.code, r.stderr
  end

  it("gives the new spelling of store.access.admin and scope_claim", function()
    local code, err = lint([[
http:
  auth: {api_keys: {keys: {k: ops}}}
store:
  access:
    admin: [ops]
    scope_claim: scope
]])
    assert.are.equal(1, code)
    assert.matches("store.access.admin: moved to http.auth.admin", err, 1, true)
    assert.matches("store.access.scope_claim: moved to http.auth.scope_claim", err, 1, true)
    assert.matches("2 errors", err, 1, true)
  end)

  it("needs credentials for admins, users for the admin list, and a JWT for the scope claim", function()
    local code, err = lint([[
http:
  auth:
    admin: [ops]
input: {generate: {count: 1, mapping: 'return 1'}}
output: {drop: {}}
]])
    assert.are.equal(1, code)
    assert.matches("http.auth: admin needs api_keys or jwt to tell who is asking", err, 1, true)
    code, err = lint([[
http:
  auth:
    api_keys: {keys: {k: ops}}
    admin: ['${ctx.user}']
    scope_claim: scope
input: {generate: {count: 1, mapping: 'return 1'}}
output: {drop: {}}
]])
    assert.are.equal(1, code)
    assert.matches("http.auth.admin: admin lists users (or patterns of them)", err, 1, true)
    assert.matches("http.auth.scope_claim: scope_claim needs jwt", err, 1, true)
    assert.matches("2 errors", err, 1, true)
    code = lint([[
http:
  auth:
    jwt: {secret: x}
    admin: [ops, 'ops-*']
    scope_claim: scope
input: {generate: {count: 1, mapping: 'return 1'}}
output: {drop: {}}
]])
    assert.are.equal(0, code)
  end)

  it("refuses admin on a component's own auth, which guards no control API", function()
    local code, err = lint([[
input:
  http_server:
    path: /in
    auth: {api_keys: {keys: {k: ops}}, admin: [ops]}
output: {drop: {}}
]])
    assert.are.equal(1, code)
    assert.matches("input.http_server.auth.admin: unknown field", err, 1, true)
  end)
end)

describe("an open control API on a public address", function()
  it("is warned about at start", function()
    local srv = h.serve("http: {address: '0.0.0.0:$PORT'}\ninput: {http_server: {path: /in}}\noutput: {drop: {}}\n")
    local err = srv.stderr()
    assert.are.equal(0, srv.stop())
    assert.matches("anyone who reaches it may reload the config and read its status (/admin/reload, /admin/status)",
      err, 1, true)
  end)
end)

describe("streams mode with http.auth and no admin", function()
  it("says at start that every call will be refused, and refuses them", function()
    local srv = h.serve("http:\n  address: 127.0.0.1:$PORT\n  auth: {api_keys: {keys: {k-1: ops}}}\n",
      {cmd = "streams"})
    local ok, err = pcall(function()
      assert.matches("streams API: http.auth names no admin", srv.stderr(), 1, true)
      assert.are.equal(403, (as("k-1", srv, "URL/streams")))
    end)
    h.stop_after(srv, ok, err)
  end)
end)
