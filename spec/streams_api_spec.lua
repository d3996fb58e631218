-- Streams mode: the /streams API (create, read, update, patch, delete,
-- stats, lint errors, persistence across a restart, auth) with curl.
local h = require("spec.helpers")
local json = h.json

local function req(method, url, body, hdr)
  local f
  if body then f = h.write(h.tmpname(), body) end
  local _, out = h.sh(string.format("curl -s -m 10 -w '\\n%%{http_code}' -X %s %s %s %s", method, hdr or "",
    f and ("--data-binary @" .. f) or "", url))
  if f then os.remove(f) end
  local text, code = out:match("^(.*)\n(%d+)$")
  local ok, decoded = pcall(json.decode, text)
  return tonumber(code), ok and decoded or text
end

local wait_for = h.wait_for

local SECTIONS = [[
http:
  address: 127.0.0.1:$PORT
]]

local FOO = [[
input:
  http_server: {path: /foo}
pipeline:
  processors:
    - lua: 'return {got = this.v, by = "foo-v1"}'
output:
  sync_response: {}
]]

describe("streams API", function()
  it("creates, lists, reads, updates, patches and deletes streams", function()
    local srv = h.serve(SECTIONS, {cmd = "streams"})
    local ok, err = pcall(function()
      local u = srv.url
      local code, body = req("GET", u .. "/streams")
      assert.are.equal(200, code)
      assert.are.same({}, body)
      code, body = req("POST", u .. "/streams/foo", FOO)
      assert.are.equal(200, code)
      assert.are.same({"foo"}, body.added)
      code, body = req("POST", u .. "/foo", '{"v": 7}')
      assert.are.equal(200, code)
      assert.are.same({got = 7, by = "foo-v1"}, body)
      -- POST on an existing id is refused; PUT replaces it.
      code, body = req("POST", u .. "/streams/foo", FOO)
      assert.are.equal(409, code)
      assert.are.equal(409, body.status)
      code, body = req("GET", u .. "/streams")
      assert.is_true(body.foo.active)
      assert.truthy(body.foo.uptime >= 0)
      code, body = req("GET", u .. "/streams/foo")
      assert.are.equal(200, code)
      assert.are.equal("/foo", body.config.input.http_server.path)
      -- JSON is YAML: PUT a JSON body.
      code, body = req("PUT", u .. "/streams/foo", json.encode({
        input = {http_server = {path = "/foo"}},
        pipeline = {processors = {{lua = 'return {got = this.v, by = "foo-v2"}'}}},
        output = {sync_response = {}},
      }))
      assert.are.equal(200, code)
      assert.are.same({"foo"}, body.changed)
      code, body = req("POST", u .. "/foo", '{"v": 8}')
      assert.are.same({got = 8, by = "foo-v2"}, body)
      -- PATCH merges into the current config.
      code, body = req("PATCH", u .. "/streams/foo", "input: {http_server: {path: /foo2}}")
      assert.are.equal(200, code)
      assert.are.same({"foo"}, body.changed)
      code, body = req("POST", u .. "/foo2", '{"v": 9}')
      assert.are.same({got = 9, by = "foo-v2"}, body)
      code = req("POST", u .. "/foo", '{"v": 9}')
      assert.are.equal(404, code)
      code, body = req("GET", u .. "/streams/foo/stats")
      assert.are.equal(200, code)
      assert.are.equal(3, body.input_received)
      assert.are.equal(3, body.output_sent)
      assert.are.equal(0, body.output_error)
      -- PUT back what GET gave: nothing is replaced.
      local _, raw = h.sh("curl -s " .. u .. "/streams/foo | python3 -c " ..
        h.shell_quote("import json,sys; print(json.dumps(json.load(sys.stdin)['config']))"))
      code, body = req("PUT", u .. "/streams/foo", raw)
      assert.are.equal(200, code)
      assert.are.same({"foo"}, body.unchanged)
      code, body = req("DELETE", u .. "/streams/foo")
      assert.are.equal(200, code)
      assert.are.same({"foo"}, body.removed)
      assert.are.equal(404, (req("GET", u .. "/streams/foo")))
      assert.are.equal(404, (req("DELETE", u .. "/streams/foo")))
      assert.are.equal(404, (req("PATCH", u .. "/streams/foo", "max_in_flight: 3")))
      assert.are.equal(404, (req("GET", u .. "/streams/foo/stats")))
      assert.are.equal(400, (req("PUT", u .. "/streams/no%20spaces", FOO)))
      -- POST /streams replaces the whole set.
      code, body = req("POST", u .. "/streams", "a: {input: {http_server: {path: /a}}, output: {drop: {}}}\n" ..
        "b: {input: {http_server: {path: /b}}, output: {drop: {}}}\n")
      assert.are.equal(200, code)
      table.sort(body.added)
      assert.are.same({"a", "b"}, body.added)
      code, body = req("POST", u .. "/streams", "b: {input: {http_server: {path: /b}}, output: {drop: {}}}\n")
      assert.are.same({"a"}, body.removed)
      assert.are.same({"b"}, body.unchanged)
      code, body = req("GET", u .. "/streams")
      assert.is_nil(body.a)
      assert.truthy(body.b)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("answers 400 with every lint error (line, col, key, message) and changes nothing", function()
    local srv = h.serve(SECTIONS, {cmd = "streams"})
    local ok, err = pcall(function()
      local u = srv.url
      local code, body = req("POST", u .. "/streams/bad", [[
input:
  generate: {mapping: 'return 1', count: lots}
output:
  drop: {}
  nope: 1
]])
      assert.are.equal(400, code)
      assert.are.equal(2, #body.lint_errors)
      local e = body.lint_errors[1]
      assert.are.same({2, "input.generate.count"}, {e.line, e.key})
      assert.truthy(e.col > 0 and e.message:find("integer"))
      assert.are.same({5, "output.nope"}, {body.lint_errors[2].line, body.lint_errors[2].key})
      -- A JSON body keeps its positions too.
      code, body = req("POST", u .. "/streams/bad", '{"input": {"generate": {"mapping": "return 1"}},\n "output": {"dorp": {}}}')
      assert.are.equal(400, code)
      assert.are.same({2, "output.dorp"}, {body.lint_errors[1].line, body.lint_errors[1].key})
      code, body = req("POST", u .. "/streams/bad", "input: [unclosed")
      assert.are.equal(400, code)
      assert.truthy(#body.lint_errors >= 1)
      -- A path another stream serves is a build error, reported the same way.
      req("POST", u .. "/streams/one", "input: {http_server: {path: /x}}\noutput: {drop: {}}\n")
      code, body = req("POST", u .. "/streams/two", "input: {http_server: {path: /x}}\noutput: {drop: {}}\n")
      assert.are.equal(400, code)
      assert.matches("already served", body.lint_errors[1].message)
      local _, list = req("GET", u .. "/streams")
      assert.is_nil(list.bad)
      assert.is_nil(list.two)
      assert.truthy(list.one)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("refuses bodies over http.streams_api_max_body with 413 before parsing them", function()
    local srv = h.serve(SECTIONS, {cmd = "streams"})
    local ok, err = pcall(function()
      local u = srv.url
      -- 256KiB by default, for every method that takes a config
      local big = "input: {generate: {mapping: 'return 1'}}\noutput: {drop: {}}\n#" .. string.rep("x", 256 * 1024) .. "\n"
      for _, m in ipairs({"POST /streams/big", "PUT /streams/big", "POST /streams"}) do
        local method, path = m:match("(%S+) (%S+)")
        local code, body = req(method, u .. path, big)
        assert.are.equal(413, code, m)
        assert.are.same({status = 413,
          error = "a stream config is limited to 262144 bytes (http.streams_api_max_body)"}, body)
      end
      assert.are.equal(200, (req("POST", u .. "/streams/big", "input: {generate: {mapping: 'return 1'}}\noutput: {drop: {}}\n")))
      assert.are.equal(413, (req("PATCH", u .. "/streams/big", big)))
      local _, list = req("GET", u .. "/streams")
      assert.truthy(list.big)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("parses bodies off the event loop (/ping answers meanwhile), and bounds what their aliases expand to", function()
    local srv = h.serve(SECTIONS, {cmd = "streams"})
    local ok, err = pcall(function()
      -- 230 KB of unknown keys: parsed, checked and answered with 15k errors
      -- in most of a second. On the loop, no /ping was answered meanwhile
      -- but the few between the reads of the body.
      local t = {"input: {generate: {mapping: 'return 1'}}", "output: {drop: {}}"}
      for i = 1, 15000 do t[#t + 1] = "key_" .. i .. ": " .. i end
      local f = h.write(h.tmpname(), table.concat(t, "\n") .. "\n")
      local _, out = h.sh(string.format("timeout 300 python3 spec/tools/ping_during.py %d POST /streams/x %s 200",
        srv.port, f))
      os.remove(f)
      local r = json.decode(out)
      assert.are.equal(400, r.status)
      assert.matches('^{"lint_errors":%[{"file":"request body","line":3,"col":1,"key":"key_1","message":"unknown field"}', r.body)
      -- Pings are counted from when the whole body was sent until the answer.
      assert.is_true(r.pings >= 20, out)
      -- 400 bytes whose aliases would make 900k nodes (100 MB) stop at about as many nodes as bytes.
      t = {"input: {generate: {mapping: 'return 1'}}", "output: {drop: {}}", "x:", "  a0: &a0 [x, x, x, x, x, x, x]"}
      for i = 1, 5 do
        t[#t + 1] = string.format("  a%d: &a%d [%s]", i, i, string.rep("*a" .. (i - 1), 10, ", "))
      end
      local code, body = req("POST", srv.url .. "/streams/x", table.concat(t, "\n") .. "\n")
      assert.are.equal(400, code)
      assert.matches("^alias %*a%d expands the document beyond %d+ nodes$", body.lint_errors[1].message)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("names a file's single stream after the file", function()
    local srv = h.serve(SECTIONS .. "input: {http_server: {path: /one}}\noutput: {drop: {}}\n", {cmd = "streams"})
    local ok, err = pcall(function()
      local code, body = req("GET", srv.url .. "/streams")
      assert.are.equal(200, code)
      assert.truthy(body.config)
      assert.are.equal(200, (req("POST", srv.url .. "/one", "x")))
      code, body = req("GET", srv.url .. "/admin/status")
      assert.are.equal("file", body.streams.config.source)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("keeps API streams in streams_dir across a restart", function()
    local srv = h.serve(SECTIONS, {cmd = "streams --streams-dir kept"})
    local dir = srv.dir
    local ok, err = pcall(function()
      assert.are.equal(200, (req("POST", srv.url .. "/streams/foo", FOO)))
      assert.are.equal(200, (req("POST", srv.url .. "/streams/gone", "input: {http_server: {path: /g}}\noutput: {drop: {}}\n")))
      assert.are.equal(200, (req("DELETE", srv.url .. "/streams/gone")))
      assert.truthy(h.read(dir .. "/kept/foo.yaml"))
      local _, mode = h.sh("stat -c %a " .. dir .. "/kept/foo.yaml")
      assert.are.equal("600", (mode:gsub("%s", "")))
      assert.is_nil(h.read(dir .. "/kept/gone.yaml"))
    end)
    srv.stop(true)
    assert(ok, err)
    srv = h.serve(SECTIONS, {cmd = "streams --streams-dir kept", dir = dir, port = srv.port})
    ok, err = pcall(function()
      local code, body = req("GET", srv.url .. "/streams")
      assert.are.equal(200, code)
      assert.truthy(body.foo)
      assert.is_nil(body.gone)
      code, body = req("POST", srv.url .. "/foo", '{"v": 1}')
      assert.are.same({got = 1, by = "foo-v1"}, body)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("is served by `run` with http.streams_api, next to the file's streams, behind http.auth", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  streams_api: true
  auth:
    api_keys:
      keys: {k-1: ops}
    admin: [ops]
streams:
  fromfile:
    input: {http_server: {path: /f}}
    output: {drop: {}}
]])
    local ok, err = pcall(function()
      local key = "-H 'X-API-Key: k-1'"
      assert.are.equal(401, (req("GET", srv.url .. "/streams")))
      assert.are.equal(401, (req("GET", srv.url .. "/admin/status")))
      assert.are.equal(401, (req("POST", srv.url .. "/admin/reload")))
      local code, body = req("GET", srv.url .. "/streams", nil, key)
      assert.are.equal(200, code)
      assert.truthy(body.fromfile)
      code = req("POST", srv.url .. "/streams/api1", "input: {http_server: {path: /a}}\noutput: {drop: {}}\n", key)
      assert.are.equal(200, code)
      -- A file reload leaves the API's streams alone.
      code, body = req("POST", srv.url .. "/admin/reload", nil, key)
      assert.are.equal(200, code)
      assert.are.same({"fromfile"}, body.unchanged)
      assert.is_nil(body.removed)
      code, body = req("GET", srv.url .. "/admin/status", nil, key)
      assert.are.equal("api", body.streams.api1.source)
      assert.are.equal("file", body.streams.fromfile.source)
    end)
    srv.stop()
    assert(ok, err)
  end)
end)
