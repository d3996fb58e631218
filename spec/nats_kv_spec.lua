-- The `nats_kv` cache backend (cache/nats_kv.c) behind cache.* and the cache
-- processors, against Debian's nats-server with JetStream (one per file,
-- started here), with nats-py (spec/tools/nats_peer.py) as the other client.
local h = require("spec.helpers")
local nats = require("spec.nats_helpers")

local why = nats.unavailable()
if why then
  describe("nats_kv cache", function() pending(why) end)
  return
end

local S

setup(function()
  S = nats.start()
  for _, b in ipairs({"kv", "procs", "counts", "later"}) do
    -- "later" is made by the spec that needs it
    if b ~= "later" then assert.are.equal(0, (nats.peer(S.url, "kvbucket " .. b))) end
  end
end)
teardown(function() if S then S.stop() end end)

local function resources(url, bucket, extra)
  return string.format("cache_resources:\n  - label: kv\n    nats_kv: {urls: [%s], bucket: %s%s}\n", url,
    bucket or "kv", extra or "")
end

-- Runs the messages in lines (stdin) through a lua processor with code and
-- returns stdout's messages decoded, and stderr. A failed message comes out
-- with `failed` set to its error.
local function pipe(code, lines, res)
  local yaml = (res or resources(S.url)) .. "input:\n  stdin: {}\npipeline:\n  threads: 1\n  processors:\n    - lua:\n" ..
    "        code: |\n" .. code:gsub("[^\n]+", "          %0") ..
    "\n    - catch:\n        - lua: 'this.failed = error_message()'\noutput:\n  stdout: {}\n"
  local r = h.run_config(yaml, {stdin = table.concat(lines, "\n") .. "\n", timeout = 120})
  assert.are.equal(0, r.code, r.stderr)
  return h.decode_lines(h.lines(r.stdout)), r.stderr
end

local function kvget(key, url, bucket)
  local code, out, err = nats.peer(url or S.url, "kvget " .. (bucket or "kv") .. " " .. key)
  assert.are.equal(0, code, err)
  return h.json.decode(out)
end

-- The bytes sent to the server on port and not read by it yet (ss's Recv-Q
-- of its side of the connections): in all, and on the one that has most.
local function unread(port)
  local _, o = h.sh("ss -tnH state established '( sport = :" .. port .. " )'")
  local n, most = 0, 0
  for _, l in ipairs(h.lines(o)) do
    local q = tonumber(l:match("^%s*(%d+)") or 0)
    n, most = n + q, math.max(most, q)
  end
  return n, most
end

describe("nats_kv cache", function()
  it("serves scripts on pipeline.threads workers, each with its connection: results right, counters add up", function()
    assert.are.equal(0, (nats.peer(S.url, "kvbucket thr")))
    local n = 300
    local srv = h.serve(resources(S.url, "thr") .. [[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { count: ]] .. n .. [[, interval: 0, batch_size: 1, mapping: 'return { n = i }' }
pipeline:
  threads: 2
  processors:
    - lua:
        max_concurrency: 16
        code: |
          vm_id = vm_id or uuid_v4()
          local k = "k" .. this.n
          local set, err = cache.set("kv", k, "v" .. this.n)
          local got = cache.get("kv", k)
          local c, ierr = cache.incr("kv", "count", 1)
          return {n = this.n, vm = vm_id, set = set, same = got == "v" .. this.n, c = c, err = err or ierr}
output:
  stdout: {}
]], {cmd = "run -w"})
    local ok, err = pcall(function()
      local function outs() return h.decode_lines(h.lines(srv.stdout())) end
      assert.is_true(h.wait_for(function() return #outs() >= n end, 120), srv.stderr())
      local vms, seen = 0, {}
      for _, m in ipairs(outs()) do
        assert.is_nil(m.err, h.json.encode(m))
        assert.is_true(m.set and m.same, h.json.encode(m))
        assert.is_true(m.c >= 1 and m.c <= n and not seen[m.c], h.json.encode(m))   -- each incr its own value
        seen[m.c] = true
        if not seen[m.vm] then seen[m.vm], vms = true, vms + 1 end
      end
      assert.are.equal(2, vms)   -- both pool workers called
      assert.are.same({data = tostring(n), len = #tostring(n)}, kvget("count", nil, "thr"))
      local _, text = h.sh("curl -s -m 5 " .. srv.url .. "/metrics")
      for _, op in ipairs({"set", "get", "incr"}) do
        assert.are.equal(n, tonumber(text:match('cache_success{label="kv",operation="' .. op .. '"} (%d+)')), text)
      end
    end)
    h.stop_after(srv, ok, err)
  end)

  it("runs up to max_in_flight operations at once on a worker's connection, and answers each", function()
    local other = nats.start()
    assert.are.equal(0, (nats.peer(other.url, "kvbucket kv")))
    local srv = h.serve(resources(other.url, "kv", ", timeout: 180s, max_in_flight: 16") .. [[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { interval: 0, batch_size: 1, mapping: 'return { n = i }' }
pipeline:
  threads: 1
  processors:
    - lua:
        max_concurrency: 64
        timeout: 180s    # longer than the server may stay stopped below (60 s) and its catching up (60 s)
        code: |
          local v, err = cache.get("kv", "g" .. this.n)
          return {n = this.n, miss = v == nil and err == nil, err = err}
output:
  stdout: {}
]])
    local pid = h.read(other.dir .. "/server.pid"):match("%d+")
    local ok, err = pcall(function()
      local function outs() return h.decode_lines(h.lines(srv.stdout())) end
      assert.is_true(h.wait_for(function() return #outs() >= 20 end, 30), srv.stderr())
      os.execute("kill -STOP " .. pid)
      -- one KV get is about 100 bytes on the wire (one in flight: 103-105 waited): three times that
      -- waits unread in the stopped server's socket, on one worker's connection
      assert.is_true(h.wait_for(function() return select(2, unread(other.port)) >= 300 end, 60),
        "fewer than 3 operations in flight on one connection: " .. select(2, unread(other.port)) .. " bytes")
      local stopped_at = #outs()
      os.execute("kill -CONT " .. pid)
      assert.is_true(h.wait_for(function() return #outs() >= stopped_at + 50 end, 60), srv.stderr())
      for _, m in ipairs(outs()) do assert.is_true(m.miss, h.json.encode(m) .. "\n" .. srv.stderr()) end
    end)
    os.execute("kill -CONT " .. pid .. " 2>/dev/null")
    h.stop_after(srv, ok, err)
    other.stop()
  end)

  it("a worker's end answers the operations still waiting (their messages gave up), nothing leaks", function()
    local other = nats.start()
    assert.are.equal(0, (nats.peer(other.url, "kvbucket kv")))
    local srv = h.serve(resources(other.url, "kv", ", timeout: 60s, max_in_flight: 1") .. [[
http: { address: 127.0.0.1:$PORT }
input:
  http_server: { path: /in }
pipeline:
  threads: 1
  processors:
    - lua:
        timeout: 300ms
        code: 'cache.set("kv", "k" .. content(), "v")'
output:
  drop: {}
]])
    local pid = h.read(other.dir .. "/server.pid"):match("%d+")
    local ok, err = pcall(function()
      -- connected: a first set answered
      assert.are.equal(0, (h.sh("curl -sf -m 30 -d 0 " .. srv.url .. "/in")))
      os.execute("kill -STOP " .. pid)
      -- three more, each message giving up after 300 ms: the first runs (its
      -- request waits unread in the stopped server), two wait in the queue
      for i = 1, 3 do h.sh(string.format("curl -s -m 30 -d %d %s/in", i, srv.url)) end
      assert.is_true(h.wait_for(function() return unread(other.port) > 0 end, 30), "no operation reached the server")
      -- sluice stops; once the link's end has answered the two queued the
      -- server answers again, so that the end completes (and frees what it
      -- holds) under the one that runs
      os.execute("kill -TERM " .. h.read(srv.dir .. "/pid.txt"):match("%d+"))
      assert.is_true(h.wait_for(function()
        return srv.stderr():find("2 operation(s) still queued at the worker's end", 1, true) ~= nil
      end, 30), srv.stderr())
      os.execute("kill -CONT " .. pid)
      assert.are.equal(0, srv.stop(true))   -- (its SIGTERM is ignored now)
      h.rmdir(srv.dir)
      -- the two queued were answered at the end, never run
      assert.is_true(kvget("k2", other.url).missing)
      assert.is_true(kvget("k3", other.url).missing)
    end)
    h.stop_after(srv, ok, err)
    os.execute("kill -CONT " .. pid .. " 2>/dev/null")
    other.stop()
  end)

  it("get/set/add/delete/incr from Lua, seen by another NATS client and seeing its keys", function()
    assert.are.equal(0, (nats.peer(S.url, "kvput kv from.py hello")))
    local out = pipe([[
local t = {}
t.set = cache.set("kv", "a", "1")
t.get = cache.get("kv", "a")
t.other = cache.get("kv", "from.py")
t.miss = cache.get("kv", "nothing") == nil
t.add_new = cache.add("kv", "b", "x")
t.add_old = cache.add("kv", "b", "y")
t.b = cache.get("kv", "b")
t.del = cache.delete("kv", "a")
t.del_again = cache.delete("kv", "a")
t.gone = cache.get("kv", "a") == nil
t.add_deleted = cache.add("kv", "a", "again")
t.n1 = cache.incr("kv", "n", 5)
t.n2 = cache.incr("kv", "n", -7)
t.ttl = cache.set("kv", "t", "kept", "1ms")
assert(cache.set("kv", "s", "text"))
local v, err = cache.incr("kv", "s")
t.incr_text = {v == nil, err}
t.bin = cache.set("kv", "bin", "\0\255v\n")
t.bin_back = cache.get("kv", "bin") == "\0\255v\n"
t.empty = cache.set("kv", "empty", "")
t.empty_back = cache.get("kv", "empty")
return t
]], {'{}'})
    local t = out[1]
    assert.is_nil(t.failed, t.failed)
    assert.matches("not an integer", t.incr_text[2])
    t.incr_text[2] = nil
    assert.are.same({set = true, get = "1", other = "hello", miss = true, add_new = true, add_old = false, b = "x",
                     del = true, del_again = false, gone = true, add_deleted = true, n1 = 5, n2 = -2, ttl = true,
                     incr_text = {true}, bin = true, bin_back = true, empty = true, empty_back = ""}, t)
    assert.are.same({data = "x", len = 1}, kvget("b"))
    assert.are.same({data = "again", len = 5}, kvget("a"))
    assert.are.same({data = "-2", len = 2}, kvget("n"))
    assert.are.same({data = "\0\\xffv\n", len = 4}, kvget("bin"))
    -- a per-operation TTL is not taken (the bucket's max_age is the keys' TTL)
    assert.are.same({data = "kept", len = 4}, kvget("t"))
  end)

  it("refuses keys NATS KV does not take with a clear error, and the connection goes on", function()
    local out = pipe([[
local t = {r = {}}
for _, k in ipairs({"caf\195\169", "a\255b", "", ".a", "a.", "a b", "a\0b", "a*", "a>", string.rep("k", 1000000)}) do
  local v, err = cache.set("kv", k, "v")
  t.r[#t.r + 1] = {v == nil, err}
end
t.after = cache.set("kv", "fine-key/1=2_3.4", "ok")
t.back = cache.get("kv", "fine-key/1=2_3.4")
return t
]], {'{}'})
    local t = out[1]
    assert.is_nil(t.failed, t.failed)
    t, t.r.after, t.r.back = t.r, t.after, t.back
    assert.are.same({true, "nats_kv: byte 3 of the key (0xc3): a NATS KV key is letters, digits and - / _ = ."}, t[1])
    assert.are.same({true, "nats_kv: byte 1 of the key (0xff): a NATS KV key is letters, digits and - / _ = ."}, t[2])
    assert.are.same({true, "nats_kv: an empty key"}, t[3])
    assert.are.same({true, "nats_kv: a key that starts or ends with '.'"}, t[4])
    assert.are.same({true, "nats_kv: a key that starts or ends with '.'"}, t[5])
    for i = 6, 9 do
      assert.is_true(t[i][1])
      assert.matches("^nats_kv: byte 1 of the key", t[i][2])
    end
    assert.are.same({true, "nats_kv: a key of 1000000 bytes (at most 1024)"}, t[10])
    assert.is_true(t.after)
    assert.are.equal("ok", t.back)
  end)

  it("carries a value of the server's max_payload byte for byte and refuses one byte more", function()
    local dir = h.tmpdir()
    local f = io.open(dir .. "/big", "wb")
    local chunk = {}
    for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
    chunk = table.concat(chunk)
    f:write(chunk:rep(4096))   -- 1 MiB, every byte value
    f:close()
    assert.are.equal(0, (nats.peer(S.url, "kvput kv frompy @" .. dir .. "/big")))
    h.rmdir(dir)
    local out = pipe([[
local chunk = {}
for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
local big = table.concat(chunk):rep(4096)
local t = {}
t.set = cache.set("kv", "big", big)
t.same = cache.get("kv", "big") == big
t.from_py = cache.get("kv", "frompy") == big
local v, err = cache.set("kv", "over", big .. "x")
t.over = {v == nil, err}
v, err = cache.add("kv", "huge", big:rep(64))
t.huge = {v == nil, err}
t.after = cache.get("kv", "big") == big
return t
]], {'{}'})
    local t = out[1]
    assert.is_nil(t.failed, t.failed)
    assert.are.same({set = true, same = true, from_py = true, after = true,
                     over = {true, "nats_kv: a value of 1048577 bytes is over the server's max_payload (1048576 bytes)"},
                     huge = {true, "nats_kv: a value of 67108864 bytes is over the server's max_payload (1048576 bytes)"}},
      t)
    assert.are.equal(1048576, kvget("big").len)
    assert.is_true(kvget("over").missing)
  end)

  it("a missing bucket is an error value, and found once it is made", function()
    local srv = h.serve(resources(S.url, "later") .. [[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { interval: 50ms, mapping: 'return { n = i }' }
pipeline:
  processors:
    - lua: |
        local ok, err = cache.set("kv", "k" .. this.n, "v")
        return {n = this.n, ok = ok, err = err}
output:
  stdout: {}
]])
    local ok, err = pcall(function()
      local function outs() return h.decode_lines(h.lines(srv.stdout())) end
      assert.is_true(h.wait_for(function() return #outs() >= 2 end, 30), srv.stderr())
      assert.are.equal('nats_kv: bucket "later" not found', outs()[1].err)
      assert.are.equal(0, (nats.peer(S.url, "kvbucket later")))
      local first
      assert.is_true(h.wait_for(function()
        for _, m in ipairs(outs()) do if m.ok then first = m return true end end
      end, 30), "no set worked once the bucket was made: " .. srv.stdout())
      assert.are.same({data = "v", len = 1}, kvget("k" .. first.n, nil, "later"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("without a server at start answers nil, err at once, and works once the server is there", function()
    local port = h.port()
    local url = "nats://127.0.0.1:" .. port
    local srv = h.serve(resources(url) .. [[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { interval: 50ms, mapping: 'return { n = i }' }
pipeline:
  processors:
    - lua: |
        local ok, err = cache.incr("kv", "late", 1)
        return {n = this.n, v = ok, err = err}
output:
  stdout: {}
]])
    local other
    local ok, err = pcall(function()
      local function outs() return h.decode_lines(h.lines(srv.stdout())) end
      assert.is_true(h.wait_for(function() return #outs() >= 3 end, 30), srv.stderr())
      for i = 1, 3 do
        assert.is_nil(outs()[i].v)
        assert.are.equal("nats_kv: not connected to " .. url .. " (reconnecting)", outs()[i].err)
      end
      other = nats.start({port = port})
      assert.are.equal(0, (nats.peer(other.url, "kvbucket kv")))
      assert.is_true(h.wait_for(function()
        for _, m in ipairs(outs()) do if m.v then return true end end
      end, 30), "no call worked once the server came: " .. srv.stdout() .. srv.stderr())
    end)
    h.stop_after(srv, ok, err)
    if other then other.stop() end
  end)

  it("server stopped mid-call: the waiting message gets nil, err, /ping answers, and calls work after a restart", function()
    local other = nats.start()
    assert.are.equal(0, (nats.peer(other.url, "kvbucket kv")))
    local srv = h.serve(resources(other.url, "kv", ", timeout: 3s") .. [[
http: { address: 127.0.0.1:$PORT }
input:
  generate: { interval: 50ms, mapping: 'return { n = i }' }
pipeline:
  processors:
    - lua: |
        local v, err = cache.incr("kv", "calls", 1)
        return {n = this.n, v = v, err = err}
output:
  stdout: {}
]])
    local pid = h.read(other.dir .. "/server.pid"):match("%d+")
    local ok, err = pcall(function()
      local function outs() return h.decode_lines(h.lines(srv.stdout())) end
      assert.is_true(h.wait_for(function() local o = outs() return #o >= 5 and o[#o].v ~= nil end, 30), srv.stderr())
      os.execute("kill -STOP " .. pid)
      -- a call is in flight: its bytes wait, unread, in the stopped server's socket
      assert.is_true(h.wait_for(function() return unread(other.port) > 0 end, 20), "no call waited at the stopped server")
      local before = #outs()
      assert.are.equal(0, (h.sh("curl -s -m 2 -o /dev/null " .. srv.url .. "/ping")))
      os.execute("kill -KILL " .. pid)
      local failed
      assert.is_true(h.wait_for(function()
        for _, m in ipairs(outs()) do if m.err then failed = m return true end end
      end, 30), "no call failed: " .. srv.stderr())
      assert.is_true(failed.n >= before - 1, "the failed call was not the one in flight")
      assert.matches("^nats_kv incr: ", failed.err)
      assert.are.equal(0, (h.sh("curl -s -m 2 -o /dev/null " .. srv.url .. "/ping")))
      assert.is_true(other.restart(), other.log())
      local last
      assert.is_true(h.wait_for(function()
        local o = outs()
        last = o[#o]
        return last and last.n > failed.n and last.v ~= nil
      end, 30), "calls did not work again after the restart: " .. srv.stderr())
      assert.is_true(tonumber(kvget("calls", other.url).data) >= last.v)
    end)
    os.execute("kill -CONT " .. pid .. " 2>/dev/null")
    h.stop_after(srv, ok, err)
    other.stop()
  end)

  it("incr from two processes at once loses no increment (a revision-checked update, tried again)", function()
    local yaml = resources(S.url, "counts") .. [[
input:
  generate: { count: 300, interval: 0, mapping: 'return {}' }
pipeline:
  processors:
    - lua: |
        local v, err = cache.incr("kv", "shared", 1)
        if v then return deleted() end
        return {err = err}
output:
  stdout: {}
]]
    local dir = h.tmpdir()
    h.write(dir .. "/c.yaml", yaml)
    local cmd = "timeout -k 5 120 " .. h.shell_quote(h.abs_bin) .. " run " .. dir .. "/c.yaml"
    local code, _, err = h.sh("(" .. cmd .. " > " .. dir .. "/a.txt 2>&1 & " .. cmd .. " > " .. dir ..
      "/b.txt 2>&1; r=$?; wait $!; exit $(( r + $? )))")
    local logs = (h.read(dir .. "/a.txt") or "") .. (h.read(dir .. "/b.txt") or "")
    h.rmdir(dir)
    assert.are.equal(0, code, (err or "") .. logs)
    assert.is_nil(logs:find('"err"', 1, true), logs)
    assert.are.same({data = "600", len = 3}, kvget("shared", nil, "counts"))
  end)

  it("serves the cache, dedupe and cached processors", function()
    local r = h.run_config(resources(S.url, "procs") .. [[
input:
  generate:
    count: 9
    interval: 0
    mapping: 'return { n = i % 3 }'
max_in_flight: 1   # one message at a time: cached has no single flight, two of one key in flight may each miss
pipeline:
  threads: 1   # one VM counts the runs (each worker has its connection: two may each miss a key at once)
  processors:
    - cached:
        cache: kv
        key: 'c-${! this.n }'
        processors:
          - lua: 'calls = (calls or 0) + 1; this.calls = calls'
    - cache: {resource: kv, operator: set, key: 'm-${! this.n }', value: '${! content() }'}
    - dedupe: {cache: kv, key: 'seen-${! this.n }'}
output:
  stdout: {}
]], {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.decode_lines(h.lines(r.stdout))
    assert.are.equal(3, #out, r.stdout)
    for _, m in ipairs(out) do assert.is_true(m.calls <= 3, h.json.encode(m)) end
    for n = 0, 2 do
      assert.is_truthy(kvget("m-" .. n, nil, "procs").data:find('"n":' .. n, 1, true))
      assert.is_nil(kvget("seen-" .. n, nil, "procs").missing)
    end
  end)

  it("lint refuses a bad bucket name and two ways to authenticate, at their fields", function()
    local dir = h.tmpdir()
    h.write(dir .. "/c.yaml", [[
cache_resources:
  - label: kv
    nats_kv:
      urls: [nats://127.0.0.1:4222]
      bucket: 'no.dots'
      auth: {token: t, user: u, password: p}
input: {generate: {count: 1, mapping: 'return {}'}}
output: {drop: {}}
]])
    local code, out, err = h.sh(h.shell_quote(h.abs_bin) .. " lint " .. dir .. "/c.yaml")
    h.rmdir(dir)
    assert.are_not.equal(0, code)
    out = (out or "") .. (err or "")
    assert.matches("c%.yaml:5:15: bucket: not a bucket name %(letters, digits, `_` and `%-`%): \"no%.dots\"", out)
    assert.matches("c%.yaml:6:13: auth: give one way to authenticate", out)
  end)
end)
