-- Shared helpers for busted specs: run the sluice binary on a config and read
-- back what it printed. SLUICE_BIN picks the binary (the sanitizer run sets it).
local M = {}

M.bin = os.getenv("SLUICE_BIN") or "build/sluice"

local function tmpname(suffix)
  local p = os.tmpname()
  if suffix then
    os.remove(p)
    p = p .. suffix
  end
  return p
end
M.tmpname = tmpname

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("*a")
  f:close()
  return d
end

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; returns exit code, stdout, stderr.
function M.sh(cmd, stdin)
  local out, err = tmpname(), tmpname()
  local inp = stdin and M.write(tmpname(), stdin) or "/dev/null"
  local ok, how, code = os.execute(string.format("{ %s\n} < %s > %s 2> %s", cmd, inp, out, err))
  if type(ok) == "number" then code = ok / 256 elseif how ~= "exit" then code = 128 + (code or 0) end
  local o, e = M.read(out), M.read(err)
  os.remove(out); os.remove(err)
  if stdin then os.remove(inp) end
  return code, o, e
end

-- Runs `sluice <args>`; opts.stdin feeds standard input, opts.timeout bounds it.
function M.sluice(args, opts)
  opts = opts or {}
  local cmd = string.format("timeout -k 5 %d %s %s", opts.timeout or 30, M.bin, args)
  local code, out, err = M.sh(cmd, opts.stdin)
  return { code = code, stdout = out, stderr = err }
end

-- Writes yaml to a temp file and runs `sluice run` (or opts.cmd) on it.
function M.run_config(yaml, opts)
  opts = opts or {}
  local path = opts.path or M.write(tmpname(".yaml"), yaml)
  local r = M.sluice((opts.cmd or "run") .. " " .. (opts.args or "") .. " " .. path, opts)
  r.path = path
  if not opts.keep then os.remove(path) end
  return r
end

-- A fresh temporary directory; remove it with M.rmdir.
function M.tmpdir()
  local p = tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. M.shell_quote(p)))
  return p
end

function M.rmdir(d)
  os.execute("rm -rf " .. M.shell_quote(d))
end

-- A free-ish TCP port for a test server: random below Linux's ephemeral
-- range (32768+), so outgoing connections never hold it.
function M.port()
  local f = io.open("/dev/urandom", "rb")
  local b1, b2 = f:read(2):byte(1, 2)
  f:close()
  return 20000 + (b1 * 256 + b2) % 12000
end

-- Starts `sluice run` on yaml in the background (config in a temp dir) and
-- waits until GET /ping answers. Returns a handle: port, dir, stop().
-- opts.cmd replaces `run` (e.g. "run -w", "streams --streams-dir d").
function M.serve(yaml, opts)
  opts = opts or {}
  -- A port another test (or another run) holds is retried with a new one.
  for _ = 1, 4 do
    local ok, srv = pcall(M.serve_once, yaml, opts)
    if ok then return srv end
    if opts.port or not tostring(srv):find("address already in use", 1, true) then error(srv, 2) end
  end
  return M.serve_once(yaml, opts)
end

function M.serve_once(yaml, opts)
  local port = opts.port or M.port()
  -- opts.dir: start again in the directory of an earlier run (its data stays)
  local dir = opts.dir or M.tmpdir()
  if opts.dir then os.remove(dir .. "/rc.txt") end
  M.write(dir .. "/config.yaml", (yaml:gsub("%$PORT", tostring(port))))
  if opts.before then opts.before(dir) end
  local bin = M.bin:sub(1, 1) == "/" and M.bin or (os.getenv("PWD") .. "/" .. M.bin)
  os.execute(string.format(
    "cd %s && (%s %s config.yaml > out.txt 2> err.txt & echo $! > pid.txt; wait $!; echo $? > rc.tmp; mv rc.tmp rc.txt) 2>/dev/null &",
    M.shell_quote(dir), M.shell_quote(bin), opts.cmd or "run"))
  local srv = {port = port, dir = dir, url = "http://127.0.0.1:" .. port}
  local up = false
  for _ = 1, 100 do
    local code = M.sh(string.format("curl -s -o /dev/null -m 1 %s %s://127.0.0.1:%d/ping",
      opts.cacert and ("--cacert " .. opts.cacert) or "", opts.scheme or "http", port))
    if code == 0 then up = true break end
    if M.read(dir .. "/rc.txt") then break end
    os.execute("sleep 0.05")
  end
  srv.stderr = function() return M.read(dir .. "/err.txt") or "" end
  -- kill -9: no drain, no final fsync; the directory stays for a restart
  srv.kill = function()
    local pid = M.read(dir .. "/pid.txt")
    if pid then os.execute("kill -KILL " .. pid:match("%d+") .. " 2>/dev/null") end
    for _ = 1, 200 do
      if M.read(dir .. "/rc.txt") then break end
      os.execute("sleep 0.05")
    end
  end
  srv.stdout = function() return M.read(dir .. "/out.txt") or "" end
  -- SIGTERM, wait (bounded) and return the exit code; removes the directory.
  srv.stop = function(keep)
    local pid = M.read(dir .. "/pid.txt")
    if pid then os.execute("kill -TERM " .. pid:match("%d+") .. " 2>/dev/null") end
    local rc
    for _ = 1, 600 do
      rc = M.read(dir .. "/rc.txt")
      if rc then break end
      os.execute("sleep 0.05")
    end
    if not rc then
      -- Still running after 30 s: report what it said, then make sure it is gone.
      io.stderr:write("sluice did not stop; its stderr:\n", srv.stderr(), "\n")
      if pid then os.execute("kill -KILL " .. pid:match("%d+") .. " 2>/dev/null") end
    end
    local err = srv.stderr()
    if err:find("Sanitizer", 1, true) or err:find("runtime error:", 1, true) then
      io.stderr:write("sanitizer report from sluice:\n", err, "\n")
    end
    if not keep then M.rmdir(dir) end
    return tonumber(rc)
  end
  if not up then
    local err = srv.stderr()
    M.rmdir(dir)
    error("sluice did not start: " .. err, 0)
  end
  return srv
end

-- Splits text into lines (dropping a final empty line).
function M.lines(s)
  local t = {}
  for l in (s or ""):gmatch("([^\n]*)\n") do t[#t + 1] = l end
  local tail = (s or ""):match("([^\n]+)$")
  if tail then t[#t + 1] = tail end
  return t
end

M.json = require("cjson")

-- Calls f every 50 ms, for at most secs seconds (10 by default), until it
-- returns a true value; returns that, or what f returns at the end.
function M.wait_for(f, secs)
  for _ = 1, (secs or 10) * 20 do
    local v = f()
    if v then return v end
    os.execute("sleep 0.05")
  end
  return f()
end

-- The lines of the file at path once it has n of them, or after secs
-- seconds (20 by default).
function M.wait_lines(path, n, secs)
  local lines = {}
  M.wait_for(function()
    lines = M.lines(M.read(path) or "")
    return #lines >= n
  end, secs or 20)
  return lines
end

return M
