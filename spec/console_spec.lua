-- The browser console (http.console): its page built into the binary, the
-- playground's runs (/console/run), the streams API's dry runs that lint the
-- config editor, their bounds and auth, and the whole page driven in
-- headless Chromium (spec/node/console.js) with screenshots in
-- build/artifacts/console-*.png.
local h = require("spec.helpers")
local json = h.json

local ADMIN, ALICE = "admin-key", "alice-key"

local function req(srv, method, path, opts)
  opts = opts or {}
  local body = h.tmpname()
  local data = ""
  if opts.body then data = "--data-binary @" .. h.write(h.tmpname(), opts.body) end
  local code, out = h.sh(string.format("curl -s --path-as-is -m 60 -o %s -w '%%{http_code}' -X %s %s %s %s%s", body, method,
    opts.key and ("-H 'X-API-Key: " .. opts.key .. "'") or "", data, srv.url, path))
  assert.are.equal(0, code)
  local text = h.read(body) or ""
  os.remove(body)
  local ok, j = pcall(json.decode, text)
  return tonumber(out), ok and j or nil, text
end

local function run(srv, t, key)
  return req(srv, "POST", "/console/run", {key = key or ADMIN, body = json.encode(t)})
end

describe("http.console", function()
  it("is a lint error without a server to serve it", function()
    local f = h.write(h.tmpname(".yaml"), "http:\n  enabled: false\n  console: true\ninput: {generate: {count: 1, mapping: 'return {}'}}\noutput: {drop: {}}\n")
    local r = h.sluice("lint " .. f)
    os.remove(f)
    assert.are.equal(1, r.code)
    assert.matches(":3:12: http.console: needs the server, but http.enabled is false", r.stderr, 1, true)
  end)
end)

describe("the console", function()
  local srv
  setup(function()
    srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  console: true
  max_body_bytes: 2MiB
  auth:
    api_keys:
      keys: {admin-key: admin, alice-key: alice}
    admin: [admin]
store:
  data_dir: ./data
lua:
  max_memory: 64MiB
  max_steps: 1000000000
  max_time: 3s
streams:
  main:
    input:
      http_server: {path: /in}
    pipeline:
      processors:
        - lua: 'this.v = 1'
    output:
      sync_response: {}
  ticker:
    input:
      generate: {mapping: 'return {n = i}', interval: 100ms}
    pipeline:
      processors:
        - lua: 'this.doubled = this.n * 2'
    output:
      stream: {name: orders}
  billing:
    input:
      stream: {name: orders, group: billing}
    output:
      drop: {}
]])
    local code = req(srv, "POST", "/stream/orders", {key = ADMIN, body = '{"partitions":1}'})
    assert.is_true(code == 200 or code == 201)
  end)
  teardown(function() assert.are.equal(0, srv.stop()) end)

  it("serves its page from the binary, public like static files, and the Lua API for completion", function()
    local code = req(srv, "GET", "/console")
    assert.are.equal(308, code)
    local c2, _, html = req(srv, "GET", "/console/")
    assert.are.equal(200, c2)
    assert.matches('<script src="app.js">', html, 1, true)
    assert.are.equal(200, (req(srv, "GET", "/console/app.js")))
    assert.are.equal(200, (req(srv, "GET", "/console/style.css")))
    assert.are.equal(404, (req(srv, "GET", "/console/../admin/status")))
    assert.are.equal(404, (req(srv, "GET", "/console/nope.js")))
    local c3, api = req(srv, "GET", "/console/lua-api.json")
    assert.are.equal(200, c3)
    local labels = {}
    for _, c in ipairs(api.completions) do labels[c.label] = c.detail end
    assert.matches("^re%.gsub%(", labels["re.gsub"])
    assert.is_string(labels["cache.get"])
  end)

  it("needs the admin scope for runs and for every API the page uses", function()
    for _, p in ipairs({{"POST", "/console/run"}, {"GET", "/admin/status"}, {"GET", "/streams"},
      {"PUT", "/streams/main?dry_run=true"}, {"GET", "/admin/live"}, {"GET", "/admin/live?api_key=" .. ALICE}}) do
      if not p[2]:find("api_key", 1, true) then assert.are.equal(401, (req(srv, p[1], p[2], {body = "{}"})), p[2]) end
      assert.are.equal(403, (req(srv, p[1], p[2], {key = ALICE, body = "{}"})), p[2])
    end
  end)

  it("runs a mapping with its metadata and ctx, and says where it failed", function()
    local code, r = run(srv, {code = 'this.total = this.price * this.qty\nmeta.by = ctx.user\n',
      input = '{"price": 2.5,\n "qty": 4}', metadata = {source = "test"}, ctx = {user = "alice"}})
    assert.are.equal(200, code)
    assert.are.equal(0, r.exit)
    local m = json.decode(r.messages[1].content)
    assert.are.equal(10, m.total)
    assert.are.same({source = "test", by = "alice"}, r.messages[1].metadata)
    assert.is_number(r.time_ms)
    code, r = run(srv, {code = 'local a = 1\n\nerror("no sku " .. tostring(this.sku))', input = '{"sku": 7}'})
    assert.are.equal(200, code)
    assert.are.equal(3, r.line)
    assert.matches("no sku 7", r.error)
    code, r = run(srv, {code = "local x = = 1", input = "{}"})
    assert.are.equal(1, r.line)
    assert.matches("unexpected symbol", r.error)
    -- a script dropping the message
    code, r = run(srv, {code = "return deleted()", input = "{}"})
    assert.are.same({}, r.messages)
    assert.is_nil(r.error)
    -- Bloblang, as the mapping processor runs it
    code, r = run(srv, {code = "root.up = this.s.uppercase()", input = '{"s":"ab"}', bloblang = true})
    assert.are.equal('{"up":"AB"}', r.messages[1].content)
    -- a body that is not UTF-8 is not JSON: refused with the reason
    code, r = run(srv, {code = "return {n = #content()}", input = "\255\254abc"})
    assert.are.equal(400, code)
    assert.matches("not a JSON object", r.error)
  end)

  it("bounds a run as the pipelines are: steps, memory, output, size; the server goes on", function()
    local code, r = run(srv, {code = "while true do end", input = "{}"})
    assert.are.equal(200, code)
    assert.matches("budget exceeded", r.error)
    assert.are.equal(1, r.line)
    -- under the config's lua: section (3s, 1e9 steps), not the defaults (1s, 1e7)
    assert.is_truthy(r.error:find("lua.max_time: 3000 ms", 1, true) or r.error:find("lua.max_steps: 1000000000", 1, true), r.error)
    -- lua.max_memory of the config (64MiB), in the child's VM
    code, r = run(srv, {code = 'local t = {} for i = 1, 1e6 do t[i] = string.rep("x", 1e6) .. i end', input = "{}"})
    assert.are.equal(200, code)
    assert.matches("not enough memory", r.error)
    -- more output than a run may print: stopped
    code, r = run(srv, {code = 'return string.rep("x", 1e6) .. string.rep("y", 4e6)', input = "{}"})
    assert.are.equal(200, code)
    assert.matches("printed more than 4 MiB", r.error)
    -- a body over http.max_body_bytes, a script over 96 KiB, bodies that are not what a run takes
    code = run(srv, {code = "return this", input = string.rep("a", 3 * 1024 * 1024)})
    assert.are.equal(413, code)
    code = run(srv, {code = string.rep("-- x\n", 30000), input = "{}"})
    assert.are.equal(413, code)
    assert.are.equal(400, (req(srv, "POST", "/console/run", {key = ADMIN, body = "{nope"})))
    assert.are.equal(400, (req(srv, "POST", "/console/run", {key = ADMIN, body = '{"input":"{}"}'})))
    assert.are.equal(400, (req(srv, "POST", "/console/run", {key = ADMIN, body = '{"code":"","ctx":5}'})))
    assert.are.equal(200, (req(srv, "GET", "/ping")))
  end)

  it("stops the runs of clients that leave; the server goes on", function()
    local body = h.write(h.tmpname(), json.encode({code = "while true do end", input = "{}"}))
    -- four clients (as many runs as may go at once) give up while their runs loop
    local code = h.sh(string.format("for i in 1 2 3 4; do curl -s -o /dev/null -m 0.5 -H 'X-API-Key: %s' " ..
      "--data-binary @%s %s/console/run & done; wait", ADMIN, body, srv.url))
    os.remove(body)
    assert.are.equal(0, code)
    assert.are.equal(200, (req(srv, "GET", "/ping")))
    -- their slots come back: a run is answered again (503 while they end)
    local c, r
    h.wait_for(function()
      c, r = run(srv, {code = "this.ok = true", input = "{}"})
      return c ~= 503
    end, 20)
    assert.are.equal(200, c)
    assert.are.equal('{"ok":true}', r.messages[1].content)
  end)

  it("lints a stream's config without applying it (the editor's markers)", function()
    local code, r = req(srv, "PUT", "/streams/main?dry_run=true",
      {key = ADMIN, body = "input:\n  http_server: {path: /in}\npipeline:\n  processors:\n    - lua: 'local = 1'\noutput:\n  sync_response: {}\n"})
    assert.are.equal(200, code)
    assert.is_false(r.valid)
    assert.are.equal(5, r.lint_errors[1].line)
    assert.matches("Lua", r.lint_errors[1].message)
    code, r = req(srv, "PUT", "/streams/main?dry_run=true", {key = ADMIN, body = "input: [unclosed\n"})
    assert.are.equal(200, code)
    assert.is_false(r.valid)
    assert.is_number(r.lint_errors[1].line)
    code, r = req(srv, "PUT", "/streams/main?dry_run=true", {key = ADMIN, body = "\255\254: x\n"})
    assert.are.equal(200, code)
    assert.is_false(r.valid)
    code = req(srv, "PUT", "/streams/main?dry_run=true", {key = ADMIN, body = string.rep("a: b\n", 100000)})
    assert.are.equal(413, code)
    -- aliases that would expand beyond the body's size are refused, not built
    local bomb = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n" ..
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d]\n"
    code, r = req(srv, "PUT", "/streams/main?dry_run=true", {key = ADMIN, body = bomb})
    assert.are.equal(200, code)
    assert.is_false(r.valid)
    code, r = req(srv, "PUT", "/streams/main?dry_run=true",
      {key = ADMIN, body = "input:\n  http_server: {path: /in}\npipeline:\n  processors:\n    - lua: 'this.v = 9'\noutput:\n  sync_response: {}\n"})
    assert.are.equal(200, code)
    assert.is_true(r.valid)
    -- nothing was applied
    local c2, out = req(srv, "POST", "/in", {key = ADMIN, body = "{}"})
    assert.are.equal(200, c2)
    assert.are.equal(1, out.v)
  end)

  it("in Chromium: every view loads without errors, runs, tails, lints and applies", function()
    os.execute("mkdir -p build/artifacts")
    -- events in the stream before the page opens, so the tail from offset 0 has rows
    assert.is_truthy(h.wait_for(function()
      local _, i = req(srv, "GET", "/stream/orders/info", {key = ADMIN})
      return i and i.message_count and i.message_count >= 3
    end, 20))
    local code, out, err = h.sh(string.format("cd spec/node && timeout -k 5 170 node console.js %s %s %s",
      srv.url, ADMIN, h.shell_quote(os.getenv("PWD") .. "/build/artifacts")))
    local r = json.decode(out)
    assert.are.equal(0, code, out .. err)
    assert.are.same({}, r.errors)
    assert.matches("admin API key", r.steps.signed_out.text)
    for _, theme in ipairs({"dark", "light"}) do
      local s = r.steps["streams_" .. theme]
      assert.are.same({"http_server", "lua", "sync_response"}, s.nodes)
      -- two events apart (/admin/live pushes them): the ticker's count and its chart moved, nothing was polled
      assert.truthy(s.second.events >= s.first.events + 2)
      assert.are_not.equal(s.first.count, s.second.count)
      assert.are_not.equal(s.first.chart, s.second.chart)
      assert.are.same({}, s.asked)
      assert.truthy(r.steps["events_" .. theme].rows >= 3)
      assert.are.same({"billing"}, r.steps["events_" .. theme].groups)
      local p = r.steps["playground_" .. theme]
      assert.are.equal(10, json.decode(p.out).total)
      assert.are.equal("EUR", json.decode(p.meta).currency)
      assert.matches("^line 3: no price for X1", p.error)
      assert.are.same({"3"}, p.marked)
      assert.are.same({"hash.sha1", "hash.sha256", "hash.sha512"}, p.completions)
      local c = r.steps["config_" .. theme]
      assert.matches("unknown field", table.concat(c.diags, "\n"))
      assert.matches("this.v = 1", c.loaded, 1, true)
    end
    -- the running stream changed: by the config editor, then by the playground's Apply
    assert.matches("^applied", r.steps.apply.result)
    assert.are.equal(2, r.steps.apply.after)
    assert.matches("^applied to main", r.steps.playground_apply.applied)
    assert.are.same({v = 3, by = "playground"}, r.steps.playground_apply.after)
    local c2, res = req(srv, "POST", "/in", {key = ADMIN, body = "{}"})
    assert.are.equal(200, c2)
    assert.are.equal(3, res.v)
    -- a stream created and deleted from the page
    assert.are.same({partitions = 3, after = 404}, r.steps.create_delete)
    -- published while the tail was live, filtered by key, newest first
    local t = r.steps.live_tail
    assert.are.equal(0, t.before)
    assert.are.same({200, 200, 200, 200}, t.pub)
    assert.are.same({'{"n":3}', '{"n":2}', '{"n":1}', '{"n":0}'}, t.rows)
  end)
end)

-- /admin/live: the Streams view's server-sent events.
describe("/admin/live", function()
  -- 150 idle streams with long names: each event is ~100 KB, so a client
  -- that never reads fills its buffers within seconds.
  local streams = {}
  for i = 1, 150 do
    streams[#streams + 1] = string.format("  s%03d_%s:\n    input: {generate: {interval: 1h, mapping: 'return {}'}}\n    output: {drop: {}}",
      i, string.rep("n", 200))
  end
  local yaml = [[
http:
  address: 127.0.0.1:$PORT
  auth:
    api_keys:
      keys: {admin-key: admin, alice-key: alice}
    admin: [admin]
streams:
  busy:
    input: {generate: {interval: 10ms, mapping: 'return {}'}}
    output: {drop: {}}
]] .. table.concat(streams, "\n") .. "\n"

  -- Events as a real client reads them: curl for a bounded time, then split.
  local function events(srv, query, secs)
    local _, out = h.sh(string.format("curl -sN -m %d '%s/admin/live?%s'", secs, srv.url, query))
    local t = {}
    for data in out:gmatch("event: status\ndata: ([^\n]*)\n\n") do t[#t + 1] = json.decode(data) end
    return t, out
  end

  it("pushes every stream's state and counters each interval, refuses a bad interval", function()
    local srv = h.serve(yaml)
    local ok, err = pcall(function()
      local t, raw = events(srv, "interval=200&api_key=" .. ADMIN, 3)
      assert.matches("^retry: %d+\n", raw)
      assert.truthy(#t >= 3, raw:sub(1, 300))
      local a, b = t[#t - 1].streams.busy, t[#t].streams.busy
      assert.are.equal("running", b.state)
      assert.truthy(b.received > a.received)
      assert.truthy(b.rate > 0)
      assert.are.same({"root.input", "root.output"}, (function() local k = {} for p in pairs(b.components) do k[#k + 1] = p end table.sort(k) return k end)())
      assert.are.equal("generate", b.components["root.input"].label)
      assert.are.equal(151, (function() local n = 0 for _ in pairs(b and t[#t].streams) do n = n + 1 end return n end)())
      local code = req(srv, "GET", "/admin/live?interval=5", {key = ADMIN})
      assert.are.equal(400, code)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("drops a subscriber that never reads at the usual buffer limit, counted, in bounded memory", function()
    local srv = h.serve(yaml)
    local ok, err = pcall(function()
      -- A socket with a small receive buffer that reads nothing until sluice
      -- counts it dropped (or 120 s pass), then reads what is left to the end.
      local py = h.write(h.tmpname(".py"), string.format([[
import socket, time, urllib.request, json
pid = int(open("%s/pid.txt").read())
rss = lambda: int([l.split()[1] for l in open("/proc/%%d/status" %% pid) if l.startswith("VmRSS")][0])
before = rss()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", %d))
s.sendall(b"GET /admin/live?interval=100 HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n")
dropped, deadline = False, time.time() + 120
while not dropped and time.time() < deadline:
    m = urllib.request.urlopen("http://127.0.0.1:%d/metrics").read().decode()
    dropped = 'sluice_http_slow_clients_dropped_total{stream="",kind="sse"} 1' in m
    time.sleep(0.2)
s.settimeout(30)
got = 0
while True:
    b = s.recv(65536)
    if not b: break
    got += len(b)
print(json.dumps({"dropped": dropped, "read_after": got, "growth_kb": rss() - before}))
]], srv.dir, srv.port, ADMIN, srv.port))
      local code, out, perr = h.sh("python3 " .. py)
      os.remove(py)
      assert.are.equal(0, code, perr)
      local r = json.decode(out)
      assert.is_true(r.dropped)
      assert.truthy(r.read_after > 0)
      -- ~150 events of 100 KB went by: only what waits for the client is held
      -- (ASan's quarantine keeps freed memory a while)
      local growth = (os.getenv("SLUICE_BIN") or ""):find("asan", 1, true) and 400 * 1024 or 100 * 1024
      assert.truthy(r.growth_kb < growth, out)
      -- others are still served
      local t = events(srv, "interval=100&api_key=" .. ADMIN, 2)
      assert.truthy(#t >= 1)
      assert.matches("disconnecting a slow SSE client", srv.stderr(), 1, true)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("keeps its subscribers on the HTTP workers that accepted them, which write them every tick", function()
    local srv = h.serve((yaml:gsub("http:\n", "http:\n  workers: 2\n", 1)))
    local ok, err = pcall(function()
      local files = {}
      for i = 1, 4 do
        files[i] = srv.dir .. "/live" .. i .. ".txt"
        os.execute(string.format("curl -sN -m 60 '%s/admin/live?interval=200&api_key=%s' > %s &", srv.url, ADMIN, files[i]))
      end
      local function on_workers()
        local _, m = h.sh("curl -s " .. srv.url .. "/metrics")
        local n = 0
        for v in m:gmatch('\nsluice_http_worker_streams{worker="%d+"} (%d+)') do n = n + tonumber(v) end
        return n
      end
      assert.truthy(h.wait_for(function() return on_workers() == 4 end, 30), "on the workers: " .. on_workers())
      -- each gets the ticks after it subscribed, whole and in order
      assert.truthy(h.wait_for(function()
        for _, f in ipairs(files) do
          local _, k = (h.read(f) or ""):gsub("event: status\n", "")
          if k < 5 then return false end
        end
        return true
      end, 60), "fewer than 5 events each")
      for _, f in ipairs(files) do
        local raw = h.read(f)
        assert.matches("^retry: 3000\n: connected\n\n", raw)
        local last = 0
        for data in raw:gmatch("event: status\ndata: ([^\n]*)\n\n") do
          local busy = json.decode(data).streams.busy
          assert.truthy(busy.received >= last)
          last = busy.received
        end
      end
    end)
    h.stop_after(srv, ok, err)
  end)
end)
