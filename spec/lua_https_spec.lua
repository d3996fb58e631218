-- https:// through sluice's own HTTP/1.1 client (http/hclient_lean.c): a TLS
-- session per pooled connection, checked against OpenSSL's default verify
-- paths, which SSL_CERT_FILE points at the test CA here (libcurl, which
-- does not read it, would refuse every one of these servers). The upstream
-- is spec/tools/upstream.py over TLS with certificates made for this run.
local h = require("spec.helpers")
local u = require("spec.upstream_helpers")

local up
setup(function() up = u.python({tls = true}) end)
teardown(function() up.stop() end)

-- Runs one message through a lua processor with code ($UP: the good
-- server's URL) and returns what it returned, decoded; env: more of sluice's environment.
local function run(code, env)
  local yaml = "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua:\n        code: |\n" ..
    code:gsub("%$UP", up.url):gsub("[^\n]+", "          %0") .. "\noutput:\n  stdout: {}\n"
  local r = h.run_config(yaml, {stdin = "{}\n", timeout = 60, env = "SSL_CERT_FILE=" .. up.ca .. " " .. (env or "")})
  assert.are.equal(0, r.code, r.stderr)
  return h.json.decode(h.lines(r.stdout)[1])
end

local function get(url, timeout)
  return run(string.format([[
local r, err = http.get(%q, {timeout = %d})
return {status = r and r.status, body = r and r.body, err = err}]], url, timeout or 10000))
end

describe("http.request over https", function()
  it("verifies a good certificate and keeps one connection for many calls", function()
    up.reset()
    local out = run([[
local seen = {}
for i = 1, 20 do
  local r, err = http.post("$UP/echo", "call " .. i)
  if not r then return {err = err} end
  seen[#seen + 1] = json.decode(r.body).body
end
return {n = #seen, last = seen[#seen]}]])
    assert.are.same({n = 20, last = "call 20"}, out)
    local st = up.stats()
    -- one connection for the 20 calls, and one for this stats request
    assert.are.equal(21, st.requests)
    assert.are.equal(2, st.connections)
  end)

  it("carries large bodies both ways and many calls at once", function()
    up.reset()
    local out = run([[
local big = string.rep("0123456789abcdef", 262144)   -- 4 MiB: many TLS records, writes that wait
local r, err = http.post("$UP/echo", big, {timeout = 30000})
if not r then return {err = err} end
local echoed = #json.decode(r.body).body
local h, herr = http.get("$UP/huge?mb=8", {max_size = 16777216, timeout = 30000})
if not h then return {err = herr} end
return {echoed = echoed, huge = #h.body}]])
    assert.are.same({echoed = 4194304, huge = 8388608}, out)
    local lines = {}
    for i = 1, 60 do lines[i] = string.format('{"n":%d}', i) end
    local yaml = "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua:\n        code: |\n" ..
      "          local r, err = http.get('" .. up.url .. "/delay?ms=30&n=' .. this.n)\n" ..
      "          return {n = r and json.decode(r.body).n, err = err}\noutput:\n  stdout: {}\n"
    local r = h.run_config(yaml, {stdin = table.concat(lines, "\n") .. "\n", timeout = 60, env = "SSL_CERT_FILE=" .. up.ca})
    assert.are.equal(0, r.code, r.stderr)
    local got = h.lines(r.stdout)
    assert.are.equal(60, #got)
    for i, l in ipairs(got) do assert.are.same({n = tostring(i)}, h.json.decode(l)) end
    assert.is_true(up.stats().max_inflight > 1)   -- they were in flight together
  end)

  it("keeps https and http connections apart (the pool's key has the scheme)", function()
    local out = run([[
local a, aerr = http.get("$UP/echo")
local b, berr = http.get((("$UP/echo"):gsub("^https:", "http:")), {timeout = 3000})
return {a = a and a.status, aerr = aerr, b = b and b.status, berr = berr ~= nil}]])
    -- plain text to a TLS server gets no HTTP answer: the kept TLS connection was not taken
    assert.are.same({a = 200, berr = true}, out)
  end)

  it("sends the host's name as SNI, and none for an address", function()
    up.reset()
    local out = run([[
local a, aerr = http.get("$UP/echo")
local b, berr = http.get((("$UP/echo"):gsub("127%.0%.0%.1", "localhost")))
return {a = a and a.status, b = b and b.status, err = aerr or berr}]])
    assert.are.same({a = 200, b = 200}, out)
    local sni = up.stats().sni   -- the stats request's own (curl's) is last
    assert.are.same({h.json.null, "localhost"}, {sni[1], sni[2]})
  end)

  it("never loads libcurl for it", function()
    assert.are.same({status = 200}, run([[
local r, err = http.get("$UP/status?code=200")
return {status = r and r.status, err = err}]], "SLUICE_LIBCURL=/nonexistent/libcurl.so.4"))
  end)

  it("resumes the TLS session on a new connection to the same server", function()
    up.reset()
    local out = run([[
for i = 1, 3 do
  local r, err = http.get("$UP/close")
  if not r then return {err = err} end
end
return {ok = true}]])
    assert.are.same({ok = true}, out)
    local st = up.stats()
    assert.are.equal(4, st.connections)   -- Connection: close each time, and stats
    assert.are.equal(2, st.resumed)       -- the second and third resumed the first's session
  end)

  it("refuses a certificate for another name, a self-signed one and an expired one", function()
    -- in libcurl's words
    assert.are.same({err = "http.request: SSL certificate problem: IP address mismatch"}, get(up.tls.wrongname .. "/echo"))
    assert.are.same({err = "http.request: SSL certificate problem: self-signed certificate"}, get(up.tls.self .. "/echo"))
    assert.are.same({err = "http.request: SSL certificate problem: certificate has expired"},
      get(up.tls.expired .. "/echo"))
  end)

  it("fails an answer cut by a close without close_notify, and ends a lengthless one at close_notify", function()
    local cut = get(up.url .. "/cut")
    assert.are.same({err = "http.request: transfer closed before the response was complete " ..
      "(closed without TLS close_notify)"}, cut)
    -- without a length the close is the body's end: only close_notify may say so
    assert.are.same(cut, get(up.url .. "/cuteof"))
    assert.are.same({status = 200, body = "until the end"}, get(up.url .. "/eof"))
    assert.matches("transfer closed before the response was complete", get(up.url .. "/half").err)
  end)

  it("times out a server that never finishes the handshake", function()
    local out = get(up.tls.mute .. "/echo", 1500)
    assert.matches("^http.request: Connection timed out after %d+ milliseconds$", out.err)
  end)

  it("fails a server that does not speak TLS, with the handshake's reason", function()
    local plain = u.python()
    local out = get("https://127.0.0.1:" .. plain.port .. "/echo")
    plain.stop()
    assert.matches("^http.request: TLS handshake with 127.0.0.1 port %d+ failed: ", out.err)
  end)
end)
