-- Redis Cluster (Benthos's `kind: cluster`): three masters of Debian's
-- redis-server with `cluster-enabled yes`, joined by redis-cli --cluster
-- create, started here on free loopback ports; redis-cli -c (which follows
-- MOVED and ASK) is the peer. Every Redis component and redis.call route
-- each key to the master that owns its slot.
local h = require("spec.helpers")
local redis = require("spec.redis_helpers")

local C

setup(function() C = redis.cluster(3) end)
teardown(function() if C then C.stop() end end)

-- n keys "<prefix>1".."<prefix>n" spread over every node (asserted).
local function spread(prefix, n)
  local nodes = {}
  for i = 1, n do nodes[C.node_of(prefix .. i).port] = true end
  local count = 0
  for _ in pairs(nodes) do count = count + 1 end
  assert.are.equal(3, count, "the keys do not cover the three nodes")
end

describe("redis kind: cluster", function()
  it("routes keys over all three nodes: outputs, redis.call, the cache and its processors", function()
    spread("k", 9)
    local r = h.run_config(string.format([[
cache_resources:
  - label: rc
    redis: {url: '%s', kind: cluster, prefix: 'c:'}
input:
  generate:
    count: 270
    interval: 0
    batch_size: 10
    mapping: |
      meta.k = "k" .. (i %% 9 + 1)
      return { n = i }
pipeline:
  processors:
    - lua: |
        assert(redis.call("rc", "RPUSH", "l:" .. meta.k, this.n))
        assert(cache.set("rc", meta.k, tostring(this.n)))
        this.incr = assert(redis.call("rc", "INCR", "n:" .. meta.k))
    - cache: {resource: rc, operator: set, key: 'p-${! meta.k }', value: '${! content() }'}
output:
  redis_streams: {url: '%s', kind: cluster, stream: 's:${! meta.k }'}
]], C.url, C.url), {timeout = 120})
    assert.are.equal(0, r.code, r.stderr)
    for i = 1, 9 do
      local k = "k" .. i
      assert.are.equal(30, C.num("XLEN s:" .. k), k)
      assert.are.equal(30, C.num("LLEN l:" .. k), k)
      assert.are.equal(30, C.num("GET n:" .. k), k)
      assert.truthy(C.cli("GET c:" .. k):match("%d+"), k)
      assert.truthy(C.cli("GET c:p-" .. k):find('"n":', 1, true), k)
    end
  end)
end)
