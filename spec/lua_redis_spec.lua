-- redis.call from Lua (lua/lredis.c) and the `redis` cache backend
-- (cache/redis.c) behind cache.* and the cache processors, against Debian's
-- redis-server (one per file, started here), with redis-cli as the peer.
local h = require("spec.helpers")
local redis = require("spec.redis_helpers")

local R

setup(function() R = redis.start() end)
teardown(function() if R then R.stop() end end)

local function resources(url, extra)
  return string.format("cache_resources:\n  - label: r\n    redis: {url: %s%s}\n  - label: mem\n    memory: {}\n",
    url, extra or "")
end

-- Runs the messages in lines (stdin) through a lua processor with code and
-- returns stdout's messages decoded, and stderr. A failed message comes out
-- as it came in with `failed` set to its error (after the others: catch).
local function pipe(code, lines, extra, res)
  local yaml = (res or resources(R.url)) .. "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua:\n" ..
    (extra or "") .. "        code: |\n" .. code:gsub("[^\n]+", "          %0") ..
    "\n    - catch:\n        - lua: 'this.failed = error_message()'\noutput:\n  stdout: {}\n"
  local r = h.run_config(yaml, {stdin = table.concat(lines, "\n") .. "\n", timeout = 120})
  assert.are.equal(0, r.code, r.stderr)
  return h.decode_lines(h.lines(r.stdout)), r.stderr
end

-- Serves the pipeline in yaml (after `http:` and the resources) against a
-- Redis of its own, stopped first (SIGSTOP) when `stopped`, and runs
-- body(srv, other, pid); then lets Redis go on and stops both.
local function with_own_redis(stopped, yaml, body)
  local other = redis.start()
  local pid = h.read(other.dir .. "/redis.pid"):match("%d+")
  if stopped then os.execute("kill -STOP " .. pid) end
  local srv = h.serve(resources(other.url) .. "http: { address: 127.0.0.1:$PORT }\n" .. yaml)
  local ok, err = pcall(body, srv, other, pid)
  os.execute("kill -CONT " .. pid .. " 2>/dev/null")
  h.stop_after(srv, ok, err)
  other.stop()
end

-- Connections to R other than redis-cli's own.
local function clients()
  local n = 0
  for _, l in ipairs(h.lines(R.cli("CLIENT LIST"))) do if not l:find("cmd=client", 1, true) then n = n + 1 end end
  return n
end

local function keys(prefix) return #h.lines(R.cli("--scan --pattern '" .. prefix .. "*'")) end

-- The bytes sent to the Redis on port and not read by it yet (ss's Recv-Q
-- of its side of the connections).
local function unread(port)
  local _, o = h.sh("ss -tnH state established '( sport = :" .. port .. " )'")
  local n = 0
  for _, l in ipairs(h.lines(o)) do n = n + tonumber(l:match("^%s*(%d+)") or 0) end
  return n
end

describe("redis.call", function()
  it("maps each kind of reply: status, string, integer, nil, arrays (json.null holes, [] stays []), errors", function()
    R.cli("DEL l1 h1 s1 z1")
    local out = pipe([[
local t = {}
t.status = redis.call("r", "SET", "s1", "hello")
t.str = redis.call("r", "GET", "s1")
t.int = redis.call("r", "RPUSH", "l1", "a", "b", 3)
t.range = redis.call("r", "LRANGE", "l1", 0, -1)
t.none = redis.call("r", "GET", "missing-key") == nil
t.empty = json.encode(redis.call("r", "LRANGE", "missing-key", 0, -1))
t.holes = json.encode(redis.call("r", "MGET", "s1", "missing-key", "s1"))
t.nested = redis.call("r", "EVAL", "return {1, {2, 'x'}, redis.error_reply('inner')}", 0)
t.is_array = json.is_array(t.range)
local v, err = redis.call("r", "NOSUCHCOMMAND", 1)
t.err = {v == nil, err}
v, err = redis.call("r", "INCR", "l1")
t.wrongtype = {v == nil, err}
t.big = string.format("%.0f", redis.call("r", "INCRBY", "z1", 9007199254740992))
return t
]], {'{}'})
    local t = out[1]
    assert.is_nil(t.failed, t.failed)
    assert.are.equal("OK", t.status)
    assert.are.equal("hello", t.str)
    assert.are.equal(3, t.int)
    assert.are.same({"a", "b", "3"}, t.range)
    assert.is_true(t.none)
    assert.are.equal("[]", t.empty)
    assert.are.equal('["hello",null,"hello"]', t.holes)
    assert.are.same({1, {2, "x"}, {err = "ERR inner"}}, t.nested)
    assert.is_true(t.is_array)
    assert.is_true(t.err[1])
    assert.matches("^ERR unknown command", t.err[2])
    assert.is_true(t.wrongtype[1])
    assert.matches("^WRONGTYPE", t.wrongtype[2])
    assert.are.equal("9007199254740992", t.big)
  end)

  it("carries binary (NUL, non-UTF-8) and huge values byte for byte, both ways", function()
    local binary = "\255\254\0\1 not utf-8 \192\128\n\r"
    R.cli_in("SET bin2", binary)
    local out = pipe([[
local t = {}
t.from_cli = hex.encode(redis.call("r", "GET", "bin2"))
assert(redis.call("r", "SET", "bin3", "\0\255abc\0"))
t.len = redis.call("r", "STRLEN", "bin3")
t.back = hex.encode(redis.call("r", "GET", "bin3"))
local huge = string.rep("0123456789abcdef", 2 * 1024 * 1024)   -- 32 MiB
assert(redis.call("r", "SET", "huge2", huge))
local back = redis.call("r", "GET", "huge2")
t.huge = #back == #huge and back == huge
return t
]], {'{}'})
    assert.is_nil(out[1].failed, out[1].failed)
    local hex = binary:gsub(".", function(c) return string.format("%02x", c:byte()) end)
    assert.are.equal(hex, out[1].from_cli)
    assert.are.equal(6, out[1].len)
    assert.are.equal("00ff61626300", out[1].back)
    assert.are.equal(6, R.num("STRLEN bin3"))
    assert.is_true(out[1].huge)
    assert.are.equal(32 * 1024 * 1024, R.num("STRLEN huge2"))
  end)

  it("a reply larger than lua.max_memory fails that message only (redis.call and cache.get)", function()
    R.cli_in("SET huge4", string.rep("y", 48 * 1024 * 1024))
    local out = pipe([[
if this.k == 1 then return {len = #redis.call("r", "GET", "huge4")} end
if this.k == 2 then return {len = #cache.get("r", "huge4")} end
return {fine = redis.call("r", "PING")}
]], {'{"k":1}', '{"k":2}', '{"k":3}'}, nil, "lua:\n  max_memory: 16MiB\n" .. resources(R.url))
    R.cli("DEL huge4")
    for i = 1, 2 do assert.matches("not enough memory", out[i].failed) end
    assert.are.same({fine = "PONG"}, out[3])
  end)

  it("a reply nested deeper than hiredis reads fails as a value, and the connection comes back", function()
    local srv = h.serve(resources(R.url) .. [[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { interval: 50ms, mapping: 'return { n = i }' }
pipeline:
  processors:
    - lua: |
        local v, err
        if this.n == 1 then v, err = redis.call("r", "EVAL", "return {{{{{{{{{{1}}}}}}}}}}", 0)
        else v, err = redis.call("r", "PING") end
        return {n = this.n, v = v, err = err}
output:
  stdout: {}
]])
    local ok, err = pcall(function()
      local out
      assert.is_true(h.wait_for(function()
        out = h.decode_lines(h.lines(srv.stdout()))
        return #out > 0 and out[#out].v == "PONG"
      end, 30), srv.stdout())
      assert.are.equal(1, out[1].n)
      assert.matches("nested multi bulk replies with depth > 7", out[1].err)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("takes many arguments in one command", function()
    R.cli("DEL many")
    local out = pipe([[
local args = {}
for i = 1, 5000 do args[i] = "v" .. i end
return {n = redis.call("r", "RPUSH", "many", unpack(args)), last = redis.call("r", "LINDEX", "many", -1)}
]], {'{}'})
    assert.are.same({n = 5000, last = "v5000"}, out[1])
  end)

  it("raises for calls the script gets wrong, with the script's line, failing only that message", function()
    local out = pipe([[
local k = this.k
if k == 1 then local label = "nope"; return {r = redis.call(label, "GET", "x")} end
if k == 2 then return {r = redis.call("mem", "GET", "x")} end
if k == 3 then return {r = redis.call("r", "SET", "x", {1})} end
if k == 4 then return {r = redis.call("r", "SET", "x", true)} end
if k == 5 then return {r = redis.call("r", "GET", nil)} end
if k == 6 then return {r = redis.call("r")} end
if k == 7 then return {r = redis.call("r", "SUBSCRIBE", "ch")} end
if k == 8 then return {r = redis.call("r", "blpop", "q", 0)} end
if k == 9 then return {r = redis.call("r", "MULTI")} end
if k == 10 then return {r = redis.call("r", "XREAD", "block", 0, "STREAMS", "s", "$")} end
if k == 11 then return {r = redis.call("r", "SELECT", 1)} end
return {fine = redis.call("r", "PING")}
]], {'{"k":1}', '{"k":2}', '{"k":3}', '{"k":4}', '{"k":5}', '{"k":6}', '{"k":7}', '{"k":8}', '{"k":9}',
     '{"k":10}', '{"k":11}', '{"k":12}'})
    local want = {"no cache resource labelled \"nope\"", "\"mem\" is a memory cache, not redis",
      "argument 3 must be a string or a number, not a table", "argument 3 must be a string or a number, not a boolean",
      "argument 2 must be a string or a number, not a nil", "the command (a string) must follow the label",
      "SUBSCRIBE is refused", "blpop is refused", "MULTI is refused", "BLOCK would hold the connection",
      "SELECT is refused"}
    assert.are.equal(12, #out, h.json.encode(out))
    local by = {}
    for _, m in ipairs(out) do by[m.k or 12] = m end
    out = by
    for k, w in ipairs(want) do
      assert.is_truthy(out[k] and out[k].failed, h.json.encode(out))
      assert.is_truthy(out[k].failed:find(w, 1, true), out[k].failed)
      assert.is_truthy(out[k].failed:find(":%d+: redis%.call: "), out[k].failed)
    end
    assert.are.same({fine = "PONG"}, out[12])
  end)

  it("cannot be called where a run may not wait: a clear error", function()
    local r = h.run_config(resources(R.url) .. [[
input:
  generate:
    count: 1
    interval: 0
    mapping: 'return {v = redis.call("r", "PING")}'
pipeline:
  processors:
    - catch:
        - lua: 'return {failed = error_message()}'
output:
  stdout: {}
]], {timeout = 30})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.json.decode(h.lines(r.stdout)[1])
    assert.is_truthy(out.failed:find("redis.call cannot be called here", 1, true), out.failed)
  end)

  it("1000 messages each calling Redis: all complete, in order, at most max_concurrency calls at once, /ping answers", function()
    -- Stopped, Redis reads nothing: the calls sluice starts pile up, unread, in
    -- its socket, where ss counts their bytes (each ECHO of 8 digits is 28).
    with_own_redis(true, [[
input:
  generate: {count: 1000, interval: 0, batch_size: 1000, mapping: 'return {n = i}'}
pipeline:
  processors:
    - lua:
        max_concurrency: 8
        code: 'this.got = tonumber(redis.call("r", "ECHO", string.format("%08d", this.n * 2)))'
output:
  stdout: {}
]], function(srv, other, pid)
      local queued = 0
      assert.is_true(h.wait_for(function()
        queued = unread(other.port)
        return queued >= 8 * 28
      end, 30), "calls sent to the stopped Redis: " .. queued .. " bytes")
      -- it stays at 8 while the loop answers /ping
      for _ = 1, 10 do
        assert.are.equal(0, (h.sh("curl -s -m 2 -o /dev/null " .. srv.url .. "/ping")))
        assert.are.equal(8 * 28, unread(other.port))
      end
      os.execute("kill -CONT " .. pid)
      assert.is_true(h.wait_for(function() return #h.lines(srv.stdout()) >= 1000 end, 60), srv.stderr())
      local out = h.decode_lines(h.lines(srv.stdout()))
      assert.are.equal(1000, #out)
      for i = 1, 1000 do
        assert.are.equal(i, out[i].n, h.json.encode(out[i]))
        assert.are.equal(2 * i, out[i].got)
      end
    end)
  end)

  it("without Redis answers nil, err (the host lives); with a slow Redis the message's timeout fails it", function()
    local other = redis.start()
    local url = other.url
    other.stop()   -- nothing listens there now
    local out = pipe([[
local v, err = redis.call("r", "PING")
local g, gerr = cache.get("r", "k")
return {v = v, err = err, g = g, gerr = gerr}
]], {'{}', '{}'}, nil, resources(url, ", reply_timeout: 1s"))
    for i = 1, 2 do
      assert.is_nil(out[i].v)
      assert.matches("redis 127.0.0.1:%d+: ", out[i].err)
      assert.matches("redis 127.0.0.1:%d+: ", out[i].gerr)
    end
  end)

  it("a Redis that does not answer: the message's timeout fails it, the late reply is dropped, later calls work", function()
    with_own_redis(true, [[
input:
  generate: { interval: 100ms, mapping: 'return { n = i }' }
pipeline:
  processors:
    - lua:
        timeout: 300ms
        code: |
          if this.n % 2 == 0 then this.v = cache.get("r", "k") else this.v = redis.call("r", "PING") end
    - catch:
        - lua: 'this.failed = error_message()'
output:
  stdout: {}
]], function(srv, other, pid)
      local function outs() return h.decode_lines(h.lines(srv.stdout())) end
      assert.is_true(h.wait_for(function() return #outs() >= 2 end, 30), srv.stderr())
      local out = outs()
      for i = 1, 2 do
        assert.is_truthy(out[i].failed and out[i].failed:find("deadline exceeded", 1, true), h.json.encode(out[i]))
      end
      os.execute("kill -CONT " .. pid)
      other.cli("SET k fine")
      assert.is_true(h.wait_for(function()
        local got = {}
        for _, m in ipairs(outs()) do if m.v then got[m.v] = true end end
        return got.PONG and got.fine
      end, 30), "no call worked after SIGCONT: " .. srv.stdout())
    end)
  end)

  it("Redis killed mid-call: the waiting message gets nil, err, /ping answers, and calls work after a restart", function()
    with_own_redis(false, [[
input:
  generate: { interval: 50ms, mapping: 'return { n = i }' }
pipeline:
  processors:
    - lua:
        code: |
          local v, err = redis.call("r", "INCR", "calls")
          return {n = this.n, v = v, err = err}
output:
  stdout: {}
]], function(srv, other, pid)
      assert.is_true(h.wait_for(function() return (other.num("GET calls") or 0) >= 5 end, 30))
      os.execute("kill -STOP " .. pid)
      -- a call is in flight: its bytes wait, unread, in the stopped server's socket
      assert.is_true(h.wait_for(function() return unread(other.port) > 0 end, 20), "no call waited at the stopped Redis")
      assert.are.equal(0, (h.sh("curl -s -m 2 -o /dev/null " .. srv.url .. "/ping")))
      os.execute("kill -KILL " .. pid)
      local failed
      assert.is_true(h.wait_for(function()
        for _, l in ipairs(h.lines(srv.stdout())) do
          local m = h.json.decode(l)
          if m.err then failed = m return true end
        end
      end, 30), "no call failed: " .. srv.stderr())
      assert.matches("redis 127.0.0.1:" .. other.port .. ": ", failed.err)
      assert.are.equal(0, (h.sh("curl -s -m 2 -o /dev/null " .. srv.url .. "/ping")))
      other.launch()
      assert.is_true(h.wait_for(function()
        local lines = h.lines(srv.stdout())
        local last = lines[#lines] and h.json.decode(lines[#lines])
        return last and last.n > failed.n and last.v ~= nil
      end, 30), "calls did not work again after the restart: " .. srv.stderr())
    end)
  end)
end)

describe("the redis cache", function()
  it("get/set/add/delete/incr from Lua with the prefix and TTLs (a missing key's incr takes the TTL)", function()
    R.cli("DEL p:a p:b p:n p:s")
    local out = pipe([[
local t = {}
t.set = cache.set("r", "a", "1")
t.get = cache.get("r", "a")
t.miss = cache.get("r", "nothing") == nil
t.add_new = cache.add("r", "b", "x", "30s")
t.add_old = cache.add("r", "b", "y")
t.b = cache.get("r", "b")
t.del = cache.delete("r", "a")
t.del_again = cache.delete("r", "a")
t.n1 = cache.incr("r", "n", 5, 60)
t.n2 = cache.incr("r", "n", -2, 1)
assert(cache.set("r", "s", "text"))
local v, err = cache.incr("r", "s")
t.incr_text = {v == nil, err}
return t
]], {'{}'}, nil, resources(R.url, ", prefix: 'p:', default_ttl: 10m"))
    local t = out[1]
    assert.is_nil(t.failed, t.failed)
    assert.are.same({set = true, get = "1", miss = true, add_new = true, add_old = false, b = "x", del = true,
                     del_again = false, n1 = 5, n2 = 3, incr_text = {true, t.incr_text[2]}}, t)
    assert.matches("not an integer", t.incr_text[2])
    assert.are.equal("x", R.cli("GET p:b"):gsub("\n$", ""))
    local ttl_b, ttl_n, ttl_s = R.num("PTTL p:b"), R.num("PTTL p:n"), R.num("PTTL p:s")
    assert.is_true(ttl_b > 20000 and ttl_b <= 30000, "p:b " .. ttl_b)
    -- the second incr (ttl 1 s) kept the key's own expiry
    assert.is_true(ttl_n > 50000 and ttl_n <= 60000, "p:n " .. ttl_n)
    assert.is_true(ttl_s > 500000 and ttl_s <= 600000, "p:s (default_ttl) " .. ttl_s)
  end)

  -- A reload that changes the prefix keeps the connections: the engine's
  -- (made when the resource is) and, with pipeline.threads, one per worker
  -- (made at its first command). Each message writes and reads binary keys
  -- and echoes through redis.call; its VM names itself.
  local function prefix_reload(threads, conns)
    R.cli("FLUSHDB")
    local function yaml(prefix)
      return resources(R.url, ", prefix: '" .. prefix .. "'") .. [[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { interval: 10ms, batch_size: 1, mapping: 'return { n = i }' }
pipeline:
  threads: ]] .. threads .. [[

  processors:
    - lua: |
        vm_id = vm_id or uuid_v4()
        this.vm = vm_id
        local k, v = "\255\0k" .. this.n, "\0\255v" .. this.n
        assert(cache.set("r", k, v))
        this.same = cache.get("r", k) == v
        this.echo = tonumber(redis.call("r", "ECHO", this.n))
output:
  stdout: {}
]]
    end
    local srv = h.serve(yaml("a:"))
    local ok, err = pcall(function()
      local function out() return h.decode_lines(h.lines(srv.stdout())) end
      local function vms()
        local seen, n = {}, 0
        for _, m in ipairs(out()) do if not seen[m.vm] then seen[m.vm], n = true, n + 1 end end
        return n
      end
      assert.is_true(h.wait_for(function() return keys("a:") >= 3 and vms() == threads end, 30), srv.stderr())
      assert.is_true(h.wait_for(function() return clients() == conns end, 30), "connections: " .. clients())
      local before = out()
      h.write(srv.dir .. "/config.yaml", (yaml("b:"):gsub("%$PORT", tostring(srv.port))))
      assert.are.equal(0, (h.sh("curl -s -f -m 30 -X POST " .. srv.url .. "/admin/reload")))
      assert.is_true(h.wait_for(function() return keys("b:") >= 3 end, 30), srv.stderr())
      -- (a message whose set and get straddle the reload meets two prefixes)
      local from = #out()
      assert.is_true(h.wait_for(function() return #out() >= from + 10 end, 30))
      assert.are.equal(conns, clients())
      for k, m in ipairs(out()) do
        assert.are.equal(k, m.n)
        assert.are.equal(k, m.echo)
        if k <= #before or k > from then assert.is_true(m.same, h.json.encode(m)) end
      end
    end)
    h.stop_after(srv, ok, err)
  end

  it("carries binary keys and values; a reload keeps the one connection and applies a new prefix", function()
    prefix_reload(1, 1)
  end)

  it("gives each pipeline.threads worker a connection of its own at its first command; a reload keeps them", function()
    prefix_reload(2, 3)
  end)

  it("serves the cache, dedupe and cached processors", function()
    R.cli("DEL d:0 d:1 d:2 d:seen-0 d:seen-1 d:seen-2 d:c-0 d:c-1 d:c-2")
    local r = h.run_config(resources(R.url, ", prefix: 'd:'") .. [[
input:
  generate:
    count: 9
    interval: 0
    mapping: 'return { n = i % 3 }'
pipeline:
  processors:
    - cached:
        cache: r
        key: 'c-${! this.n }'
        processors:
          - lua: 'calls = (calls or 0) + 1; this.calls = calls'
    - cache: {resource: r, operator: set, key: '${! this.n }', value: '${! content() }'}
    - dedupe: {cache: r, key: 'seen-${! this.n }'}
output:
  stdout: {}
]], {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.decode_lines(h.lines(r.stdout))
    assert.are.equal(3, #out, r.stdout)
    for _, m in ipairs(out) do assert.is_true(m.calls <= 3, h.json.encode(m)) end
    for n = 0, 2 do
      assert.is_truthy(R.cli("GET d:" .. n):find('"n":' .. n, 1, true))
      assert.are.equal(1, R.num("EXISTS d:seen-" .. n))
    end
  end)

  it("cached on redis: the misses of one key in one batch run the processors once (single flight)", function()
    R.cli("DEL sf:c-0 sf:c-1 sf:runs-0 sf:runs-1")
    local r = h.run_config(resources(R.url, ", prefix: 'sf:'") .. [[
input:
  generate: {count: 8, batch_size: 8, interval: 0, mapping: 'return { n = i % 2 }'}
pipeline:
  processors:
    - cached:
        cache: r
        key: 'c-${! this.n }'
        processors:
          - lua: 'this.runs = redis.call("r", "INCR", "sf:runs-" .. this.n)'
output:
  stdout: {}
]], {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.decode_lines(h.lines(r.stdout))
    assert.are.equal(8, #out, r.stdout)
    for _, m in ipairs(out) do assert.are.equal(1, m.runs, h.json.encode(m)) end
    assert.are.equal(1, R.num("GET sf:runs-0"))
    assert.are.equal(1, R.num("GET sf:runs-1"))
  end)

  it("lint refuses a bad url at its field, and a literal label of redis.call that no resource has", function()
    local function lint(yaml)
      local dir = h.tmpdir()
      h.write(dir .. "/c.yaml", yaml)
      local code, out, err = h.sh(h.shell_quote(h.abs_bin) .. " lint " .. dir .. "/c.yaml")
      h.rmdir(dir)
      assert.are_not.equal(0, code)
      return (out or "") .. (err or "")
    end
    local out = lint([[
cache_resources:
  - label: r
    redis: {url: 'http://nope'}
input: {generate: {count: 1, mapping: 'return {}'}}
output: {drop: {}}
]])
    assert.matches("c.yaml:3:18: url: url http://nope: the scheme must be redis://", out, 1, true)
    -- redis.call inside an EVAL script (a string, short or long) is the script's, not a label to check
    out = lint([=[
cache_resources:
  - label: sessions
    redis: {url: 'redis://127.0.0.1:1'}
input: {generate: {count: 1, mapping: 'return {}'}}
pipeline:
  processors:
    - lua: |
        local a = redis.call("sessions", "GET", "k")
        local e = redis.call("sessions", "EVAL", "return redis.call('GET', KEYS[1]) -- \"", 1, "k")
        local f = redis.call("sessions", "EVAL", [==[
          return redis.call("SET", KEYS[1], 'it''s')]==], 1, "k")
        local b = redis.call( "sesions", "GET", "k")
output: {drop: {}}
]=])
    assert.matches('c.yaml:12:19: [^\n]*no cache resource labelled "sesions" %(did you mean "sessions"%?%)', out)
    assert.matches("1 error", out)
  end)
end)

describe("operations in flight when a worker lets go of its Redis link", function()
  -- A Redis of its own that holds every write (CLIENT PAUSE WRITE: reads are
  -- answered, a SET waits in the server), sluice serving yaml on it; body
  -- runs, then sluice stops (SIGTERM: its workers let go of their links with
  -- the writes still in flight) and must exit 0 with no sanitizer report.
  local function writes_held(yaml, body, extra)
    local other = redis.start()
    other.cli("CLIENT PAUSE 120000 WRITE")
    local srv = h.serve(resources(other.url, extra) .. "http: { address: 127.0.0.1:$PORT }\n" .. yaml)
    local ok, err = pcall(body, srv, other)
    h.stop_after(srv, ok, err)
    other.cli("CLIENT UNPAUSE")
    other.stop()
  end
  -- Writes of sluice's that the server holds (paused clients are blocked).
  local function held_sets(other)
    local n = 0
    for _, l in ipairs(h.lines(other.cli("CLIENT LIST"))) do
      if l:find(" flags=b ", 1, true) and (l:find(" cmd=set ", 1, true) or l:find(" cmd=eval ", 1, true)) then n = n + 1 end
    end
    return n
  end

  for _, threads in ipairs({1, 2}) do
    it("the cached processor's set at the process's end (threads " .. threads .. ") is answered, nothing leaks", function()
      writes_held(string.format([[
input:
  generate: { interval: 1h, mapping: 'return { n = 7 }' }
pipeline:
  threads: %d
  processors:
    - cached:
        cache: r
        key: 'c-${! this.n }'
        processors:
          - lua: 'this.made = true'
output:
  stdout: {}
]], threads), function(srv, other)
        assert.is_true(h.wait_for(function() return #h.lines(srv.stdout()) == 1 end, 30), srv.stderr())
        assert.is_true(h.wait_for(function() return held_sets(other) == 1 end, 30), other.cli("CLIENT LIST"))
      end)
    end)
  end

  it("a script's set whose message gave up waiting (its timeout) is answered at the end, nothing leaks", function()
    writes_held([[
input:
  generate: { interval: 1h, batch_size: 2, mapping: 'return { n = i }' }
pipeline:
  processors:
    - lua:
        timeout: 300ms
        code: |
          if this.n % 2 == 1 then cache.set("r", "k", "v") else redis.call("r", "SET", "k2", "v") end
    - catch:
        - lua: 'this.failed = error_message()'
output:
  stdout: {}
]], function(srv, other)
      assert.is_true(h.wait_for(function() return #h.lines(srv.stdout()) == 2 end, 30), srv.stderr())
      for _, m in ipairs(h.decode_lines(h.lines(srv.stdout()))) do
        assert.is_truthy(m.failed and m.failed:find("deadline exceeded", 1, true), h.json.encode(m))
      end
      -- both wait on the one connection: the server holds its first and has not read the second
      assert.are.equal(1, held_sets(other), other.cli("CLIENT LIST"))
    end)
  end)

  it("a script waiting at SIGTERM gets Redis's error as a value (reply_timeout), not a hang", function()
    writes_held([[
input:
  generate: { interval: 1h, mapping: 'return { n = 1 }' }
pipeline:
  processors:
    - lua: |
        local ok, err = cache.set("r", "k", "v")
        return { ok = ok, err = err }
output:
  stdout: {}
]], function(srv, other)
      assert.is_true(h.wait_for(function() return held_sets(other) == 1 end, 30), other.cli("CLIENT LIST"))
      assert.are.equal(0, srv.stop(true))
      local out = h.decode_lines(h.lines(srv.stdout()))
      h.rmdir(srv.dir)
      assert.are.equal(1, #out, srv.stderr())
      assert.is_nil(out[1].ok)
      assert.matches("redis 127.0.0.1:%d+: no reply within 2000 ms", out[1].err)
    end, ", reply_timeout: 2s")
  end)
end)
