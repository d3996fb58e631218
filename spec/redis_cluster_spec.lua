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

-- n keys "<prefix>1".."<prefix>n" spread over every node of c (C by default; asserted).
local function spread(prefix, n, c)
  local nodes = {}
  for i = 1, n do nodes[(c or C).node_of(prefix .. i).port] = true end
  local count = 0
  for _ in pairs(nodes) do count = count + 1 end
  assert.are.equal(3, count, "the keys do not cover the three nodes")
end

-- One key "<prefix><i>" on each master of c (C by default), in node order.
local function one_per_node(prefix, c)
  c = c or C
  local keys = {}
  for i = 1, 100 do
    local r = c.node_of(prefix .. i)
    for j = 1, 3 do if c.nodes[j] == r and not keys[j] then keys[j] = prefix .. i end end
    if keys[1] and keys[2] and keys[3] then return keys end
  end
  error("no key per node for " .. prefix)
end

-- The n values of list key (JSON {"n": v} messages) as a set, and their count.
local function got(key)
  local set, count = {}, 0
  for _, l in ipairs(h.lines(C.cli("LRANGE " .. key .. " 0 -1"))) do
    local v = l:match('"n":"?([%w:]+)')
    if v then set[v], count = true, count + 1 end
  end
  return set, count
end

-- Whether the values of n ({"n": v} messages) in the lists (pairs {node, key}) cover 1..max: ok, max, the first gap.
local function contiguous(lists)
  local set, max = {}, 0
  for _, p in ipairs(lists) do
    for _, l in ipairs(h.lines(p[1].cli("LRANGE " .. p[2] .. " 0 -1"))) do
      local n = tonumber(l:match('"n":(%d+)'))
      if n then
        set[n] = true
        if n > max then max = n end
      end
    end
  end
  for i = 1, max do if not set[i] then return false, max, i end end
  return true, max
end

-- A sluice writing {"n": i} to the lists keys[1..3] of c in turn, every 5 ms.
local function flow(c, keys)
  return h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  generate:
    count: 0
    interval: 5ms
    mapping: |
      meta.k = ({"%s", "%s", "%s"})[i %% 3 + 1]
      return {n = i}
output:
  redis_list: {url: '%s', kind: cluster, key: '${! meta.k }'}
]], keys[1], keys[2], keys[3], c.url))
end

-- kill -9 of node once its list key has 20 values.
local function kill_when_written(node, key)
  assert.truthy(h.wait_for(function() return node.num("LLEN " .. key) >= 20 end, 30), "nothing written")
  os.execute("kill -KILL " .. h.read(node.dir .. "/redis.pid"):match("%d+"))
end

-- Keys over every node of c through outputs, redis.call, the cache and its
-- processors (over TLS to c's TLS ports with the tls block tls, when given);
-- sluice runs inside around(fn) when given.
local function routes(c, tls, around)
  spread("k", 9, c)
  local del = {}
  for i = 1, 9 do
    for _, p in ipairs({"s:", "l:", "n:", "c:", "c:p-"}) do del[#del + 1] = "DEL " .. p .. "k" .. i end
  end
  c.cli_all(del)
  local url, t = tls and c.tls_url or c.url, tls and ", tls: " .. tls or ""
  local r
  ;(around or function(fn) fn() end)(function() r = h.run_config(string.format([[
cache_resources:
  - label: rc
    redis: {url: '%s', kind: cluster, prefix: 'c:'%s}
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
  redis_streams: {url: '%s', kind: cluster, stream: 's:${! meta.k }'%s}
]], url, t, url, t), {timeout = 120}) end)
  assert.are.equal(0, r.code, r.stderr)
  local gets = {}
  for i = 1, 9 do
    for _, cmd in ipairs({"XLEN s:", "LLEN l:", "GET n:", "GET c:", "GET c:p-"}) do gets[#gets + 1] = cmd .. "k" .. i end
  end
  local got = c.cli_all(gets)
  for i = 1, 9 do
    local k, r = "k" .. i, 5 * (i - 1)
    assert.are.equal("30", got[r + 1], k)
    assert.are.equal("30", got[r + 2], k)
    assert.are.equal("30", got[r + 3], k)
    assert.truthy(got[r + 4]:match("%d+"), k)
    assert.truthy(got[r + 5]:find('"n":', 1, true), k)
  end
end

-- sluice writes to key through a redis_list output (over TLS to c's TLS
-- ports with the tls block tls, when given) while its slot moves from its
-- node to another.
local function follows_migration(c, key, tls)
  local slot = c.slot(key)
  local a = c.node_of(key)
  local b = a == c.nodes[1] and c.nodes[2] or c.nodes[1]
  local aid, bid = a.cli("CLUSTER MYID"):match("%x+"), b.cli("CLUSTER MYID"):match("%x+")
  local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  generate: {count: 0, interval: 5ms, mapping: 'return {n = i}'}
output:
  redis_list: {url: '%s', kind: cluster, key: %s%s}
]], tls and c.tls_url or c.url, key, tls and ", tls: " .. tls or ""))
  local ok, err = pcall(function()
    assert.truthy(h.wait_for(function() return a.num("LLEN " .. key) >= 50 end, 30), "nothing written")
    b.cli(string.format("CLUSTER SETSLOT %d IMPORTING %s", slot, aid))
    a.cli(string.format("CLUSTER SETSLOT %d MIGRATING %s", slot, bid))
    -- with --tls-cluster a node MIGRATEs over TLS
    a.cli(string.format("MIGRATE 127.0.0.1 %d %s 0 5000", b.tls_port or b.port, key))
    -- the slot is still a's in every map: writes reach b only through ASK (and b answers only after ASKING)
    local function asked_len()
      local _, out = h.sh(string.format("printf 'ASKING\\nLLEN %s\\n' | redis-cli -p %d --raw", key, b.port))
      return tonumber(out:match("OK%s+(%d+)")) or -1
    end
    local n = asked_len()
    assert.truthy(n >= 50, "MIGRATE moved nothing")
    assert.truthy(h.wait_for(function() return asked_len() >= n + 50 end, 30), "not followed ASK")
    assert.matches("^ASK ", a.cli("EXISTS " .. key))   -- a does not hold it
    for _, r in ipairs(c.nodes) do r.cli(string.format("CLUSTER SETSLOT %d NODE %s", slot, bid)) end
    -- now a answers MOVED: writes go on to b
    n = b.num("LLEN " .. key)
    assert.truthy(h.wait_for(function() return b.num("LLEN " .. key) >= n + 50 end, 30), "not followed MOVED")
    assert.matches("^MOVED ", a.cli("EXISTS " .. key))
  end)
  h.stop_after(srv, ok, err)
  local all, max, gap = contiguous({{b, key}})
  assert.truthy(all, string.format("%d missing of 1..%d", gap or 0, max))
end

describe("redis kind: cluster", function()
  it("routes keys over all three nodes: outputs, redis.call, the cache and its processors", function()
    routes(C)
  end)

  it("redis.call: keyless commands go to any node, EVAL by its first key, keys in two slots get CROSSSLOT as a value",
    function()
    local r = h.run_config(string.format([[
cache_resources:
  - label: rc
    redis: {url: '%s', kind: cluster}
input:
  generate: {count: 1, interval: 0, mapping: 'return {}'}
pipeline:
  processors:
    - lua: |
        this.ping = redis.call("rc", "PING")
        this.eval = redis.call("rc", "EVAL", "return redis.pcall('SET', KEYS[1], ARGV[1])", 1, "ev", "x")
        this.same = redis.call("rc", "MSET", "{t}.a", 1, "{t}.b", 2)
        local v, err = redis.call("rc", "MSET", "a", 1, "b", 2)
        this.cross = err
        -- a key with NUL and bytes that are not UTF-8 is routed by all its bytes
        for i = 1, 30 do
          local k = "bin\0\255" .. i
          assert(redis.call("rc", "SET", k, k))
          assert(redis.call("rc", "GET", k) == k, "binary key " .. i)
        end
output:
  stdout: {}
]], C.url), {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    local m = h.json.decode(r.stdout)
    assert.are.equal("PONG", m.ping)
    assert.are.equal("OK", m.eval)
    assert.are.equal("OK", m.same)
    assert.matches("^CROSSSLOT", m.cross)
    assert.are.equal("x", C.cli("GET ev"):match("%w+"))
    assert.are.equal("2", C.cli("GET {t}.b"):match("%w+"))
  end)

  it("reads from every node: one streams input (a read per node), list inputs (one per node's key), pub/sub", function()
    local sk, lk = one_per_node("rs:"), one_per_node("rl:")
    local inputs = {}
    for j = 1, 3 do
      for e = 1, 20 do
        C.cli(string.format("XADD %s * body '{\"n\":\"%s:%d\"}'", sk[j], sk[j], e))
        C.cli(string.format("RPUSH %s '{\"n\":\"%s:%d\"}'", lk[j], lk[j], e))
      end
      inputs[#inputs + 1] = string.format("      - redis_list: {url: '%s', kind: cluster, key: %s, timeout: 200ms}",
        C.url, lk[j])
    end
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  broker:
    inputs:
%s
      - redis_streams: {url: '%s', kind: cluster, streams: [%s], client_id: c1, timeout: 200ms}
      - redis_pubsub: {url: '%s', kind: cluster, channels: [ch]}
output:
  redis_list: {url: '%s', kind: cluster, key: got}
]], table.concat(inputs, "\n"), C.url, table.concat(sk, ", "), C.url, C.url))
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return select(2, got("got")) >= 120 end, 60),
        "got " .. select(2, got("got")) .. " of 120")
      -- published on each node: the subscriber on one of them hears all
      assert.truthy(h.wait_for(function()
        for j = 1, 3 do C.nodes[j].cli(string.format("PUBLISH ch '{\"n\":\"p%d\"}'", j)) end
        local set = got("got")
        return set.p1 and set.p2 and set.p3
      end, 30), "published messages not heard")
      local set = got("got")
      for j = 1, 3 do
        for e = 1, 20 do
          assert.truthy(set[sk[j] .. ":" .. e], sk[j] .. ":" .. e)
          assert.truthy(set[lk[j] .. ":" .. e], lk[j] .. ":" .. e)
        end
        -- acknowledged: nothing pending, processing lists empty
        assert.truthy(h.wait_for(function() return C.cli("XPENDING " .. sk[j] .. " sluice"):match("^0") end, 30),
          C.cli("XPENDING " .. sk[j] .. " sluice"))
        assert.truthy(h.wait_for(function() return C.num("LLEN {" .. lk[j] .. "}-processing") == 0 end, 30))
      end
    end)
    h.stop_after(srv, ok, err)
  end)

  it("lint: a list input's two keys must share a slot (streams need not); several URLs need cluster or failover",
    function()
    local r = h.run_config(string.format([[
input:
  broker:
    inputs:
      - redis_streams: {url: '%s', kind: cluster, streams: [a, b]}
      - redis_streams: {url: '%s', kind: cluster, streams: ['{o}.a', '{o}.b']}
      - redis_list: {url: '%s', kind: cluster, key: a, processing_key: b}
      - redis_list: {url: '%s', kind: cluster, key: a}
output:
  redis_list: {url: '%s', key: x}
]], C.url, C.url, C.url, C.url, C.url), {cmd = "lint"})
    assert.is_nil(r.stderr:find(":4:%d+:"), r.stderr)
    assert.matches(":6:%d+: processing_key: kind: cluster: a %(slot 15495%) and b", r.stderr)
    assert.matches(":9:%d+: url: several URLs name the nodes of kind: cluster", r.stderr)
    assert.is_nil(r.stderr:find(":5:%d+:"), r.stderr)
    assert.is_nil(r.stderr:find(":7:%d+:"), r.stderr)
    r = h.run_config("input:\n  redis_list: {url: 'redis://127.0.0.1:1/2', kind: cluster, key: a}\n" ..
      "output:\n  drop: {}\n", {cmd = "lint"})
    assert.matches(":2:%d+: url: a Redis Cluster has only database 0", r.stderr)
  end)

  it("follows a slot migrated mid-flow: ASK while it moves, MOVED once it moved; nothing lost", function()
    follows_migration(C, "mig")
  end)

  it("a node killed mid-flow: not ready saying which, writes wait and go on after its restart; nothing lost", function()
    local keys = one_per_node("kd:")
    local victim = C.nodes[3]
    local srv = flow(C, keys)
    local ok, err = pcall(function()
      kill_when_written(victim, keys[3])
      assert.truthy(h.wait_for(function()
        local code, body = h.ready(srv)
        return code == 503 and body:find("127.0.0.1:" .. victim.port, 1, true)
      end, 30), "ready while a master is gone")
      victim.launch()
      assert.truthy(h.wait_for(function()
        for _, r in ipairs(C.nodes) do
          if not r.cli("CLUSTER INFO"):find("cluster_state:ok", 1, true) then return false end
        end
        return true
      end, 60), "the cluster did not come back")
      assert.truthy(h.wait_for(function() return h.ready(srv) == 200 end, 60), "not ready again")
      local n = victim.num("LLEN " .. keys[3])
      assert.truthy(h.wait_for(function() return victim.num("LLEN " .. keys[3]) >= n + 20 end, 30),
        "no writes after the restart")
    end)
    h.stop_after(srv, ok, err)
    -- every value acknowledged is in its list (the victim fsyncs each write): 1..max without a gap
    local all, max, gap = contiguous({{C.nodes[1], keys[1]}, {C.nodes[2], keys[2]}, {C.nodes[3], keys[3]}})
    assert.truthy(all, string.format("%d missing of 1..%d", gap or 0, max))
  end)

  it("a url that is no cluster node: not ready, and /ready says why", function()
    local plain = redis.start({args = "--appendonly no"})
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  generate: {count: 0, interval: 50ms, mapping: 'return {n = i}'}
output:
  redis_list: {url: '%s', kind: cluster, key: x}
]], plain.url))
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function()
        local code, body = h.ready(srv)
        return code == 503 and body:find("cluster support disabled", 1, true)
      end, 30), select(2, h.ready(srv)))
      assert.are.equal(0, plain.num("EXISTS x"))
    end)
    h.stop_after(srv, ok, err)
    plain.stop()
  end)
end)

-- Runs fn while the nodes of C name themselves as `cluster-preferred-endpoint-type
-- kind` says (hostname: each node's `cluster-announce-hostname`, none when
-- not given); ip again after, which redis-cli -c (the checks' peer) needs:
-- it follows neither "MOVED slot :port" nor "MOVED slot ?:port".
local function named_as(kind, hostname)
  return function(fn)
    for _, r in ipairs(C.nodes) do
      r.cli("CONFIG SET cluster-announce-hostname " .. (hostname or "''"))
      r.cli("CONFIG SET cluster-preferred-endpoint-type " .. kind)
    end
    local want = kind == "unknown-endpoint" and "MOVED %d+ :%d" or hostname and "MOVED %d+ " .. hostname .. ":%d" or
      "MOVED %d+ %?:%d"
    -- every node names every other so (the names spread by gossip)
    local owners = {}
    for i = 1, 9 do owners[i] = C.node_of("k" .. i) end
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function()
        for i = 1, 9 do
          local owner = owners[i]
          for _, r in ipairs(C.nodes) do
            if r ~= owner and not r.cli("EXISTS k" .. i):match(want) then return false end
          end
        end
        return true
      end, 30), "the nodes do not answer " .. want)
      fn()
    end)
    for _, r in ipairs(C.nodes) do r.cli("CONFIG SET cluster-preferred-endpoint-type ip") end
    assert(ok, err)
  end
end

-- Redis 7's nodes behind names: a host name (TLS certificates, containers),
-- an endpoint Redis does not know (a load balancer: the client uses the
-- host it asked, with the port given), or a host name a node lacks ("?":
-- its ip from CLUSTER SLOTS' metadata).
describe("redis kind: cluster naming its nodes otherwise than by ip", function()
  for _, case in ipairs({{"hostname", "localhost"}, {"unknown-endpoint"}, {"hostname"}}) do
    local what = case[1] .. (case[2] and " " .. case[2] or case[1] == "hostname" and " (none given)" or "")
    it("routes keys over all three nodes and follows a slot migrated mid-flow, endpoints by " .. what, function()
      -- both under one naming: the names take seconds to spread
      routes(C, nil, function(run)
        named_as(case[1], case[2])(function()
          run()
          follows_migration(C, "mign" .. #what)
        end)
      end)
    end)
  end
end)

describe("redis kind: cluster with replicas", function()
  local CR
  setup(function() CR = redis.cluster(3, "--appendonly no", nil, true) end)
  teardown(function() if CR then CR.stop() end end)

  -- Redis replicates asynchronously: what a master acknowledged just before
  -- it died may be missing on its replica (docs/redis.md), so this asks for
  -- the flow to go on, not for every value.
  it("a master killed mid-flow: its replica takes over and writes go on to it, the old master still gone", function()
    local keys = one_per_node("fo:", CR)
    local victim = CR.nodes[3]
    local srv = flow(CR, keys)
    local ok, err = pcall(function()
      kill_when_written(victim, keys[3])
      local promoted
      assert.truthy(h.wait_for(function()
        promoted = CR.node_of(keys[3])
        return promoted and promoted ~= victim
      end, 60), "no replica took over")
      assert.truthy(h.wait_for(function() return h.ready(srv) == 200 end, 60), select(2, h.ready(srv)))
      local n = promoted.num("LLEN " .. keys[3])
      assert.truthy(h.wait_for(function() return promoted.num("LLEN " .. keys[3]) >= n + 20 end, 30),
        "no writes to the replica that took over")
      local code = h.sh("redis-cli -p " .. victim.port .. " PING")
      assert.are_not.equal(0, code, "the old master came back")
    end)
    h.stop_after(srv, ok, err)
  end)
end)

describe("redis kind: cluster over TLS", function()
  local d, CT
  setup(function()
    d = redis.tls_certs()
    CT = redis.cluster(3, nil, d)
  end)
  teardown(function()
    if CT then CT.stop() end
    if d then h.rmdir(d) end
  end)
  local function tls() return "{enabled: true, root_cas_file: " .. d .. "/ca.pem}" end

  it("routes keys over the three nodes' TLS ports (the map and its IPs from CLUSTER SLOTS over TLS)", function()
    routes(CT, tls())
  end)

  it("follows a slot migrated mid-flow to another TLS node: ASK, then MOVED; nothing lost", function()
    follows_migration(CT, "migt", tls())
  end)
end)
