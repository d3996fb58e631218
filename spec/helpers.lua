-- Shared helpers for busted specs: run the sluice binary on a config and read
-- back what it printed. SLUICE_BIN picks the binary (the sanitizer run sets it).
local M = {}

M.bin = os.getenv("SLUICE_BIN") or "build/sluice"
-- The same as an absolute path, for commands that run in another directory.
M.abs_bin = M.bin:sub(1, 1) == "/" and M.bin or (os.getenv("PWD") .. "/" .. M.bin)

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

-- The first line of an ASan/LSan/UBSan report in text (a process's stderr),
-- or nil. The sanitizer build exits non-zero on a leak, but a spec that
-- expects a failing exit (or discards the code) would not see it.
function M.sanitizer_report(text)
  text = text or ""
  return text:match("==%d+==ERROR: %a+Sanitizer[^\n]*") or text:match("[^\n]*%.[ch]:%d+:%d+: runtime error:[^\n]*")
    or text:match("WARNING: ThreadSanitizer:[^\n]*")
end

-- Raises (failing the spec) when text holds a sanitizer report.
local function no_sanitizer_report(text, what)
  local rep = M.sanitizer_report(text)
  if rep then error(string.format("sanitizer report from %s (%s); its stderr:\n%s", what, rep, text), 0) end
end

-- Runs a shell command; returns exit code, stdout, stderr. A sanitizer report
-- on its stderr raises.
function M.sh(cmd, stdin)
  local out, err = tmpname(), tmpname()
  local inp = stdin and M.write(tmpname(), stdin) or "/dev/null"
  local ok, how, code = os.execute(string.format("{ %s\n} < %s > %s 2> %s", cmd, inp, out, err))
  if type(ok) == "number" then code = ok / 256 elseif how ~= "exit" then code = 128 + (code or 0) end
  local o, e = M.read(out), M.read(err)
  os.remove(out); os.remove(err)
  if stdin then os.remove(inp) end
  no_sanitizer_report(e, cmd)
  return code, o, e
end

-- Runs `sluice <args>`; opts.stdin feeds standard input, opts.timeout bounds
-- it, opts.env ("NAME=value ...") goes into its environment.
function M.sluice(args, opts)
  opts = opts or {}
  local cmd = string.format("%stimeout -k 5 %d %s %s", opts.env and ("env " .. opts.env .. " ") or "",
    opts.timeout or 30, M.bin, args)
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

-- A self-signed certificate for 127.0.0.1 (and CN localhost), valid a day:
-- dir/cert.pem and dir/key.pem.
function M.self_signed(dir)
  assert(os.execute("openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. dir .. "/key.pem -out " .. dir ..
    "/cert.pem -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null"))
end

-- Client certificates in dir: a CA (ca.pem, ca.key), a certificate it
-- signed (client.pem; key client.key in clear and client.enc.key encrypted
-- with the password "pw"), and one it did not sign (other.pem, other.key).
function M.client_certs(dir)
  assert(os.execute("cd " .. dir .. " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem " ..
    "-days 1 -subj /CN=client-ca 2>/dev/null && openssl req -newkey rsa:2048 -nodes -keyout client.key " ..
    "-out client.csr -subj /CN=sluice-client 2>/dev/null && openssl x509 -req -in client.csr -CA ca.pem " ..
    "-CAkey ca.key -CAcreateserial -out client.pem -days 1 2>/dev/null && openssl pkey -in client.key " ..
    "-aes256 -passout pass:pw -out client.enc.key && openssl req -x509 -newkey rsa:2048 -nodes " ..
    "-keyout other.key -out other.pem -days 1 -subj /CN=stranger 2>/dev/null"))
end

-- A free-ish TCP port for a test server: random below Linux's ephemeral
-- range (32768+), so outgoing connections never hold it.
-- The inodes of the sockets listening on TCP port p (IPv4 or IPv6) now.
local function listeners(p)
  local hex, inodes = string.format(":%04X ", p), {}
  for _, path in ipairs({"/proc/net/tcp", "/proc/net/tcp6"}) do
    local f = io.open(path)
    if f then
      for line in f:lines() do
        -- sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode; st 0A is LISTEN
        local l, st, inode = line:match("^%s*%d+: (%S+) %S+ (%x%x) %S+ %S+ %S+ +%d+ +%d+ +(%d+)")
        if l and st == "0A" and (l .. " "):sub(-6) == hex then inodes[#inodes + 1] = inode end
      end
      f:close()
    end
  end
  return inodes
end
local function listening(p) return #listeners(p) > 0 end

-- Whether process pid holds a socket listening on port p: a /ping answered
-- there may come from another program while pid failed to bind.
local function holds_port(pid, p)
  if not pid then return false end
  local fds = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  local links = fds:read("*a")
  fds:close()
  for _, inode in ipairs(listeners(p)) do
    if links:find("socket:[" .. inode .. "]", 1, true) then return true end
  end
  return false
end

-- scripts/test.sh runs spec files in SPEC_LANES lanes at once: each lane
-- draws from its own slice of the range, so two files never race for a port;
-- a port something listens on is not handed out (a server of this spec still
-- running, or another program: a sluice that answers /ping there would be
-- taken for the one being started).
function M.port()
  local lanes = tonumber(os.getenv("SPEC_LANES") or "") or 1
  local lane = tonumber(os.getenv("SPEC_LANE") or "") or 0
  local width = math.floor(12000 / lanes)
  local p
  for _ = 1, 20 do
    local f = io.open("/dev/urandom", "rb")
    local b1, b2 = f:read(2):byte(1, 2)
    f:close()
    p = 20000 + lane * width + (b1 * 256 + b2) % width
    if not listening(p) then break end
  end
  return p
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
  -- opts.env: "NAME=value ..." in sluice's environment; $PORT in opts.env and opts.cmd is the port
  os.execute(string.format(
    "cd %s && (%s %s %s config.yaml > out.txt 2> err.txt & echo $! > pid.txt; wait $!; echo $? > rc.tmp; mv rc.tmp rc.txt) 2>/dev/null &",
    M.shell_quote(dir), opts.env and ("env " .. opts.env:gsub("%$PORT", tostring(port))) or "", M.shell_quote(M.abs_bin),
    ((opts.cmd or "run"):gsub("%$PORT", tostring(port)))))
  local srv = {port = port, dir = dir, url = "http://127.0.0.1:" .. port}
  local up = false
  for _ = 1, 100 do
    local code = M.sh(string.format("curl -s -o /dev/null -m 1 %s %s://127.0.0.1:%d/ping",
      opts.cacert and ("--cacert " .. opts.cacert) or "", opts.scheme or "http", port))
    if code == 0 and holds_port((M.read(dir .. "/pid.txt") or ""):match("%d+"), port) then up = true break end
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
  -- SIGTERM, wait (bounded) and return the exit code; removes the directory
  -- unless keep. Raises (failing the spec) when the exit code is not
  -- opts.code (0 unless given; opts.code = "any" hands any code back to the
  -- caller), when sluice printed a sanitizer report, or when it did not stop
  -- within 30 s. A second call returns the first one's code.
  local stopped
  srv.stop = function(keep, opts)
    if stopped then return stopped end
    opts = opts or {}
    local pid = M.read(dir .. "/pid.txt")
    if pid then os.execute("kill -TERM " .. pid:match("%d+") .. " 2>/dev/null") end
    local rc
    for _ = 1, 600 do
      rc = M.read(dir .. "/rc.txt")
      if rc then break end
      os.execute("sleep 0.05")
    end
    if not rc and pid then os.execute("kill -KILL " .. pid:match("%d+") .. " 2>/dev/null") end
    local err = srv.stderr()
    if not keep then M.rmdir(dir) end
    if not rc then error("sluice did not stop within 30 s of SIGTERM; its stderr:\n" .. err, 2) end
    rc = tonumber(rc)
    stopped = rc
    no_sanitizer_report(err, "sluice")
    local want = opts.code or 0
    if want ~= "any" and rc ~= want then
      error(string.format("sluice exited %d, not %s; its stderr:\n%s", rc, tostring(want), err), 2)
    end
    return rc
  end
  if not up then
    local err = srv.stderr()
    if not opts.dir then M.rmdir(dir) end   -- a restart's directory holds its data: serve retries in it
    error("sluice did not start: " .. err, 0)
  end
  return srv
end

-- For a spec body run as ok, err = pcall(...): stops srv, then raises the
-- body's error if there is one, else stop's (exit code, sanitizer report).
function M.stop_after(srv, ok, err, keep)
  local stopped, stop_err = pcall(srv.stop, keep)
  if not ok then error(err, 0) end
  if not stopped then error(stop_err, 0) end
end

-- GET /ready of a served sluice: its status code and body.
function M.ready(srv)
  local _, out = M.sh(string.format("curl -s -m 5 -w '\\n%%{http_code}' %s/ready", srv.url))
  local body, code = out:match("^(.*)\n(%d+)$")
  return tonumber(code), body
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

-- Lines of JSON as values (lua-cjson's key order is not fixed, so compare these).
function M.decode_lines(lines)
  local t = {}
  for k, l in ipairs(lines) do t[k] = M.json.decode(l) end
  return t
end

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

-- spec/tools/slow_release.c built in dir to slow fn of lib (called from
-- caller's code, if given) for the process's end (issue 16): the
-- environment to run sluice with, and a function giving how many of the
-- slowed calls began and ended since it was last asked.
function M.slow_release(dir, fn, lib, caller)
  local so, log = dir .. "/slow_" .. fn .. ".so", dir .. "/slow_" .. fn .. ".log"
  local code, _, err = M.sh("cc -shared -fPIC -DSLOW_FN=" .. fn .. " -DSLOW_LIB='\"" .. lib .. "\"' " ..
    (caller and "-DSLOW_CALLER='\"" .. caller .. "\"' " or "") .. "-o " .. so .. " spec/tools/slow_release.c -ldl")
  assert(code == 0, err)
  local function releases()
    local begun, done = 0, 0
    for _, l in ipairs(M.lines(M.read(log) or "")) do
      if l == "begun" then begun = begun + 1 elseif l == "released" then done = done + 1 end
    end
    os.remove(log)
    return begun, done
  end
  -- a sanitizer build's runtime (shared, as gcc links it) must come first in the preload list
  local _, rt = M.sh("ldd " .. M.abs_bin .. " | awk '/lib[at]san/ {print $3; exit}'")
  rt = (rt or ""):gsub("%s+$", "")
  local pre = rt ~= "" and rt .. ":" .. so or so
  return "LD_PRELOAD=" .. pre .. " SLOW_RELEASE_MS=150 SLOW_RELEASE_LOG=" .. log, releases
end

return M
