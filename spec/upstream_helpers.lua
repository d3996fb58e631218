-- Upstream HTTP servers for specs of calls out (http.request, the http and
-- branch processors): spec/tools/upstream.py, which misbehaves on request,
-- and nginx from Debian serving fixed answers. Each starts on loopback on a
-- free port with its own directory; stop() ends it.
local h = require("spec.helpers")
local M = {}

local function wait_up(url, dir, what)
  for _ = 1, 200 do
    if h.sh("curl -s -o /dev/null -m 1 " .. url) == 0 then return end
    os.execute("sleep 0.05")
  end
  error(what .. " did not start: " .. (h.read(dir .. "/err.txt") or ""), 0)
end

local function stopper(dir)
  return function()
    local pid = h.read(dir .. "/pid.txt")
    if pid then os.execute("kill -TERM " .. pid:match("%d+") .. " 2>/dev/null") end
    h.rmdir(dir)
  end
end

-- spec/tools/upstream.py: /delay, /echo, /status, /drop, /huge ... (see there).
-- opts.tls: over TLS with certificates spec/tools/tls_certs.py makes in its
-- directory (up.ca trusts them): up.url has good.pem; up.tls.wrongname,
-- .self, .expired are URLs of the others, up.tls.mute one that never answers a handshake.
function M.python(opts)
  opts = opts or {}
  local dir, certs = h.tmpdir(), ""
  if opts.tls then
    assert(h.sh(string.format("python3 %s/spec/tools/tls_certs.py %s", os.getenv("PWD"), dir)) == 0, "tls_certs.py failed")
    for _, c in ipairs({"good", "wrongname", "self", "expired"}) do certs = certs .. string.format(" %s.pem %s.key", c, c) end
  end
  os.execute(string.format("cd %s && (python3 %s/spec/tools/upstream.py 0%s > out.txt 2> err.txt & echo $! > pid.txt)",
    h.shell_quote(dir), os.getenv("PWD"), certs))
  local port = h.wait_for(function() return (h.read(dir .. "/out.txt") or ""):match("ready (%d+)") end, 20)
  if not port then error("upstream.py did not start: " .. (h.read(dir .. "/err.txt") or ""), 0) end
  port = tonumber(port)
  local scheme, curl = opts.tls and "https" or "http", "curl -s -m 5 "
  local up = {port = port, dir = dir, url = scheme .. "://127.0.0.1:" .. port, stop = stopper(dir)}
  if opts.tls then
    up.ca, curl = dir .. "/ca.pem", curl .. "--cacert " .. dir .. "/ca.pem "
    local ports = {}
    for p in h.read(dir .. "/out.txt"):match("tls ([%d ]+)"):gmatch("%d+") do ports[#ports + 1] = "https://127.0.0.1:" .. p end
    up.tls = {mute = ports[1], wrongname = ports[2], self = ports[3], expired = ports[4]}
  end
  function up.stats()
    local _, out = h.sh(curl .. up.url .. "/stats")
    return h.json.decode(out)
  end
  -- zeroes the counters once calls an earlier spec abandoned have ended
  function up.reset()
    h.wait_for(function() return up.stats().inflight == 0 end, 20)
    h.sh(curl .. up.url .. "/reset")
  end
  return up
end

-- nginx (one worker) answering /json with a small JSON object and /token
-- with an OAuth2 token ("ngx"); every other path 404. opts.tls: HTTPS with a self-signed certificate made here.
function M.nginx(opts)
  opts = opts or {}
  local dir, port = h.tmpdir(), h.port()
  local listen = ""
  if opts.tls then
    assert(h.sh(string.format("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/k.pem -out %s/c.pem " ..
      "-days 1 -subj /CN=127.0.0.1", dir, dir)) == 0, "openssl could not make a certificate")
    listen = string.format(" ssl; ssl_certificate %s/c.pem; ssl_certificate_key %s/k.pem", dir, dir)
  end
  h.write(dir .. "/nginx.conf", string.format([[
worker_processes 1;
daemon off;
pid %s/nginx.pid;
error_log %s/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:%d%s;
    location = /json { default_type application/json; return 200 '{"region":"eu-west","tier":"gold"}'; }
    location = /token { default_type application/json; return 200 '{"access_token":"ngx","expires_in":3600}'; }
  }
}
]], dir, dir, dir, dir, dir, dir, dir, port, listen))
  os.execute(string.format("cd %s && (/usr/sbin/nginx -p %s -c %s/nginx.conf > out.txt 2> err.txt & echo $! > pid.txt)",
    h.shell_quote(dir), dir, dir))
  local scheme = opts.tls and "https" or "http"
  local up = {port = port, dir = dir, url = scheme .. "://127.0.0.1:" .. port, stop = stopper(dir)}
  wait_up("-k " .. up.url .. "/json", dir, "nginx")
  return up
end

-- ticks: arrival times (s, from /stats "ticks") of n requests sent under a
-- limit of count per interval (s), counted in fixed windows. They span at
-- least 60% of the windows they need (the first answers may come late on a
-- loaded machine, which shortens the span), and no span shorter than interval
-- holds more than three windows' worth (two by the limit, one more for
-- requests of a window that a loaded upstream read late). Unlimited, requests
-- sent at once arrive within milliseconds.
function M.assert_limited(ticks, n, count, interval)
  local assert = require("luassert")
  assert.are.equal(n, #ticks)
  table.sort(ticks)
  local need = (math.ceil(n / count) - 1) * interval
  assert.is_true(ticks[n] - ticks[1] >= 0.6 * need, n .. " requests within " .. (ticks[n] - ticks[1]) .. " s")
  for i = 1, n do
    local k = 0
    for j = i, n do if ticks[j] - ticks[i] < 0.9 * interval then k = k + 1 end end
    assert.is_true(k <= 3 * count, k .. " requests within " .. 0.9 * interval .. " s")
  end
end

-- For a spec file: setup(s.start) and teardown(s.stop) start both once and
-- stop them; s.py and s.ngx are the servers.
function M.servers()
  local s = {}
  function s.start()
    s.py = M.python()
    s.ngx = M.nginx()
  end
  function s.stop()
    if s.py then s.py.stop() end
    if s.ngx then s.ngx.stop() end
  end
  return s
end

return M
