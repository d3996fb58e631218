-- Cache resources (cache_resources:): the memory backend's LRU order, TTLs
-- and caps, cache.* from Lua, the cache / dedupe / cached processors, lint of
-- resource names, contents kept across reloads, and hostile keys and values.
-- A "console" stream runs a list of cache.* calls posted to /c and answers
-- with their results, so each spec drives the cache from outside.
local h = require("spec.helpers")
local json = h.json

local function wait_for(f, what) return h.wait_for(f, 30) or error("timed out waiting for " .. what, 2) end

local RESOURCES = [[
cache_resources:
  - label: lru
    memory: {max_entries: 3, default_ttl: 0}
  - label: small
    memory: {max_bytes: 4KiB, default_ttl: 0}
  - label: ttl
    memory: {default_ttl: 1h}
  - label: big
    memory: {max_bytes: 32MiB, max_entries: 10000000, default_ttl: 0}
]]

local CONSOLE = [=[
  console:
    input:
      http_server: {path: /c}
    pipeline:
      processors:
        - lua: |
            local r = {}
            for i, c in ipairs(this) do
              local v, err = cache[c[1]](c[2], c[3], c[4], c[5])
              r[i] = {v = v == nil and json.null or v, err = err}
            end
            return r
    output:
      sync_response: {}
]=]

local function serve(extra, opts)
  return h.serve("http: {address: 127.0.0.1:$PORT}\n" .. RESOURCES .. (extra or "") .. "streams:\n" .. CONSOLE, opts)
end

-- Runs the calls {{op, name, key, value?, ttl?}, ...}; returns their results.
local function calls(srv, list)
  local body = h.write(h.tmpname(), json.encode(list))
  local _, out = h.sh(string.format("curl -s -m 30 --data-binary @%s %s/c", body, srv.url))
  os.remove(body)
  local ok, r = pcall(json.decode, out)
  if not ok or type(r) ~= "table" or r[1] == nil and #list > 0 then error("console answered: " .. out, 2) end
  return r
end
local function call(srv, ...) return calls(srv, {{...}})[1] end

local function rss_kib(srv)
  local pid = h.read(srv.dir .. "/pid.txt"):match("%d+")
  return tonumber((h.read("/proc/" .. pid .. "/status") or ""):match("VmRSS:%s*(%d+)")) or 0
end

local decoded = h.decode_lines

local function metrics(srv)
  local _, text = h.sh("curl -s -m 5 " .. srv.url .. "/metrics")
  return text
end
local function series(text, name, label, op)
  return tonumber(text:match(name .. '{label="' .. label .. '",operation="' .. op .. '"} (%d+)')) or 0
end

describe("cache resources", function()
  it("evicts the least recently used key first (a get counts as use)", function()
    local srv = serve()
    local ok, err = pcall(function()
      local r = calls(srv, {
        {"set", "lru", "a", "1"}, {"set", "lru", "b", "2"}, {"set", "lru", "c", "3"},
        {"get", "lru", "a"},                 -- a is now the most recent: b is the oldest
        {"set", "lru", "d", "4"},            -- evicts b
        {"get", "lru", "b"}, {"get", "lru", "a"}, {"get", "lru", "c"}, {"get", "lru", "d"},
        {"set", "lru", "e", "5"},            -- evicts a: the reads above touched a, c, d in that order
        {"get", "lru", "a"}, {"get", "lru", "c"},
      })
      assert.are.equal(json.null, r[6].v)
      assert.are.same({"1", "3", "4"}, {r[7].v, r[8].v, r[9].v})
      assert.are.equal(json.null, r[11].v)
      assert.are.equal("3", r[12].v)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("set, add, delete and incr answer as documented, errors as values", function()
    local srv = serve()
    local ok, err = pcall(function()
      local r = calls(srv, {
        {"add", "ttl", "k", "first"}, {"add", "ttl", "k", "second"}, {"get", "ttl", "k"},
        {"delete", "ttl", "k"}, {"delete", "ttl", "k"}, {"get", "ttl", "k"},
        {"incr", "ttl", "n"}, {"incr", "ttl", "n", 41}, {"incr", "ttl", "n", -50},
        {"set", "ttl", "s", "not a number"}, {"incr", "ttl", "s"},
        {"set", "ttl", "max", "9223372036854775807"}, {"incr", "ttl", "max"},
        {"set", "ttl", 12, 34}, {"get", "ttl", "12"},
      })
      assert.are.same({true, false, "first"}, {r[1].v, r[2].v, r[3].v})
      assert.are.same({true, false, json.null}, {r[4].v, r[5].v, r[6].v})
      assert.are.same({1, 42, -8}, {r[7].v, r[8].v, r[9].v})
      assert.are.equal(json.null, r[11].v)
      assert.are.equal("the value is not an integer", r[11].err)
      assert.are.equal("increment would overflow", r[13].err)
      assert.are.equal("34", r[15].v)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("expires keys after their TTL (per key, or the resource's default_ttl)", function()
    local srv = serve([[
  - label: short
    memory: {default_ttl: 300ms}
]])
    local ok, err = pcall(function()
      -- set and read back in one script call (microseconds apart): there before expiring
      local r = calls(srv, {
        {"set", "ttl", "brief", "x", 0.3}, {"set", "ttl", "duration", "x", "300ms"}, {"set", "ttl", "long", "x"},
        {"set", "short", "default", "x"}, {"set", "short", "forever", "x", 0}, {"incr", "short", "counter"},
        {"get", "ttl", "brief"}, {"get", "ttl", "duration"}, {"get", "short", "default"}, {"get", "short", "counter"},
      })
      for i = 1, 6 do assert.is_nil(r[i].err) end
      assert.are.same({"x", "x", "x", "1"}, {r[7].v, r[8].v, r[9].v, r[10].v})
      wait_for(function()
        local g = calls(srv, {{"get", "ttl", "brief"}, {"get", "ttl", "duration"}, {"get", "short", "default"},
                              {"get", "short", "counter"}})
        for i = 1, 4 do if g[i].v ~= json.null then return false end end
        return true
      end, "the short-lived keys to expire")
      local g = calls(srv, {{"get", "ttl", "long"}, {"get", "short", "forever"}})
      assert.are.same({"x", "x"}, {g[1].v, g[2].v})
    end)
    h.stop_after(srv, ok, err)
  end)

  it("sweeps expired keys out every compaction_interval, a slice per operation, and shows what it holds", function()
    local srv = serve([[
  - label: sweep
    memory: {default_ttl: 100ms, compaction_interval: 200ms}
  - label: nosweep
    memory: {default_ttl: 100ms, compaction_interval: 0}
]])
    local ok, err = pcall(function()
      local fill = {}
      for i = 1, 2000 do
        fill[#fill + 1] = {"set", "sweep", "k" .. i, "v"}
        fill[#fill + 1] = {"set", "nosweep", "k" .. i, "v"}
      end
      calls(srv, fill)
      local function held(label)
        return tonumber(metrics(srv):match('sluice_cache_entries{label="' .. label .. '"} (%d+)'))
      end
      -- nothing runs on a resource between operations
      assert.are.same({2000, 2000}, {held("sweep"), held("nosweep")})
      local touch = {}
      for i = 1, 50 do
        touch[#touch + 1] = {"get", "sweep", "other"}
        touch[#touch + 1] = {"get", "nosweep", "other"}
      end
      wait_for(function()
        calls(srv, touch)
        return held("sweep") == 0
      end, "the sweep")
      -- the same operations on a resource without sweeps left its expired keys
      assert.are.equal(2000, held("nosweep"))
      assert.matches('sluice_cache_bytes{label="nosweep"} %d+', metrics(srv))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("holds at most max_bytes, evicting the oldest, and refuses what can never fit", function()
    local srv = serve()
    local ok, err = pcall(function()
      local list = {}
      for i = 1, 40 do list[#list + 1] = {"set", "small", "k" .. i, string.rep("v", 200)} end
      for i = 1, 40 do list[#list + 1] = {"get", "small", "k" .. i} end
      list[#list + 1] = {"set", "small", "huge", string.rep("h", 5000)}
      local r = calls(srv, list)
      local kept, first_kept = 0, nil
      for i = 1, 40 do
        if r[40 + i].v ~= json.null then
          kept = kept + 1
          first_kept = first_kept or i
        else
          assert.is_nil(first_kept, "k" .. i .. " evicted after a younger key was kept")
        end
      end
      -- 4 KiB holds 14 entries of ~280 bytes each (key, value, bookkeeping)
      assert.is_true(kept >= 10 and kept <= 16, "kept " .. kept)
      assert.are.equal(json.null, r[81].v)
      assert.matches("larger than the cache's max_bytes", r[81].err)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("takes hostile keys and values: empty, non-UTF-8, binary, 10 MB", function()
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. RESOURCES .. [[
input:
  http_server: {path: /c}
pipeline:
  processors:
    - lua: |
        local big = string.rep("k", 10 * 1024 * 1024)
        local bin = "\0\255\254\128 \r\n\0"
        local out = {}
        out[1] = cache.set("big", "", "empty key")
        out[2] = cache.get("big", "")
        out[3] = cache.set("big", bin, bin .. bin)
        out[4] = cache.get("big", bin) == bin .. bin
        out[5] = cache.get("big", "\0\255\254\128") == nil
        out[6] = cache.set("big", big, big)
        local ok, e = cache.set("small", big, "x")
        out[7] = ok == nil and e
        out[8] = cache.get("big", big) == big
        out[9] = cache.get("big", big .. "x") == nil
        out[10] = cache.set("big", "v", "")
        out[11] = cache.get("big", "v")
        return out
output:
  sync_response: {}
]])
    local ok, err = pcall(function()
      local _, out = h.sh("curl -s -m 30 -d x " .. srv.url .. "/c")
      local r = json.decode(out)
      assert.are.same({true, "empty key", true, true, true, true}, {r[1], r[2], r[3], r[4], r[5], r[6]})
      assert.matches("larger than the cache's max_bytes", r[7])
      assert.are.same({true, true, true, ""}, {r[8], r[9], r[10], r[11]})
    end)
    h.stop_after(srv, ok, err)
  end)

  it("raises (failing the message, not its batch) on a call the script gets wrong", function()
    local r = h.run_config(RESOURCES .. [[
input:
  generate: {count: 5, batch_size: 5, interval: 0s, mapping: 'return tostring(i)'}
pipeline:
  processors:
    - lua: |
        local n = tonumber(content())
        if n == 1 then cache.get("no" .. "pe", "k")
        elseif n == 2 then cache.set("lru", {}, "v")
        elseif n == 3 then cache.set("lru", "k")
        elseif n == 4 then cache.incr("lru", "k", 1.5) end
        return "ok " .. n
    - catch:
        - lua: 'return "failed: " .. error_message()'
output:
  stdout: {}
]])
    assert.are.equal(0, r.code, r.stderr)
    local lines = h.lines(r.stdout)
    assert.are.equal(5, #lines)
    -- each handled message keeps its place
    assert.matches('^failed: .*:16: cache%.get: no cache resource labelled "nope"$', lines[1])
    assert.matches("^failed: .*:17: cache%.set: key must be a string or a number, not a table$", lines[2])
    assert.matches("^failed: .*:18: cache%.set: value is missing", lines[3])
    assert.matches("^failed: .*:19: cache%.incr: by must be an integer$", lines[4])
    assert.equal("ok 5", lines[5])
  end)

  it("stays within its caps whatever the number of distinct keys (RSS bounded)", function()
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\nlua: {max_time: 30s}\n" .. [[
cache_resources:
  - label: many
    memory: {max_bytes: 16MiB, max_entries: 10000000, default_ttl: 0}
input:
  http_server: {path: /c}
pipeline:
  processors:
    - lua: |
        local base = tonumber(content())
        for i = base, base + 99999 do cache.set("many", "key-" .. i, "value of key " .. i .. " padded out") end
        return tostring(cache.get("many", "key-" .. base) ~= nil)
output:
  sync_response: {}
]])
    local ok, err = pcall(function()
      local rss0
      for round = 0, 29 do   -- 3M distinct keys, 100k per request
        local _, out = h.sh(string.format("curl -s -m 60 -d %d %s/c", round * 100000, srv.url))
        assert.are.equal("true", out)
        if round == 0 then rss0 = rss_kib(srv) end
      end
      local rss = rss_kib(srv)
      -- 16 MiB of entries; without the byte cap the 3M keys took 357 MiB (more than
      -- under ASan, whose quarantine and redzones also raise the bound here)
      local asan = (os.getenv("SLUICE_BIN") or ""):find("asan", 1, true)
      assert.is_true(rss < (asan and 800 or 200) * 1024, "RSS " .. rss .. " KiB")
      assert.is_true(rss - rss0 < (asan and 500 or 100) * 1024, "grew from " .. rss0 .. " to " .. rss .. " KiB")
      -- the oldest keys were evicted, the newest are there
      local _, first = h.sh(string.format("curl -s -m 60 -d 2900000 %s/c", srv.url))
      assert.are.equal("true", first)
    end)
    h.stop_after(srv, ok, err)
  end)
end)

describe("cache processors", function()
  it("cache: set, add, get and delete by an interpolated key, with a ttl; failures flag the message", function()
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. RESOURCES .. [[
streams:
  put:
    input: {http_server: {path: /put}}
    pipeline:
      processors:
        - cache: {resource: ttl, operator: set, key: 'user-${! this.id }', value: '${! this.name }'}
    output: {sync_response: {}}
  add:
    input: {http_server: {path: /add}}
    pipeline:
      processors:
        - cache: {resource: ttl, operator: add, key: 'user-${! this.id }', value: '${! this.name }',
                  ttl: '${! this.ttl or "200ms" }'}
        - catch: [{lua: 'return "failed: " .. error_message()'}]
    output: {sync_response: {}}
  get:
    input: {http_server: {path: /get}}
    pipeline:
      processors:
        - cache: {resource: ttl, operator: get, key: 'user-${! this.id }'}
        - catch: [{lua: 'return "failed: " .. error_message()'}]
    output: {sync_response: {}}
  del:
    input: {http_server: {path: /del}}
    pipeline:
      processors:
        - cache: {resource: ttl, operator: delete, key: 'user-${! this.id }'}
    output: {sync_response: {}}
]])
    local function post(path, body)
      local _, out = h.sh(string.format("curl -s -m 10 -d %s %s%s", h.shell_quote(body), srv.url, path))
      return out
    end
    local ok, err = pcall(function()
      post("/put", '{"id":1,"name":"ann"}')
      assert.are.equal("ann", post("/get", '{"id":1}'))
      assert.are.equal('failed: cache ttl: key does not exist', post("/get", '{"id":2}'))
      assert.are.equal('failed: cache ttl: key already exists', post("/add", '{"id":1,"name":"bob"}'))
      assert.are.equal('failed: cache: ttl: "soon" is not a duration', post("/add", '{"id":3,"name":"c","ttl":"soon"}'))
      assert.are.equal('failed: cache ttl: key does not exist', post("/get", '{"id":3}'))
      assert.are.equal('{"id":2,"name":"bob"}', post("/add", '{"id":2,"name":"bob"}'))
      -- add's ttl: the key goes after 200 ms; set's (the default, 1h) stays
      wait_for(function() return post("/get", '{"id":2}') == "failed: cache ttl: key does not exist" end,
        "user-2 to expire")
      assert.are.equal("ann", post("/get", '{"id":1}'))
      post("/del", '{"id":1}')
      assert.are.equal('failed: cache ttl: key does not exist', post("/get", '{"id":1}'))
      -- the key's own failure: `this` of a body that is not JSON
      assert.matches("^failed: cache: key: .*not JSON", post("/get", "not json"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("dedupe: drops repeats of a key within a batch and across batches, and passes them after the TTL", function()
    local r = h.run_config([[
cache_resources:
  - label: seen
    memory: {default_ttl: 1h}
input:
  generate: {count: 12, batch_size: 4, interval: 0s, mapping: 'return {n = i, k = i % 5}'}
pipeline:
  processors:
    - dedupe: {cache: seen, key: '${! this.k }'}
output:
  stdout: {}
]])
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({{n = 1, k = 1}, {n = 2, k = 2}, {n = 3, k = 3}, {n = 4, k = 4}, {n = 5, k = 0}},
      decoded(h.lines(r.stdout)))

    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. [[
cache_resources:
  - label: seen
    memory: {default_ttl: 300ms}
input: {http_server: {path: /d}}
pipeline:
  processors:
    - dedupe: {cache: seen, key: '${! content() }'}
output: {sync_response: {}}
]])
    local ok, err = pcall(function()
      local function post(body)
        local _, out = h.sh(string.format("curl -s -m 10 -d %s %s/d", body, srv.url))
        return out
      end
      -- the first passes; a repeat is dropped (acknowledged: 200 without the message)
      assert.are.equal("a", post("a"))
      wait_for(function() return post("a") == '{"status":"ok"}' end, "a repeat to be dropped")
      wait_for(function() return post("a") == "a" end, "the key to expire and pass again")
    end)
    h.stop_after(srv, ok, err)
  end)

  it("cached: runs its processors once per key, serves hits from the cache, counts both", function()
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. RESOURCES .. [[
input:
  generate: {count: 6, batch_size: 1, interval: 0s, mapping: 'return {n = i, k = i % 2}'}
pipeline:
  processors:
    - cached:
        cache: ttl
        key: 'geo-${! this.k }'
        processors:
          - lua: 'this.run = cache.incr("lru", "runs")'
    - lua: 'this.n = nil'
output:
  file: {path: out.txt}
]], {cmd = "run -w"})
    local ok, err = pcall(function()
      local lines = h.wait_lines(srv.dir .. "/out.txt", 6)
      local one, zero = {k = 1, run = 1}, {k = 0, run = 2}
      assert.are.same({one, zero, one, zero, one, zero}, decoded(lines))
      local text = metrics(srv)
      assert.are.equal(4, series(text, "cache_success", "ttl", "get"))
      assert.are.equal(2, series(text, "cache_not_found", "ttl", "get"))
      assert.are.equal(2, series(text, "cache_success", "ttl", "set"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("cached: caches nothing for a failed result, a skipped one, or a message its processors split", function()
    local mod = h.write(h.tmpname(".lua"), [[
return {process = function(msg)
  local v = msg:json()
  local runs = cache.incr("big", "runs-" .. v.k)
  if v.k == 1 then
    msg:set_content(json.encode({k = 1, runs = runs}))
    error("no result")
  end
  if v.k == 3 then
    local a, b = msg:copy(), msg:copy()
    a:set_content('"a"')
    b:set_content('"b"')
    return {a, b}
  end
  v.runs = runs
  msg:set_json(v)
  return msg
end}
]])
    local r = h.run_config(RESOURCES .. [[
input:
  generate: {count: 8, batch_size: 4, interval: 0s, mapping: 'return {n = i, k = i % 4}'}
pipeline:
  processors:
    - cached:
        cache: ttl
        key: 'x-${! this.k }'
        skip_on: 'this.k == 2'
        processors:
          - lua: {file: ]] .. mod .. [[}
    - catch: []
    - lua: 'if type(this) == "table" then this.n = nil end'
output:
  stdout: {}
]])
    os.remove(mod)
    assert.are.equal(0, r.code, r.stderr)
    local by = {}
    for _, v in ipairs(decoded(h.lines(r.stdout))) do
      local k = type(v) == "table" and v.k or v
      by[k] = by[k] or {}
      table.insert(by[k], v)
    end
    -- k=0 was cached by its first run: its second message is a hit (runs stays 1)
    assert.are.same({{k = 0, runs = 1}, {k = 0, runs = 1}}, by[0])
    -- k=2 was skipped by skip_on, so ran twice
    assert.are.same({{k = 2, runs = 1}, {k = 2, runs = 2}}, by[2])
    -- k=1 failed each time (caught: the message as it failed) and k=3 split each time: both ran twice
    assert.are.same({{k = 1, runs = 1}, {k = 1, runs = 2}}, by[1])
    assert.are.same({"a", "a"}, by.a)
    assert.are.same({"b", "b"}, by.b)
  end)
end)

describe("cached inside cached", function()
  it("keeps each one's misses apart, takes binary keys, and leaves no metadata behind", function()
    local r = h.run_config(RESOURCES .. [[
input:
  generate: {count: 4, batch_size: 1, interval: 0s, mapping: 'return {k = i % 2}'}
pipeline:
  processors:
    - cached:
        cache: ttl
        key: 'outer-${! this.k }'
        processors:
          - cached:
              cache: ttl
              key: '${! "\0bin\255" .. this.k }'
              processors:
                - lua: 'this.inner = cache.incr("big", "inner")'
          - lua: 'this.outer = cache.incr("big", "outer")'
    - lua: |
        local n = 0
        for _ in pairs(meta()) do n = n + 1 end
        this.meta = n
output:
  stdout: {}
]])
    assert.are.equal(0, r.code, r.stderr)
    local one, zero = {k = 1, inner = 1, outer = 1, meta = 0}, {k = 0, inner = 2, outer = 2, meta = 0}
    assert.are.same({one, zero, one, zero}, decoded(h.lines(r.stdout)))
  end)
end)

describe("cached single flight", function()
  -- The wrapped processors count their runs per key in the "big" resource.
  local function flight(k_mapping, count, batch, child)
    return h.run_config(RESOURCES .. string.format([[
input:
  generate: {count: %d, batch_size: %d, interval: 0s, mapping: '%s'}
pipeline:
  processors:
    - cached:
        cache: ttl
        key: 'f-${! this.k }'
        processors:
          - lua: |
]] .. child .. [[

    - catch: []
output:
  stdout: {}
]], count, batch, k_mapping))
  end

  it("runs the processors once for the misses of one key in one batch; the others take its result", function()
    local r = flight("return {k = i % 2}", 8, 8, "              this.runs = cache.incr(\"big\", \"runs-\" .. this.k)")
    assert.are.equal(0, r.code, r.stderr)
    local out = decoded(h.lines(r.stdout))
    assert.are.equal(8, #out)
    for _, v in ipairs(out) do assert.are.same({k = v.k, runs = 1}, v) end
  end)

  it("lets the waiters run the processors themselves when the first run fails or drops its message", function()
    for _, fate in ipairs({"error(\"first fails\")", "return deleted()"}) do
      local r = flight("return {k = 7}", 4, 4, string.format([[
              this.runs = cache.incr("big", "runs")
              if this.runs == 1 then %s end]], fate))
      assert.are.equal(0, r.code, r.stderr)
      local runs = {}
      for _, v in ipairs(decoded(h.lines(r.stdout))) do
        if v.runs then table.insert(runs, v.runs) end
      end
      table.sort(runs)
      assert.are.same({2, 3, 4}, runs, fate)
    end
  end)

  it("makes a miss on another pool worker wait for the run in flight", function()
    -- The first message's run holds its worker until the second message's
    -- key was evaluated (its lookup follows at once, on the other worker):
    -- both miss (cache_not_found counts 2), the processors run once.
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. RESOURCES .. [[
input:
  generate: {count: 2, batch_size: 1, interval: 0s, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - cached:
        cache: ttl
        key: '${! cache.incr("big", "arrived") and "same" }'
        processors:
          - lua: |
              local polls = 0
              while tonumber(cache.get("big", "arrived")) < 2 and polls < 20000000 do polls = polls + 1 end
              this.runs = cache.incr("big", "runs")
    - lua: 'this.n = nil'
output:
  file: {path: out.txt}
]], {cmd = "run -w"})
    local ok, err = pcall(function()
      local lines = h.wait_lines(srv.dir .. "/out.txt", 2)
      assert.are.same({{runs = 1}, {runs = 1}}, decoded(lines))
      local text = metrics(srv)
      assert.are.equal(2, series(text, "cache_not_found", "ttl", "get"))
      assert.are.equal(1, series(text, "cache_success", "ttl", "set"))
    end)
    h.stop_after(srv, ok, err)
  end)
  it("has no single flight over processors that keep a message until later ones come (a batch)", function()
    -- Every message has one key: a miss waiting for the first one, which the
    -- batch keeps until a second comes, would wait until the stream stops
    -- (or until max_in_flight messages wait: the stream then flushes).
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. RESOURCES .. [[
input:
  generate: {count: 0, interval: 20ms, mapping: 'return {k = 1}'}
max_in_flight: 100000
pipeline:
  threads: 1
  processors:
    - cached:
        cache: ttl
        key: 'same-${! this.k }'
        processors:
          - batch: {count: 2}
          - lua: 'this.runs = cache.incr("big", "runs")'
output:
  file: {path: out.txt}
]])
    local ok, err = pcall(function()
      local lines = h.wait_lines(srv.dir .. "/out.txt", 4)
      assert.is_true(#lines >= 4, table.concat(lines, "\n"))
    end)
    h.stop_after(srv, ok, err)
  end)
end)

describe("cache lint", function()
  local USERS = "cache_resources:\n  - label: users\n    memory: {}\n"
  -- What `sluice lint` prints of yaml, which it must refuse.
  local function lint(yaml)
    local r = h.run_config(yaml, {cmd = "lint"})
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    return r.stdout .. r.stderr
  end

  it("names an unknown resource with file:line:col, and checks the resources themselves", function()
    local out = lint([[
cache_resources:
  - label: users
    memory: {}
  - label: users
    memory: {}
  - label: nothing
input:
  generate: {count: 1, mapping: 'return {}'}
output:
  stdout: {}
]])
    assert.matches(':4:12: cache_resources%.1%.label: a second resource labelled "users"', out)
    assert.matches(":6:5: cache_resources%.2: no backend: expected one of [%w_, ]*memory", out)
    out = lint(USERS .. [[
input:
  generate: {count: 1, mapping: 'return {}'}
pipeline:
  processors:
    - cache: {resource: usres, operator: get, key: k}
    - dedupe: {cache: elsewhere, key: k}
    - cached: {cache: users, key: k, processors: [{cache: {resource: users, operator: set, key: k}}]}
output:
  stdout: {}
]])
    assert.matches(':8:25: resource: no cache resource labelled "usres" %(did you mean "users"%?%)', out)
    assert.matches(':9:23: cache: no cache resource labelled "elsewhere"', out)
    assert.matches(":10:%d+: value: operator set needs a value", out)
    assert.matches("3 errors", out)
  end)

  it("names a literal label of inline Lua that no resource has, at its line and column", function()
    local out = lint(USERS .. [[
input:
  generate: {count: 1, mapping: 'return {}'}
pipeline:
  processors:
    - lua: |
        local a = cache.get("users", "k")
        -- cache.get("old", "k") in a comment is not a call
        local b = cache.set( 'usres', "k", "v")
        local c = mycache.get("x", "k")
        local n = "dyn"; cache.get(n, "k")
    - lua: 'cache.incr("nope", "k")'
    - log: {message: 'seen ${! cache.get("sers", "k") } times'}
output:
  stdout: {}
]])
    assert.matches(':11:19: code: no cache resource labelled "usres" %(did you mean "users"%?%)', out)
    assert.matches(':14:13: code: no cache resource labelled "nope" in cache_resources', out)
    assert.matches(':15:32: message: no cache resource labelled "sers" %(did you mean "users"%?%)', out)
    assert.matches("\n3 errors", out)
  end)

  it("refuses a name when the config declares no resources at all", function()
    local out = lint([[
input:
  generate: {count: 1, mapping: 'return {}'}
pipeline:
  processors:
    - dedupe: {cache: seen, key: k}
output:
  stdout: {}
]])
    assert.matches(':5:23: cache: no cache resource labelled "seen" in cache_resources', out)
  end)
end)

describe("cache resources across reloads", function()
  local function config(script, extra)
    return "http: {address: 127.0.0.1:$PORT}\n" .. RESOURCES .. (extra or "") .. [[
input: {http_server: {path: /c}}
pipeline:
  processors:
    - lua: |
]] .. script .. [[
output: {sync_response: {}}
]]
  end

  it("keeps the contents when a reload keeps the resource, adds new ones, keeps dropped ones running", function()
    local srv = h.serve(config("        cache.set('ttl', 'filled-by', 'v1')\n"
      .. "        for _, k in ipairs({'a', 'b', 'c'}) do cache.set('lru', k, k) end\n"
      .. "        return 'v1 ' .. cache.incr('ttl', 'n')\n"))
    local ok, err = pcall(function()
      local function post()
        local _, out = h.sh(string.format("curl -s -m 10 -d x %s/c", srv.url))
        return out
      end
      assert.are.equal("v1 1", post())
      assert.are.equal("v1 2", post())
      -- the script changes, `ttl` gets new settings, `lru` a lower cap (its oldest key goes at
      -- once), `extra` is new, `small` and the others are dropped (and stay)
      local fresh = config(
        "        return (cache.get('ttl', 'filled-by') or 'gone') .. ' ' .. cache.incr('ttl', 'n') .. ' ' .. "
          .. "tostring(cache.add('extra', 'k', 'v')) .. ' ' .. tostring(cache.get('lru', 'a')) .. ' ' .. "
          .. "tostring(cache.get('lru', 'c')) .. ' ' .. tostring(cache.set('small', 'still', 'here'))\n",
        "  - label: extra\n    memory: {}\n")
      fresh = fresh:gsub("label: ttl\n    memory: {default_ttl: 1h}", "label: ttl\n    memory: {default_ttl: 2h}")
      fresh = fresh:gsub("memory: {max_entries: 3, default_ttl: 0}", "memory: {max_entries: 2, default_ttl: 0}")
      fresh = fresh:gsub("  %- label: small\n    memory: {max_bytes: 4KiB, default_ttl: 0}\n", "")
      h.write(srv.dir .. "/config.yaml", (fresh:gsub("%$PORT", tostring(srv.port))))
      local _, reply = h.sh("curl -s -m 30 -X POST " .. srv.url .. "/admin/reload")
      assert.is_nil(reply:find('"restart_required":%["cache_resources"'), reply)
      assert.are.equal("v1 3 true nil c true", post())
    end)
    h.stop_after(srv, ok, err)
  end)

  it("keeps the contents when a module that filled it is hot-reloaded", function()
    local function mod(tag)
      return "return {process = function(msg) msg:set_content(tostring(cache.get('ttl', 'k')) .. ' ' .. "
        .. ("%q"):format(tag) .. "); cache.set('ttl', 'k', " .. ("%q"):format(tag) .. "); return msg end}\n"
    end
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. RESOURCES .. [[
input: {http_server: {path: /c}}
pipeline:
  processors:
    - lua: {file: mod.lua}
output: {sync_response: {}}
]], {before = function(dir) h.write(dir .. "/mod.lua", mod("one")) end})
    local ok, err = pcall(function()
      local function post()
        local _, out = h.sh(string.format("curl -s -m 10 -d x %s/c", srv.url))
        return out
      end
      assert.are.equal("nil one", post())
      h.write(srv.dir .. "/mod.lua", mod("two"))
      wait_for(function() return post():find(" two$") end, "the module's new version")
      assert.are.equal("two two", post())
    end)
    h.stop_after(srv, ok, err)
  end)
end)

-- Benthos's `lru` and `ttlru` kinds on the memory cache's engine: its own
-- deduplicate_lru/ttlru tests as written (input_batches), the cap, init_values,
-- expiry after default_ttl (and its old name `ttl`), what lint refuses.
-- Benthos v4.27.0's config/test/deduplicate_lru.yaml, with the kind's body
-- as given.
local function dedupe_config(kind_body)
  return [[
pipeline:
  processors:
    - dedupe:
        cache: local
        key: ${! content() }

cache_resources:
  - label: local
    ]] .. kind_body .. [[


tests:
  - name: de-duplicate across batches
    input_batches:
      -
        - content: '1'
        - content: '2'
        - content: '3'
        - content: '4'
        - content: '3'
        - content: '3'
        - content: '3'
      -
        - content: '4'
        - content: '1'
        - content: '1'
        - content: '3'
        - content: '4'
        - content: '4'
        - content: '2'
        - content: '1'
    output_batches:
      -
        - content_equals: 1
        - content_equals: 2
        - content_equals: 3
        - content_equals: 4
]]
end

describe("lru and ttlru caches", function()
  it("run Benthos's deduplicate_lru and deduplicate_ttlru tests as written", function()
    for _, body in ipairs({"lru: {}", "ttlru:\n      default_ttl: 1m"}) do
      local r = h.run_config(dedupe_config(body), {cmd = "test"})
      assert.are.equal(0, r.code, body .. ": " .. r.stdout .. r.stderr)
      assert.matches("1 passed, 0 failed", r.stdout)
    end
  end)

  it("lru: holds cap keys, evicting the least recently used (a get counts as use), starts with init_values",
    function()
      local srv = serve([[
  - label: l
    lru:
      cap: 3
      init_values: {a: "1"}
]])
      local ok, err = pcall(function()
        local r = calls(srv, {
          {"get", "l", "a"},                           -- from init_values
          {"set", "l", "b", "2"}, {"set", "l", "c", "3"},
          {"get", "l", "a"},                           -- a is the most recent: b is the oldest
          {"set", "l", "d", "4"},                      -- evicts b
          {"get", "l", "b"}, {"get", "l", "a"}, {"get", "l", "c"}, {"get", "l", "d"},
          {"add", "l", "d", "5"},
        })
        assert.are.equal("1", r[1].v)
        assert.are.equal(json.null, r[6].v)
        assert.are.same({"1", "3", "4"}, {r[7].v, r[8].v, r[9].v})
        assert.are.equal(false, r[10].v)
      end)
      h.stop_after(srv, ok, err)
    end)

  it("ttlru: keys (init_values too) expire default_ttl after they were written; `ttl` is its old name", function()
    local srv = serve([[
  - label: t
    ttlru:
      cap: 2
      default_ttl: 300ms
      init_values: {boot: "x"}
  - label: old
    ttlru: {ttl: 300ms, default_ttl: 1h}
  - label: long
    ttlru: {init_values: {boot: "y"}}
]])
    local ok, err = pcall(function()
      -- (t's init value may be gone already on a slow start: only its expiry is checked)
      local r = calls(srv, {
        {"get", "long", "boot"}, {"set", "t", "k", "v"}, {"set", "old", "k", "v"}, {"set", "long", "k", "v"},
        {"get", "t", "k"}, {"get", "old", "k"},
      })
      assert.are.same({"y", "v", "v"}, {r[1].v, r[5].v, r[6].v})
      wait_for(function()
        local g = calls(srv, {{"get", "t", "boot"}, {"get", "t", "k"}, {"get", "old", "k"}})
        return g[1].v == json.null and g[2].v == json.null and g[3].v == json.null
      end, "the ttlru keys to expire")
      assert.are.equal("v", calls(srv, {{"get", "long", "k"}})[1].v)   -- default_ttl 5m
      -- cap 2: a third key evicts the oldest
      r = calls(srv, {{"set", "t", "1", "a"}, {"set", "t", "2", "b"}, {"set", "t", "3", "c"},
                      {"get", "t", "1"}, {"get", "t", "3"}})
      assert.are.same({json.null, "c"}, {r[4].v, r[5].v})
    end)
    h.stop_after(srv, ok, err)
  end)

  it("lint refuses what they cannot honour, at the field", function()
    local function lint(resources)
      local r = h.run_config("cache_resources:\n" .. resources .. "pipeline:\n  processors: []\n", {cmd = "lint"})
      assert.are.equal(1, r.code, r.stdout .. r.stderr)
      return r.stdout .. r.stderr
    end
    local out = lint([[
  - label: b
    lru: {cap: 0}
  - label: c
    ttlru: {default_ttl: 1h, without_reset: true}
]])
    assert.matches(":3:%d+: cache_resources%.0%.lru%.cap: 0 is out of range", out)
    assert.matches(":5:%d+: cache_resources%.1%.ttlru%.without_reset: unknown field", out)
    out = lint([[
  - label: a
    lru:
      algorithm: arc
]])
    assert.matches(":4:18: algorithm: `arc` is not built", out)
  end)
end)
