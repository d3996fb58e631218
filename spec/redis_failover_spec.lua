-- Redis behind Sentinel (Benthos's `kind: failover`): a master, a replica and
-- one Sentinel (Debian's redis-server, `--sentinel`), started here on free
-- loopback ports. sluice finds the master through the Sentinel and follows
-- a failover forced with SENTINEL FAILOVER.
local h = require("spec.helpers")
local redis = require("spec.redis_helpers")

describe("redis kind: failover", function()
  local a, b, s
  setup(function()
    a = redis.start({args = "--appendonly no"})
    b = redis.start({args = "--appendonly no --replicaof 127.0.0.1 " .. a.port})
    assert(h.wait_for(function() return b.cli("INFO replication"):find("master_link_status:up", 1, true) end, 30),
      "the replica did not sync")
    s = redis.start({sentinel = string.format("sentinel monitor mm 127.0.0.1 %d 1\n" ..
      "sentinel down-after-milliseconds mm 1000\nsentinel failover-timeout mm 5000", a.port)})
  end)
  teardown(function()
    for _, r in ipairs({s, b, a}) do if r then r.stop() end end
  end)

  local function master() return tonumber(s.cli("SENTINEL get-master-addr-by-name mm"):match("\n(%d+)")) end

  it("writes to the master the Sentinel names, and to the new one after +switch-master", function()
    local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  generate: {count: 0, interval: 20ms, mapping: 'return {n = i}'}
output:
  redis_list: {url: 'redis://127.0.0.1:%d', kind: failover, master: mm, key: fo}
]], s.port))
    local ok, err = pcall(function()
      assert.are.equal(a.port, master())
      assert.truthy(h.wait_for(function() return a.num("LLEN fo") >= 10 end, 30), "nothing written to the master")
      -- the Sentinel knows the replica once it has asked the master (INFO every 10 s at most)
      assert.truthy(h.wait_for(function() return s.cli("SENTINEL replicas mm"):find(tostring(b.port), 1, true) end, 30))
      s.cli("SENTINEL failover mm")
      assert.truthy(h.wait_for(function() return master() == b.port end, 30), "the failover did not happen")
      -- the old master is not a replica yet: b grows only by sluice's writes
      local n = b.num("LLEN fo")
      assert.truthy(h.wait_for(function() return b.num("LLEN fo") >= n + 20 end, 30), "nothing written to the new master")
      assert.truthy(srv.stderr():find("Sentinel switched master mm 127.0.0.1 " .. a.port, 1, true), srv.stderr())
    end)
    h.stop_after(srv, ok, err)
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
