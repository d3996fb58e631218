-- A real NATS server (Debian's nats-server, JetStream on) for specs, on a
-- free loopback port with its own store directory; it dies with the spec run.
--
--   local nats = require("spec.nats_helpers")
--   local why = nats.unavailable()         -- nil, or why this machine cannot run one
--   local s = nats.start()                 -- {url, port, dir, stop(), kill(), restart(), log()}
--   nats.peer(s.url, "pub subj 10 --js")   -- spec/tools/nats_peer.py (nats-py): code, stdout, stderr
local h = require("spec.helpers")

local M = {}

function M.unavailable()
  if h.sh("command -v nats-server") ~= 0 then return "nats-server is not installed (scripts/deps.sh installs it)" end
  if h.sh("python3 -c 'import nats'") ~= 0 then return "python3 nats-py is not installed (scripts/deps.sh installs it)" end
  return nil
end

local function my_pid()
  local stat = h.read("/proc/self/stat")
  return stat and stat:match("^(%d+)")
end

local function listening(port)
  return h.sh(string.format("timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null", port)) == 0
end

-- Starts nats-server on port with its store in dir; the server is killed
-- when the process that runs the specs goes (a watcher per server).
local function launch(port, dir, args)
  h.sh(string.format(
    "cd %s && (nats-server -js -sd %s/js -a 127.0.0.1 -p %d -l %s/server.log " .. (args or "") .. " & echo $! > server.pid; " ..
    "srv=$!; (while kill -0 %s 2>/dev/null && kill -0 $srv 2>/dev/null; do sleep 1; done; kill -9 $srv 2>/dev/null) " ..
    ">/dev/null 2>&1 &) >/dev/null 2>&1",
    h.shell_quote(dir), dir, port, dir, my_pid() or "1"))
  return h.wait_for(function() return listening(port) end, 20)
end

-- opts.port: that port (a server that is not there yet, in a spec);
-- opts.args: more nats-server flags (`--user u --pass p`).
function M.start(opts)
  opts = opts or {}
  local last
  for _ = 1, 4 do
    local port, dir = opts.port or h.port(), h.tmpdir()
    if not listening(port) and launch(port, dir, opts.args) then
      local s = {port = port, dir = dir, url = "nats://127.0.0.1:" .. port}
      local function pid() return (h.read(dir .. "/server.pid") or ""):match("%d+") end
      local function gone(sig)
        local p = pid()
        if p then os.execute("kill -" .. sig .. " " .. p .. " 2>/dev/null") end
        return h.wait_for(function() return h.sh("kill -0 " .. (p or "0") .. " 2>/dev/null") ~= 0 end, 20)
      end
      s.log = function() return h.read(dir .. "/server.log") or "" end
      s.kill = function() return gone("TERM") end      -- down, the store stays
      s.restart = function() return launch(port, dir, opts.args) end
      s.stop = function()
        gone("TERM")
        h.rmdir(dir)
      end
      return s
    end
    last = "nats-server did not start on port " .. port .. ": " .. (h.read(dir .. "/server.log") or "")
    h.rmdir(dir)
  end
  error(last, 2)
end

M.tool = "python3 spec/tools/nats_peer.py"

function M.peer(url, args, timeout)
  return h.sh(string.format("timeout -k 5 %d %s %s %s", timeout or 60, M.tool, args:match("^(%S+)"),
    h.shell_quote(url) .. " " .. args:gsub("^%S+%s*", "")))
end

-- A subscriber in the background, in place once this returns: s.wait(n)
-- waits (bounded) for n messages and returns them decoded.
function M.subscribe(url, subject, n, opts)
  opts = opts or ""
  local out, ready = h.tmpname(".jsonl"), h.tmpname(".ready")
  os.execute(string.format("timeout -k 5 60 %s sub %s %s %d --ready %s %s > %s 2>&1 &", M.tool, h.shell_quote(url),
    h.shell_quote(subject), n, ready, opts, out))
  assert(h.wait_for(function() return h.read(ready) end, 20), "the subscriber did not start: " .. (h.read(out) or ""))
  os.remove(ready)
  local s = {}
  s.wait = function(k)
    local lines = h.wait_lines(out, k or n, 30)
    local t = {}
    for _, l in ipairs(lines) do t[#t + 1] = h.json.decode(l) end
    return t
  end
  s.done = function() os.remove(out) end
  return s
end

-- The JSON lines a peer printed, decoded.
function M.decode_lines(out)
  local t = {}
  for _, l in ipairs(h.lines(out)) do t[#t + 1] = h.json.decode(l) end
  return t
end

return M
