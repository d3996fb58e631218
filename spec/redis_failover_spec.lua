-- Redis behind Sentinel (Benthos's `kind: failover`): a master, a replica and
-- one Sentinel (Debian's redis-server, `--sentinel`), started here on free
-- loopback ports. sluice finds the master through the Sentinel and follows
-- a failover forced with SENTINEL FAILOVER; the same over TLS (the Sentinel,
-- the master, the replica and replication all on TLS ports).
local h = require("spec.helpers")
local redis = require("spec.redis_helpers")

-- A master, its replica and a Sentinel watching it as mm; tls: a directory
-- of redis.tls_certs (every server on TLS too, the Sentinel told of the
-- master's TLS port, so it names TLS ports).
local function trio(tls)
  local t = {}
  local port = function(r) return tls and r.tls_port or r.port end
  t.a = redis.start({args = "--appendonly no", tls = tls})
  t.b = redis.start({args = "--appendonly no --replicaof 127.0.0.1 " .. port(t.a), tls = tls})
  assert(h.wait_for(function() return t.b.cli("INFO replication"):find("master_link_status:up", 1, true) end, 30),
    "the replica did not sync")
  t.s = redis.start({sentinel = string.format("sentinel monitor mm 127.0.0.1 %d 1\n" ..
    "sentinel down-after-milliseconds mm 1000\nsentinel failover-timeout mm 5000", port(t.a)), tls = tls})
  t.port = port
  t.master = function() return tonumber(t.s.cli("SENTINEL get-master-addr-by-name mm"):match("\n(%d+)")) end
  t.stop = function()
    for _, r in ipairs({t.s, t.b, t.a}) do r.stop() end
  end
  return t
end

-- sluice writes through the Sentinel (its url: sentinel_url, tls: the
-- component's tls block or nil) to the master, and after a forced failover
-- to the new one.
local function follows_failover(t, sentinel_url, tls)
  local a, b, s, master = t.a, t.b, t.s, t.master
  local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  generate: {count: 0, interval: 20ms, mapping: 'return {n = i}'}
output:
  redis_list: {url: '%s', kind: failover, master: mm, key: fo%s}
]], sentinel_url, tls and ", tls: " .. tls or ""))
  local ok, err = pcall(function()
    assert.are.equal(t.port(a), master())
    assert.truthy(h.wait_for(function() return a.num("LLEN fo") >= 10 end, 30), "nothing written to the master")
    -- the Sentinel knows the replica once it has asked the master (INFO every 10 s at most)
    assert.truthy(h.wait_for(function() return s.cli("SENTINEL replicas mm"):find(tostring(t.port(b)), 1, true) end, 30))
    s.cli("SENTINEL failover mm")
    assert.truthy(h.wait_for(function() return master() == t.port(b) end, 30), "the failover did not happen")
    -- the old master is not a replica yet: b grows only by sluice's writes
    local n = b.num("LLEN fo")
    assert.truthy(h.wait_for(function() return b.num("LLEN fo") >= n + 20 end, 30), "nothing written to the new master")
    assert.truthy(srv.stderr():find("Sentinel switched master mm 127.0.0.1 " .. t.port(a), 1, true), srv.stderr())
  end)
  h.stop_after(srv, ok, err)
end

describe("redis kind: failover", function()
  local t, a, b, s, master
  setup(function()
    t = trio()
    a, b, s, master = t.a, t.b, t.s, t.master
  end)
  teardown(function() if t then t.stop() end end)

  it("writes to the master the Sentinel names, and to the new one after +switch-master", function()
    follows_failover(t, s.url)
  end)

  it("asks the Sentinels of a url list in turn: the first one stopped, the second names the master", function()
    local s2 = redis.start({sentinel = string.format("sentinel monitor mm 127.0.0.1 %d 1", master())})
    s2.halt()   -- its port now refuses connections
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  generate: {count: 0, interval: 20ms, mapping: 'return {n = i}'}
output:
  redis_list: {url: 'redis://127.0.0.1:%d, redis://127.0.0.1:%d', kind: failover, master: mm, key: two}
]], s2.port, s.port))
    local ok, err = pcall(function()
      local m = master() == a.port and a or b
      assert.truthy(h.wait_for(function() return m.num("LLEN two") >= 10 end, 30), "nothing written to the master: " .. srv.stderr())
      -- the +switch-master listener went on to the second Sentinel too
      assert.truthy(h.wait_for(function()
        return s.cli("CLIENT LIST"):find("cmd=subscribe", 1, true) ~= nil
      end, 30), s.cli("CLIENT LIST"))
    end)
    h.stop_after(srv, ok, err)
    s2.stop()
  end)

  it("lint: failover needs master, master needs failover", function()
    local r = h.run_config([[
input:
  redis_list: { key: a, kind: failover }
output:
  redis_streams: { stream: s, master: mm }
]], {cmd = "lint"})
    assert.matches(":2:%d+: kind: kind: failover needs `master`", r.stderr)
    assert.matches(":4:%d+: master: master names a Sentinel master: only with kind: failover", r.stderr)
  end)
end)

describe("redis kind: failover over TLS", function()
  local t, d
  setup(function()
    d = redis.tls_certs()
    t = trio(d)
  end)
  teardown(function()
    if t then t.stop() end
    if d then h.rmdir(d) end
  end)

  it("finds the master through a TLS Sentinel, checks the IP it is given, and follows a failover", function()
    follows_failover(t, t.s.tls_url, "{enabled: true, root_cas_file: " .. d .. "/ca.pem}")
  end)

  it("checks the address a Sentinel names as the certificate's name: an IP needs an IP SAN, a host name a DNS one",
    function()
    local dns = redis.tls_certs("DNS:localhost")   -- certificates naming localhost only
    local m = redis.start({args = "--appendonly no", tls = dns})
    local by_ip = redis.start({sentinel = "sentinel monitor mm 127.0.0.1 " .. m.tls_port .. " 1", tls = dns})
    local by_name = redis.start({sentinel = "sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n" ..
      "sentinel monitor mm localhost " .. m.tls_port .. " 1", tls = dns})
    local function serve(sentinel, key)
      return h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  generate: {count: 0, interval: 20ms, mapping: 'return {n = i}'}
output:
  redis_list: {url: 'redis://localhost:%d', kind: failover, master: mm, key: %s, tls: {enabled: true, root_cas_file: %s/ca.pem}}
]], sentinel.tls_port, key, dns))
    end
    local srv = serve(by_ip, "ip")
    local ok, err = pcall(function()
      local body
      assert.truthy(h.wait_for(function()
        local code
        code, body = h.ready(srv)
        return code == 503 and body:find("IP address mismatch", 1, true)
      end, 30), body)
      assert.truthy(body:find("127.0.0.1:" .. m.tls_port, 1, true), body)
      assert.are.equal(0, m.num("LLEN ip"))
    end)
    h.stop_after(srv, ok, err)
    srv = serve(by_name, "name")
    ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return m.num("LLEN name") >= 10 end, 30), srv.stderr())
    end)
    h.stop_after(srv, ok, err)
    for _, r in ipairs({by_name, by_ip, m}) do r.stop() end
    h.rmdir(dns)
  end)
end)
