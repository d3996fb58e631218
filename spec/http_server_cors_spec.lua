-- http_server's `cors` (Benthos's, on a server of the component's own
-- address): curl sends an Origin and preflights, as a browser would.
local h = require("spec.helpers")

-- Status line and headers (lower-cased names) of curl's answer.
local function request(args)
  local code, out = h.sh("curl -s -m 20 -D - -o /dev/null " .. args)
  assert.are.equal(0, code, args)
  local status = tonumber(out:match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  for name, value in out:gmatch("\n([%w%-]+): ([^\r\n]*)") do headers[name:lower()] = value end
  return status, headers
end

local function preflight(url, origin)
  return request(string.format("-X OPTIONS -H 'Origin: %s' -H 'Access-Control-Request-Method: POST' "
    .. "-H 'Access-Control-Request-Headers: Content-Type' %s", origin, url))
end

describe("http_server cors", function()
  it("answers preflights and requests of allowed origins with Access-Control-*, others with none", function()
    local own, other = h.port(), h.port()
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
streams:
  in:
    input:
      http_server:
        address: 127.0.0.1:%d
        path: /poke
        allowed_verbs: [POST, HEAD]
        cors:
          enabled: true
          allowed_origins: [https://ok.example, https://also.example/]
    output: {drop: {}}
  out:
    input: {generate: {interval: 50ms, mapping: 'return "tick"'}}
    output:
      http_server:
        address: 127.0.0.1:%d
        path: /poll
        cors: {enabled: true, allowed_origins: ['*']}
  plain:
    input: {http_server: {path: /plain}}
    output: {drop: {}}
]], own, other))
    local ok, err = pcall(function()
      local poke = "http://127.0.0.1:" .. own .. "/poke"
      local status, hd = preflight(poke, "https://ok.example")
      assert.are.equal(204, status)
      assert.are.equal("https://ok.example", hd["access-control-allow-origin"])
      assert.matches("POST", hd["access-control-allow-methods"])
      assert.matches("Content%-Type", hd["access-control-allow-headers"])
      -- a configured trailing slash compares as browsers send origins
      status, hd = preflight(poke, "https://also.example")
      assert.are.same({204, "https://also.example"}, {status, hd["access-control-allow-origin"]})
      status, hd = request("-H 'Origin: https://ok.example' -d x " .. poke)
      assert.are.same({200, "https://ok.example"}, {status, hd["access-control-allow-origin"]})
      -- a disallowed origin: no CORS headers on either
      status, hd = preflight(poke, "https://evil.example")
      assert.are.equal(403, status)
      assert.is_nil(hd["access-control-allow-origin"])
      assert.is_nil(hd["access-control-allow-methods"])
      status, hd = request("-H 'Origin: https://evil.example' -d x " .. poke)
      assert.are.equal(200, status)
      assert.is_nil(hd["access-control-allow-origin"])
      -- the output's own server, any origin
      status, hd = request("-H 'Origin: https://any.example' http://127.0.0.1:" .. other .. "/poll")
      assert.are.same({200, "*"}, {status, hd["access-control-allow-origin"]})
      -- hostile origins: empty, 8 KB, non-UTF-8 bytes: none allowed, `*` never echoes them
      for _, origin in ipairs({"", ("x"):rep(8192), "https://\xff\xfe.example"}) do
        status, hd = request(string.format("-H %s -d x %s", h.shell_quote("Origin: " .. origin), poke))
        assert.are.equal(200, status)
        assert.is_nil(hd["access-control-allow-origin"])
        status, hd = request(string.format("-H %s http://127.0.0.1:%d/poll", h.shell_quote("Origin: " .. origin), other))
        assert.are.equal(200, status)
        local want = "*"
        if origin == "" then want = nil end
        assert.are.equal(want, hd["access-control-allow-origin"])
      end
      -- the shared server has no CORS of its own here
      status, hd = request("-H 'Origin: https://ok.example' -d x " .. srv.url .. "/plain")
      assert.are.equal(200, status)
      assert.is_nil(hd["access-control-allow-origin"])
    end)
    h.stop_after(srv, ok, err)
  end)

  it("a reload sets the policy again: a new origin, then none", function()
    local own = h.port()
    local function config(cors)
      return string.format([[
http: {address: 127.0.0.1:$PORT}
input: {http_server: {address: 127.0.0.1:%d, path: /in, cors: %s}}
output: {drop: {}}
]], own, cors)
    end
    local srv = h.serve(config("{enabled: true, allowed_origins: [https://a.example]}"), {cmd = "run -w"})
    local ok, err = pcall(function()
      local url = "http://127.0.0.1:" .. own .. "/in"
      local function allowed(origin) return select(2, preflight(url, origin))["access-control-allow-origin"] end
      assert.are.equal("https://a.example", allowed("https://a.example"))
      h.write(srv.dir .. "/config.yaml",
        (config("{enabled: true, allowed_origins: [https://b.example]}"):gsub("%$PORT", tostring(srv.port))))
      assert.truthy(h.wait_for(function() return allowed("https://b.example") == "https://b.example" end, 30),
        srv.stderr())
      assert.is_nil(allowed("https://a.example"))
      h.write(srv.dir .. "/config.yaml", (config("{enabled: false}"):gsub("%$PORT", tostring(srv.port))))
      assert.truthy(h.wait_for(function() return allowed("https://b.example") == nil end, 30), srv.stderr())
    end)
    h.stop_after(srv, ok, err)
  end)

  it("lint: cors needs an address of its own and an origin; disabled it is accepted as Benthos writes it", function()
    local r = h.run_config([[
streams:
  a:
    input: {http_server: {path: /a, cors: {enabled: true, allowed_origins: ['*']}}}
    output: {drop: {}}
  b:
    input: {http_server: {address: 127.0.0.1:4999, path: /b, cors: {enabled: true}}}
    output: {drop: {}}
]], {cmd = "lint"})
    local out = r.stdout .. r.stderr
    assert.are.equal(1, r.code, out)
    assert.matches(":3:%d+: cors: applies to a server of this component's own: set `address`", out)
    assert.matches(":6:%d+: allowed_origins: name at least one origin", out)
    r = h.run_config([[
input: {http_server: {path: /a, cors: {enabled: false, allowed_origins: []}}}
output: {drop: {}}
]], {cmd = "lint"})
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
  end)
end)
