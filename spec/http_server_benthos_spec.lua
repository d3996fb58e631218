-- http_server's `address` (a server of its own, as in Benthos) and its
-- input's `sync_response` (status, headers, metadata headers of the answer).
local h = require("spec.helpers")

local function curl(args)
  local code, out = h.sh("curl -s -m 20 " .. args)
  assert.are.equal(0, code, args)
  return out
end

local function status_of(args)
  return curl("-o /dev/null -w '%{http_code}' " .. args)
end

describe("http_server address", function()
  it("serves an input's and an output's paths on their own server, not on the shared one", function()
    local own = h.port()
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
streams:
  in:
    input: {http_server: {address: 127.0.0.1:%d, path: /in}}
    pipeline:
      processors: [{lua: {code: 'return content():upper()'}}]
    output: {sync_response: {}}
  out:
    input: {generate: {interval: 50ms, mapping: 'return "tick"'}}
    output: {http_server: {address: 127.0.0.1:%d, path: /poll}}
  shared:
    input: {http_server: {path: /shared}}
    output: {drop: {}}
]], own, own))
    local ok, err = pcall(function()
      local o = "http://127.0.0.1:" .. own
      assert.are.equal("HELLO", curl("-d hello " .. o .. "/in"))
      assert.are.equal("pong", curl(o .. "/ping"))
      assert.are.equal("tick", curl(o .. "/poll"))
      -- each path only where it is served
      assert.are.equal("404", status_of("-d x " .. srv.url .. "/in"))
      assert.are.equal("404", status_of(srv.url .. "/poll"))
      assert.are.equal("404", status_of("-d x " .. o .. "/shared"))
      assert.are.equal("200", status_of("-d x " .. srv.url .. "/shared"))
      assert.are.equal("404", status_of(o .. "/metrics"))
      assert.matches("listening on 127.0.0.1:" .. own, srv.stderr(), 1, true)
    end)
    h.stop_after(srv, ok, err)
    -- stopped: the own server is closed too
    assert.are_not.equal(0, (h.sh("curl -s -m 5 http://127.0.0.1:" .. own .. "/ping")))
  end)

  it("a reload hands its own server's paths over, and serves a new address", function()
    local own, other = h.port(), h.port()
    local function config(v, port)
      return string.format([[
http: {address: 127.0.0.1:$PORT}
input: {http_server: {address: 127.0.0.1:%d, path: /in}}
pipeline:
  processors: [{lua: {code: 'return "%s:" .. content()'}}]
output: {sync_response: {}}
]], port, v)
    end
    local srv = h.serve(config("v1", own), {cmd = "run -w"})
    local ok, err = pcall(function()
      local o = "http://127.0.0.1:" .. own
      assert.are.equal("v1:a", curl("-d a " .. o .. "/in"))
      h.write(srv.dir .. "/config.yaml", (config("v2", own):gsub("%$PORT", tostring(srv.port))))
      assert.truthy(h.wait_for(function() return curl("-d a " .. o .. "/in") == "v2:a" end, 30), srv.stderr())
      h.write(srv.dir .. "/config.yaml", (config("v3", other):gsub("%$PORT", tostring(srv.port))))
      local n = "http://127.0.0.1:" .. other
      assert.truthy(h.wait_for(function()
        return h.sh("curl -s -m 2 -d a " .. n .. "/in") == 0 and curl("-d a " .. n .. "/in") == "v3:a"
      end, 30), srv.stderr())
      assert.are.equal("404", status_of("-d a " .. o .. "/in"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("listens on its own address without an http section, and lint refuses a bad address at its line", function()
    local d = h.tmpdir()
    local own = h.port()
    h.write(d .. "/c.yaml", string.format([[
input: {http_server: {address: 127.0.0.1:%d, path: /in, timeout: 30s}}
output: {sync_response: {}}
]], own))
    os.execute(string.format("cd %s && (%s run c.yaml > out.txt 2> err.txt & echo $! > pid.txt) ", d, h.abs_bin))
    local up = h.wait_for(function() return h.sh("curl -s -m 1 http://127.0.0.1:" .. own .. "/ping") == 0 end, 20)
    local answer = up and curl("-d hi http://127.0.0.1:" .. own .. "/in")
    os.execute("kill -TERM " .. h.read(d .. "/pid.txt"):match("%d+"))
    h.wait_for(function() return (h.read(d .. "/err.txt") or ""):find("all streams finished", 1, true) end, 30)
    local err = h.read(d .. "/err.txt") or ""
    h.rmdir(d)
    assert.truthy(up, err)
    assert.are.equal("hi", answer)
    assert.is_nil(err:find("listening on 0.0.0.0:4195", 1, true))
    local r = h.run_config("input:\n  http_server: {address: 'nope:x'}\noutput: {drop: {}}\n", {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(':2:26: address: "nope:x" is not an address to listen on', r.stdout .. r.stderr, 1, true)
  end)
end)

describe("http_server sync_response", function()
  it("shapes the answer a sync_response output set: status and headers interpolated, metadata by prefix and pattern",
    function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server:
    path: /in
    sync_response:
      status: '${! meta.code }'
      headers: {X-Echo: 'got ${! content() }', Content-Type: text/plain, X-Bad: '${! "a\r\nInjected: 1" }'}
      metadata_headers: {include_prefixes: [out_], include_patterns: ['^tr.ce$']}
pipeline:
  processors:
    - lua: {code: 'meta.code = content() == "bad" and "nine" or "201"; meta.out_a = "1"; meta.out_b = "x\nY: z"; meta.trace = "t1"; meta.other = "no"; return content():upper()'}
output:
  sync_response: {}
]])
    local ok, err = pcall(function()
      local out = curl("-i -d hello " .. srv.url .. "/in")
      assert.matches("^HTTP/1.1 201 Created\r\n", out)
      assert.matches("\r\nContent%-Type: text/plain\r\n", out)
      assert.matches("\r\nX%-Echo: got HELLO\r\n", out)
      assert.matches("\r\nout_a: 1\r\n", out)
      assert.matches("\r\ntrace: t1\r\n", out)
      assert.is_nil(out:find("other", 1, true))
      assert.is_nil(out:find("out_b", 1, true))
      assert.is_nil(out:find("Injected", 1, true))
      assert.matches("\r\n\r\nHELLO$", out)
      -- a status that is not one keeps the output's, logged
      out = curl("-i -d bad " .. srv.url .. "/in")
      assert.matches("^HTTP/1.1 200 OK\r\n", out)
      assert.matches("sync_response.status: not a status: nine", srv.stderr(), 1, true)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("lint: a bad pattern and bad Lua in an interpolation, at their line", function()
    local r = h.run_config([[
input:
  http_server:
    sync_response:
      status: '${! meta. }'
      metadata_headers: {include_patterns: ['(']}
output: {sync_response: {}}
]], {cmd = "lint"})
    assert.are.equal(1, r.code)
    local out = r.stdout .. r.stderr
    assert.matches(":4:15: status: ", out, 1, true)
    assert.matches(":5:45: include_patterns: not a regular expression", out, 1, true)
  end)
end)
