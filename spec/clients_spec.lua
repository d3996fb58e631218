-- sluice's HTTP surface through clients nobody here wrote: npm `ws`, npm
-- `eventsource`, and headless Chromium's EventSource and WebSocket
-- (playwright-core driving Debian's chromium).
local h = require("spec.helpers")
local json = h.json

local NODE = "node spec/node/clients.js "

local function lines(out)
  local t = {}
  for _, l in ipairs(h.lines(out)) do t[#t + 1] = json.decode(l) end
  return t
end

describe("third-party clients", function()
  local srv
  setup(function()
    srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  static:
    - path: /page
      dir: .
streams:
  ticks:
    input:
      generate: {interval: 50ms, mapping: 'return {n = i}'}
    output:
      http_server: {path: "", sse_path: /events, ws_path: /live}
  echo:
    input:
      http_server: {path: /in, ws_path: /ws}
    pipeline:
      processors:
        - lua: 'return {echo = content(), user = ctx.query.user}'
    output:
      sync_response: {}
]], {before = function(dir) h.write(dir .. "/index.html", "<!doctype html><title>sluice</title>") end})
  end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  it("npm ws: messages on ws_path get their sync_response answers", function()
    local code, out = h.sh(NODE .. "ws 'ws://127.0.0.1:" .. srv.port .. "/ws?user=ada' 2 one two")
    assert.are.equal(0, code, out)
    local got = lines(out)
    assert.are.same({echo = "one", user = "ada"}, json.decode(got[1].text))
    assert.are.same({echo = "two", user = "ada"}, json.decode(got[2].text))
  end)

  it("npm ws: the output pushes generated messages", function()
    local code, out = h.sh(NODE .. "ws ws://127.0.0.1:" .. srv.port .. "/live 3")
    assert.are.equal(0, code, out)
    local got = lines(out)
    assert.are.equal(json.decode(got[1].text).n + 1, json.decode(got[2].text).n)
  end)

  it("npm eventsource: ids and data in order", function()
    local code, out = h.sh(NODE .. "sse " .. srv.url .. "/events 4")
    assert.are.equal(0, code, out)
    local got = lines(out)
    assert.are.equal(4, #got)
    for k = 2, 4 do
      assert.are.equal(tonumber(got[k - 1].id) + 1, tonumber(got[k].id))
      assert.are.equal("message", got[k].type)
      assert.are.equal(json.decode(got[k - 1].data).n + 1, json.decode(got[k].data).n)
    end
  end)

  it("headless Chromium: EventSource and WebSocket from a page sluice serves", function()
    local code, out = h.sh(NODE .. "browser " .. srv.url .. "/page/ " .. srv.url .. "/events ws://127.0.0.1:" ..
      srv.port .. "/live 3")
    assert.are.equal(0, code, out)
    local r = json.decode(out)
    assert.are.equal(3, #r.sse)
    assert.are.equal(3, #r.ws)
    assert.are.equal(json.decode(r.sse[1].data).n + 1, json.decode(r.sse[2].data).n)
    assert.are.equal(json.decode(r.ws[1]).n + 1, json.decode(r.ws[2]).n)
  end)
end)
