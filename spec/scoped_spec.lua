-- Request-scoped streams: one instance per distinct resolution of ${ctx.…}
-- (and Tyk's $tyk_context aliases), shared by its clients, collected when idle.
-- Driven with curl and Python websockets.
local h = require("spec.helpers")
local json = h.json

local function curl(args)
  local _, out = h.sh("curl -s -m 5 " .. args)
  return out
end

local WS = "/usr/bin/python3 spec/tools/ws_client.py "

-- A template whose generate input names the user it was resolved for; the
-- processor reads the instance's ctx (request_id tells instances apart).
local TEMPLATE = [[
http:
  address: 127.0.0.1:$PORT
streams:
  out:
    input:
      generate:
        interval: 50ms
        mapping: 'return {owner = "$tyk_context.request_data_user", region = "${ctx.headers.x-region:eu}", n = i}'
    pipeline:
      processors:
        - lua: 'this.seen_by = ctx.query.user; this.instance = ctx.request_id'
    output:
      http_server:
        path: /get-event
        sse_path: /sse
        ws_path: /ws
    request_scope:
      idle_timeout: 700ms
      max_instances: 3
  by_header:
    input:
      generate:
        interval: 50ms
        mapping: 'return {tenant = "$tyk_context.headers_X_Tenant", sub = "${ctx.jwt.sub:anonymous}"}'
    output:
      http_server: {path: /by-header}
]]

describe("request-scoped streams", function()
  local srv
  setup(function() srv = h.serve(TEMPLATE) end)
  teardown(function() if srv then srv.stop() end end)

  local function get(user, region)
    local out = curl(string.format("-H 'X-Region: %s' '%s/get-event?user=%s'", region or "eu", srv.url, user))
    return json.decode(out)
  end

  it("gives each user an instance resolved from the request, whose processors see its ctx", function()
    local a, b = get("alice"), get("bob", "us")
    assert.are.equal("alice", a.owner)
    assert.are.equal("eu", a.region)
    assert.are.equal("alice", a.seen_by)
    assert.are.equal("bob", b.owner)
    assert.are.equal("us", b.region)
    assert.are.equal("bob", b.seen_by)
    assert.are_not.equal(a.instance, b.instance)
  end)

  it("shares one instance among the clients that resolve the same way", function()
    -- SSE and WebSocket clients of carol at the same time, then a GET: one instance.
    local sse = io.popen("curl -s -N -m 1.5 '" .. srv.url .. "/sse?user=carol' -H 'X-Region: eu'")
    os.execute("sleep 0.2")
    local ws = io.popen(WS .. "'ws://127.0.0.1:" .. srv.port .. "/ws?user=carol' --recv 3 --wait 3")
    local g = get("carol")
    local sse_out, ws_out = sse:read("a"), ws:read("a")
    sse:close(); ws:close()
    local first_sse = json.decode(sse_out:match("data: ([^\n]+)"))
    local first_ws = json.decode(json.decode(h.lines(ws_out)[1]).text)
    assert.are.equal("carol", first_sse.owner)
    assert.are.equal(first_sse.instance, first_ws.instance)
    assert.are.equal(first_sse.instance, g.instance)
    local starts = select(2, srv.stderr():gsub("stream=out{carol,eu} msg=\"request%-scoped instance started\"", ""))
    assert.are.equal(1, starts)
  end)

  it("stops an instance idle_timeout after its last client and starts a new one on demand", function()
    local first = get("dave")
    os.execute("sleep 1.2")
    assert.matches("stream=out{dave,eu} msg=\"request%-scoped instance stopping %(idle%)\"", srv.stderr())
    local again = get("dave")
    assert.are.equal("dave", again.owner)
    assert.are_not.equal(first.instance, again.instance)
    -- the new instance starts counting again: it is not the old one resumed
    assert.is_true(again.n < first.n + 20)
  end)

  it("resolves Tyk's header alias (X_Tenant is the X-Tenant header) and ${ctx…:default}", function()
    local v = json.decode(curl("-H 'X-Tenant: acme' '" .. srv.url .. "/by-header'"))
    assert.are.same({tenant = "acme", sub = "anonymous"}, v)
  end)

  it("answers 400 with JSON when the request lacks a value", function()
    local out = curl("-w '\\n%{http_code}' '" .. srv.url .. "/get-event'")
    local body, code = out:match("^(.*)\n(%d+)$")
    assert.are.equal("400", code)
    local e = json.decode(body)
    assert.are.equal(400, e.status)
    assert.matches("query parameter `user`", e.error)
  end)

  it("refuses values that could escape their field, and instances beyond max_instances", function()
    local out = curl("-w '\\n%{http_code}' '" .. srv.url .. "/get-event?user=a%0Ab'")
    assert.matches("\n400$", out)
    assert.matches("letters, digits", out)
    -- max_instances is 3; collected ones (alice, bob, carol...) may still be live: fill up.
    local codes = {}
    for k = 1, 4 do
      codes[#codes + 1] = curl("-o /dev/null -w '%{http_code}' -m 0.3 '" .. srv.url .. "/get-event?user=u" .. k .. "'")
    end
    local refused = 0
    for _, c in ipairs(codes) do if c == "503" then refused = refused + 1 end end
    assert.is_true(refused >= 1, table.concat(codes, ","))
  end)
end)

describe("request-scoped stream config", function()
  local function lint(yaml)
    local r = h.run_config(yaml, {cmd = "lint"})
    return r.code, r.stderr
  end

  it("requires an http_server output and says where the reference is", function()
    local code, err = lint("input:\n  generate: {mapping: 'return \"${ctx.query.user}\"'}\noutput:\n  stdout: {}\n")
    assert.are.equal(1, code)
    assert.matches(":2:%d+: .*request%-scoped stream's output must be `http_server`", err)
  end)

  it("refuses a request-dependent route and an unknown context field", function()
    local code, err = lint("input:\n  generate: {mapping: 'return 1'}\noutput:\n  http_server: {path: '/u/${ctx.query.user}'}\n")
    assert.are.equal(1, code)
    assert.matches("cannot depend on the request", err)
    code, err = lint("input:\n  generate: {mapping: 'return \"${ctx.nope}\"'}\noutput:\n  http_server: {path: /x}\n")
    assert.are.equal(1, code)
    assert.matches(":2:%d+: .*not a request%-context reference", err)
  end)

  it("checks the rest of the template at load, with the request's values left open", function()
    local code, err = lint("input:\n  generate: {interval: 'soon', mapping: 'return \"${ctx.user}\"'}\n" ..
      "output:\n  http_server: {path: /x}\n")
    assert.are.equal(1, code)
    assert.matches("interval", err)
    code = lint("input:\n  generate: {count: '${ctx.query.n:3}', mapping: 'return \"${ctx.user}\"'}\n" ..
      "output:\n  http_server: {path: /x}\n")
    assert.are.equal(0, code)
  end)
end)
