-- A real redis-server (Debian's) for specs, on a free loopback port with its
-- own directory, persisted with an fsync per write (appendonly) so that a
-- restart keeps what it acknowledged; redis-cli is the peer client.
--
--   local redis = require("spec.redis_helpers")
--   local r = redis.start()        -- {port, url, dir, cli(args) -> out, cli_in(args, stdin), stop(), restart()}
--   redis.start({args = "--replicaof 127.0.0.1 " .. r.port}), redis.start({sentinel = "sentinel monitor ..."})
--   r.cli("XLEN s")                -- redis-cli's --raw output
--   r.stop()                       -- stops it and removes its directory
--   local d = redis.tls_certs()    -- ca.pem, server.pem/key for 127.0.0.1 (an IP SAN only; or a san given), client.pem/key
--   redis.start({tls = d})         -- also TLS on r.tls_port (r.tls_url), TLS to its master and Sentinels' peers
--   local c = redis.cluster(3)     -- {nodes = {r...}, url, cli(args) (redis-cli -c), cli_all(cmds), slot(key), node_of(key), stop()}
local h = require("spec.helpers")

local M = {}

local function running(port)
  return h.sh(string.format("redis-cli -p %d ping", port)) == 0
end

local function launch(r)
  local code, _, err = h.sh(string.format(
    "redis-server %s --port %d --bind 127.0.0.1 --dir %s --daemonize yes --pidfile %s/redis.pid " ..
    "--logfile %s/redis.log --save '' --protected-mode no %s",
    r.conf or "", r.port, h.shell_quote(r.dir), h.shell_quote(r.dir), h.shell_quote(r.dir),
    r.args or "--appendonly yes --appendfsync always"))
  if code ~= 0 then error("redis-server did not start: " .. (err or ""), 0) end
  if not h.wait_for(function() return running(r.port) end, 20) then
    error("redis-server did not answer: " .. (h.read(r.dir .. "/redis.log") or ""), 0)
  end
end

-- Stops it (SHUTDOWN, which writes what it has) and waits until it is gone.
local function halt(r)
  local pid = h.read(r.dir .. "/redis.pid")
  h.sh(string.format("redis-cli -p %d shutdown", r.port))
  if pid then
    h.wait_for(function() return h.sh("kill -0 " .. pid:match("%d+")) ~= 0 end, 20)
    os.execute("kill -KILL " .. pid:match("%d+") .. " 2>/dev/null")
  end
end

-- A server certificate for 127.0.0.1 (its one name: an IP SAN, what
-- Sentinel and CLUSTER SLOTS give out; san: another subjectAltName, such
-- as DNS:localhost) signed by dir's CA (h.client_certs').
function M.server_cert(dir, san)
  assert(os.execute("cd " .. dir .. " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr " ..
    "-subj /CN=redis 2>/dev/null && printf 'subjectAltName=" .. (san or "IP:127.0.0.1") .. "\\n' > san.ext && openssl x509 -req " ..
    "-in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile san.ext -out server.pem -days 1 2>/dev/null"))
end

function M.tls_certs(san)
  local d = h.tmpdir()
  h.client_certs(d)
  M.server_cert(d, san)
  return d
end

-- opts.args: redis-server's arguments instead of the fsync per write
-- (`--replicaof 127.0.0.1 6379`); opts.sentinel: a Sentinel (redis-server
-- --sentinel) given these config lines (`sentinel monitor ...`); opts.tls:
-- a directory of M.tls_certs: TLS on a port of its own too (the plain one
-- stays, for redis-cli), and to the servers it dials (its master, a
-- Sentinel's peers); opts.tls_auth: "yes" to ask clients for certificates.
function M.start(opts)
  opts = opts or {}
  local r = {dir = h.tmpdir(), args = opts.args}
  if opts.sentinel then
    r.conf = r.dir .. "/sentinel.conf"
    h.write(r.conf, opts.sentinel .. "\n")
    r.args = "--sentinel"
  end
  if opts.tls then
    r.tls_port = h.port()
    r.tls_url = "redis://127.0.0.1:" .. r.tls_port
    r.args = string.format("%s --tls-port %d --tls-cert-file %s/server.pem --tls-key-file %s/server.key " ..
      "--tls-ca-cert-file %s/ca.pem --tls-auth-clients %s --tls-replication yes",
      r.args or "--appendonly yes --appendfsync always", r.tls_port, opts.tls, opts.tls, opts.tls, opts.tls_auth or "no")
  end
  for _ = 1, 4 do
    r.port = h.port()
    if not running(r.port) and pcall(launch, r) then break end
  end
  assert(running(r.port), "redis-server did not start")
  r.url = "redis://127.0.0.1:" .. r.port
  -- args go through the shell without globbing (`XADD s * ...`); quote `>`.
  r.cli = function(args)
    local code, out, err = h.sh(string.format("set -f; redis-cli -p %d --raw %s", r.port, args))
    assert(code == 0, "redis-cli " .. args .. ": " .. (err or ""))
    return out
  end
  -- The last argument from stdin (-x): binary-safe values of any size.
  r.cli_in = function(args, data)
    local code, out, err = h.sh(string.format("set -f; redis-cli -p %d --raw -x %s", r.port, args), data)
    assert(code == 0, "redis-cli " .. args .. ": " .. (err or ""))
    return out
  end
  r.num = function(args) return tonumber((r.cli(args):match("%-?%d+"))) end
  r.halt = function() halt(r) end
  r.launch = function() launch(r) end
  r.stop = function()
    halt(r)
    h.rmdir(r.dir)
  end
  return r
end

-- n masters with `cluster-enabled yes`, joined by redis-cli --cluster create
-- (slots split evenly), waited for until every node says cluster_state:ok.
-- c.url lists every node (Benthos's comma-separated form).
-- tls: a directory of M.tls_certs: the nodes also take TLS, talk TLS among
-- themselves (--tls-cluster), and c.tls_url lists their TLS ports.
-- replicas: a replica per master (n more nodes, c.nodes[n + 1 ..]).
function M.cluster(n, args, tls, replicas)
  local c = {nodes = {}}
  for i = 1, replicas and 2 * n or n do
    c.nodes[i] = M.start({args = "--cluster-enabled yes --cluster-config-file nodes.conf " ..
      "--cluster-node-timeout 2000 " .. (tls and "--tls-cluster yes " or "") ..
      (args or "--appendonly yes --appendfsync always"), tls = tls})
  end
  local addrs, urls, tls_urls = {}, {}, {}
  for i, r in ipairs(c.nodes) do
    addrs[i] = "127.0.0.1:" .. r.port
    urls[i] = r.url
    tls_urls[i] = r.tls_url
  end
  c.url = table.concat(urls, ",")
  c.tls_url = tls and table.concat(tls_urls, ",")
  local code, out, err = h.sh("redis-cli --cluster create " .. table.concat(addrs, " ") ..
    " --cluster-replicas " .. (replicas and 1 or 0) .. " --cluster-yes")
  assert(code == 0, "redis-cli --cluster create: " .. (out or "") .. (err or ""))
  assert(h.wait_for(function()
    for _, r in ipairs(c.nodes) do
      if not r.cli("CLUSTER INFO"):find("cluster_state:ok", 1, true) then return false end
      -- every replica has its master's copy going
      if replicas and r.cli("ROLE"):match("^slave") and not r.cli("ROLE"):find("connected", 1, true) then
        return false
      end
    end
    return true
  end, 30), "the cluster did not come up")
  -- redis-cli -c follows MOVED and ASK, as a cluster client does
  c.cli = function(args)
    local code2, out2, err2 = h.sh(string.format("set -f; redis-cli -c -p %d --raw %s", c.nodes[1].port, args))
    assert(code2 == 0, "redis-cli " .. args .. ": " .. (err2 or ""))
    return out2
  end
  c.num = function(args) return tonumber((c.cli(args):match("%-?%d+"))) end
  -- Commands (a list, each with a one-line reply) through one redis-cli -c:
  -- their replies in order. One process instead of one a command: dozens of
  -- them took seconds on a loaded machine.
  c.cli_all = function(cmds)
    local code2, out2, err2 = h.sh(string.format("redis-cli -c -p %d --raw", c.nodes[1].port),
      table.concat(cmds, "\n") .. "\n")
    assert(code2 == 0, "redis-cli: " .. (err2 or ""))
    local replies = {}
    for l in out2:gmatch("([^\n]*)\n") do
      if not l:find("^%-> Redirected") then replies[#replies + 1] = l end   -- redis-cli's note, not a reply
    end
    assert(#replies == #cmds, #cmds .. " commands, " .. #replies .. " replies: " .. out2)
    return replies
  end
  c.slot = function(key) return c.nodes[1].num("CLUSTER KEYSLOT " .. key) end
  -- the node (one of c.nodes) that serves key's slot now, as node 1 sees it
  c.node_of = function(key)
    local slot = c.slot(key)
    for line in c.nodes[1].cli("CLUSTER NODES"):gmatch("[^\n]+") do
      local f = {}
      for w in line:gmatch("%S+") do f[#f + 1] = w end
      local port = tonumber(f[2]:match(":(%d+)"))
      for i = 9, #f do
        local lo, hi = f[i]:match("^(%d+)%-(%d+)$")
        lo, hi = tonumber(lo or f[i]:match("^(%d+)$")), tonumber(hi or f[i]:match("^(%d+)$"))
        if lo and slot >= lo and slot <= hi then
          for _, r in ipairs(c.nodes) do if r.port == port then return r end end
        end
      end
    end
  end
  c.stop = function()
    for _, r in ipairs(c.nodes) do r.stop() end
  end
  return c
end

return M
