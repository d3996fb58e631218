-- Benthos's `lru` and `ttlru` cache kinds on the memory cache's engine: its
-- own deduplicate_lru/ttlru test configs as written (input_batches), the
-- cap evicting the least recently used key, init_values, expiry after
-- default_ttl (and its old name `ttl`), and what lint refuses.
local h = require("spec.helpers")
local json = h.json

local function wait_for(f, what) return h.wait_for(f, 30) or error("timed out waiting for " .. what, 2) end

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

local CONSOLE = [=[
streams:
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

local function serve(resources)
  return h.serve("http: {address: 127.0.0.1:$PORT}\ncache_resources:\n" .. resources .. CONSOLE)
end

-- Runs the calls {{op, name, key, value?, ttl?}, ...}; returns their results.
local function calls(srv, list)
  local body = h.write(h.tmpname(), json.encode(list))
  local _, out = h.sh(string.format("curl -s -m 30 --data-binary @%s %s/c", body, srv.url))
  os.remove(body)
  local ok, r = pcall(json.decode, out)
  if not ok or type(r) ~= "table" then error("console answered: " .. out, 2) end
  return r
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
    ttlru: {}
]])
    local ok, err = pcall(function()
      local r = calls(srv, {
        {"get", "t", "boot"}, {"set", "t", "k", "v"}, {"set", "old", "k", "v"}, {"set", "long", "k", "v"},
        {"get", "t", "k"}, {"get", "old", "k"},
      })
      assert.are.same({"x", "v", "v"}, {r[1].v, r[5].v, r[6].v})
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
