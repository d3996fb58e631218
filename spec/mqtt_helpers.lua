-- A real Mosquitto broker (Debian's `mosquitto`) for specs, on loopback on a
-- free port with its own config and persistence directory; mosquitto_pub and
-- mosquitto_sub (Debian's `mosquitto-clients`) are the peers.
--
--   local mq = require("spec.mqtt_helpers")
--   local b = mq.start()          -- {port, dir, url, pub(args), sub(args), stop(keep), restart()}
local h = require("spec.helpers")

local M = {}

local function alive(pid)
  return pid and os.execute("kill -0 " .. pid .. " 2>/dev/null") == 0 or false
end

local function start_once(port, opts)
  local dir = opts.dir or h.tmpdir()
  -- started as root, mosquitto runs as the user `mosquitto`, which writes
  -- its persistence file here
  os.execute("chmod 0777 " .. h.shell_quote(dir))
  h.write(dir .. "/mosquitto.conf", table.concat({
    opts.before_listener or "",
    "listener " .. port .. " 127.0.0.1",
    "allow_anonymous true",
    "persistence true",
    "persistence_location " .. dir .. "/",
    "max_queued_messages 0",
    opts.extra or "",
    ""}, "\n"))
  os.execute(string.format("cd %s && (mosquitto -c mosquitto.conf >> broker.log 2>&1 & echo $! > broker.pid)",
    h.shell_quote(dir)))
  local pid = (h.read(dir .. "/broker.pid") or ""):match("%d+")
  local b = {port = port, dir = dir, url = "tcp://127.0.0.1:" .. port, pid = pid}
  b.log = function() return h.read(dir .. "/broker.log") or "" end
  b.pub = function(args, stdin)
    return h.sh(string.format("timeout 20 mosquitto_pub -p %d %s", port, args), stdin)
  end
  b.sub = function(args)
    local _, out = h.sh(string.format("timeout 30 mosquitto_sub -p %d %s", port, args))
    return out
  end
  b.stop = function(keep)
    if alive(b.pid) then os.execute("kill -TERM " .. b.pid) end
    h.wait_for(function() return not alive(b.pid) end, 20)
    if alive(b.pid) then os.execute("kill -KILL " .. b.pid) end
    if not keep then h.rmdir(dir) end
  end
  b.restart = function()
    b.stop(true)
    local nb = M.start({port = port, dir = dir, extra = opts.extra, before_listener = opts.before_listener})
    b.pid = nb.pid
  end
  local up = h.wait_for(function()
    return b.pub("-t sluice/ping -n") == 0 or not alive(pid)
  end, 20)
  if not up or not alive(pid) then
    local log = b.log()
    b.stop(opts.dir ~= nil)
    error("mosquitto did not start: " .. log, 0)
  end
  return b
end

-- Starts a broker; opts.port and opts.dir start it again where an earlier
-- one ran (its persisted sessions stay), opts.extra adds config lines after
-- the first listener's, opts.before_listener global ones before it.
function M.start(opts)
  opts = opts or {}
  local last
  for _ = 1, 4 do
    local ok, b = pcall(start_once, opts.port or h.port(), opts)
    if ok then return b end
    last = b
    if opts.port or not tostring(b):find("ddress already in use", 1, true) then break end
  end
  error(last, 2)
end

return M
