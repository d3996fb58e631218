-- A real single-node Kafka broker (KRaft) for specs, run by scripts/kafka.sh
-- from jars that scripts/deps.sh fetched from Maven Central.
--
--   local kafka = require("spec.kafka_helpers")
--   local why = kafka.unavailable()        -- nil, or why this machine cannot run one
--   local k = kafka.start()                -- {addr = "127.0.0.1:PORT", port, dir, log(), stop()}
--   k.stop()                               -- stops it and removes its directory
local h = require("spec.helpers")

local M = {}

M.script = "scripts/kafka.sh"

-- Only a missing Java or missing jars make a Kafka spec pending: kcat and the
-- rest are ordinary test dependencies, and a failure there is a failure.
function M.unavailable()
  if h.sh("command -v java") ~= 0 then
    return "java is not installed (scripts/deps.sh installs openjdk-17-jre-headless)"
  end
  local code, _, err = h.sh(M.script .. " path")
  if code ~= 0 then return (err:gsub("%s+$", "")) end
  return nil
end

-- This process's pid, so that the broker dies with a spec run that is killed
-- before its teardown runs (scripts/kafka.sh watches it).
local function my_pid()
  local stat = h.read("/proc/self/stat")
  return stat and stat:match("^(%d+)")
end

local function start_once(port, opts)
  -- opts.dir: the directory of a broker stopped with stop(true): its data stays
  local dir = opts.dir or h.tmpdir()
  local env = string.format("KAFKA_OWNER_PID=%s KAFKA_START_TIMEOUT=%d", my_pid() or "", opts.timeout or 60)
  -- C1 alone starts the broker about a second sooner; a spec's few thousand
  -- messages never need C2's code.
  if not os.getenv("KAFKA_JVM_OPTS") then env = env .. " KAFKA_JVM_OPTS=-XX:TieredStopAtLevel=1" end
  -- kafka.sh bounds its own wait (KAFKA_START_TIMEOUT); timeout is the backstop.
  local code, out, err = h.sh(string.format("%s timeout -k 5 %d %s start %s %d", env,
    (opts.timeout or 60) + 30, M.script, h.shell_quote(dir), port))
  if code ~= 0 then
    h.sh(M.script .. " stop " .. h.shell_quote(dir))
    h.rmdir(dir)
    error("kafka did not start (exit " .. tostring(code) .. "): " .. (err or "") .. (out or ""), 0)
  end
  local k = {port = port, addr = "127.0.0.1:" .. port, dir = dir, started = out}
  k.log = function() return h.read(dir .. "/broker.log") or "" end
  -- Bounded by kafka.sh (SIGTERM, then SIGKILL); returns true once it is gone.
  k.stop = function(keep)
    local c, _, e = h.sh(string.format("timeout -k 5 60 %s stop %s", M.script, h.shell_quote(dir)))
    if c ~= 0 then io.stderr:write("kafka stop: ", e or "", "\n") end
    if not keep then h.rmdir(dir) end
    return c == 0
  end
  return k
end

-- Starts a broker on a free port; opts.timeout (s) bounds the wait for it.
function M.start(opts)
  opts = opts or {}
  -- A port another test (or another run) took meanwhile: try another one.
  local last
  for _ = 1, 4 do
    local ok, k = pcall(start_once, opts.port or h.port(), opts)
    if ok then return k end
    last = k
    if opts.port or not tostring(k):lower():find("address already in use", 1, true) then break end
  end
  error(last, 2)
end

return M
