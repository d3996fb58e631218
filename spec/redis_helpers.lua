-- A real redis-server (Debian's) for specs, on a free loopback port with its
-- own directory, persisted with an fsync per write (appendonly) so that a
-- restart keeps what it acknowledged; redis-cli is the peer client.
--
--   local redis = require("spec.redis_helpers")
--   local r = redis.start()        -- {port, url, dir, cli(args) -> out, cli_in(args, stdin), stop(), restart()}
--   redis.start({args = "--replicaof 127.0.0.1 " .. r.port}), redis.start({sentinel = "sentinel monitor ..."})
--   r.cli("XLEN s")                -- redis-cli's --raw output
--   r.stop()                       -- stops it and removes its directory
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

-- opts.args: redis-server's arguments instead of the fsync per write
-- (`--replicaof 127.0.0.1 6379`); opts.sentinel: a Sentinel (redis-server
-- --sentinel) given these config lines (`sentinel monitor ...`).
function M.start(opts)
  opts = opts or {}
  local r = {dir = h.tmpdir(), args = opts.args}
  if opts.sentinel then
    r.conf = r.dir .. "/sentinel.conf"
    h.write(r.conf, opts.sentinel .. "\n")
    r.args = "--sentinel"
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

return M
