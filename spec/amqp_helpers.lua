-- A RabbitMQ node of its own for specs (scripts/rabbitmq.sh; Debian's
-- rabbitmq-server), and the pika peer (spec/amqp/peer.py).
--
--   local amqp = require("spec.amqp_helpers")
--   local b = amqp.start()     -- {port, url, dir, stop(), start()}: stop/start keep its data
--   amqp.start({conf = "..."}) -- with lines added to its rabbitmq.conf (a TLS listener)
--   amqp.peer(b, "publish q 10")   -- exit code, stdout, stderr of spec/amqp/peer.py
--   b.destroy()                -- stops it and removes its directory
local h = require("spec.helpers")

local M = {}
M.script = "scripts/rabbitmq.sh"
M.python = "/usr/bin/python3"   -- Debian's, which has python3-pika

function M.unavailable()
  if h.sh("test -x /usr/lib/rabbitmq/bin/rabbitmq-server") ~= 0 then
    return "rabbitmq-server is not installed (scripts/deps.sh installs it)"
  end
  return nil
end

function M.start(opts)
  local last
  for _ = 1, 4 do
    local dir, port = h.tmpdir(), h.port()
    if opts and opts.conf then h.write(dir .. "/extra.conf", opts.conf) end
    local code, out, err = h.sh(string.format("timeout -k 5 150 %s start %s %d", M.script, h.shell_quote(dir), port))
    if code == 0 then
      local b = {port = port, dir = dir, node = out:gsub("%s+$", "")}
      b.url = string.format("amqp://guest:guest@127.0.0.1:%d/", port)
      b.stop = function()
        h.sh(string.format("timeout -k 5 90 %s stop %s", M.script, h.shell_quote(dir)))
      end
      b.start = function()
        local c, o, e = h.sh(string.format("timeout -k 5 150 %s start %s %d", M.script, h.shell_quote(dir), port))
        assert(c == 0, "rabbitmq did not start again: " .. (e or "") .. (o or ""))
      end
      b.destroy = function()
        b.stop()
        h.rmdir(dir)
      end
      return b
    end
    h.sh(string.format("%s stop %s", M.script, h.shell_quote(dir)))
    h.rmdir(dir)
    last = (err or "") .. (out or "")
  end
  error("rabbitmq did not start: " .. tostring(last), 2)
end

-- Runs the peer against broker b: peer(b, "drain q") or peer(nil, "post ...").
function M.peer(b, args)
  local url = b and h.shell_quote(b.url .. "%2F") .. " " or ""
  return h.sh(string.format("timeout -k 5 120 %s spec/amqp/peer.py %s%s", M.python, url, args))
end

-- The JSON lines `drain` printed, decoded.
function M.drain(b, q)
  local code, out, err = M.peer(b, "drain " .. q)
  assert(code == 0, err)
  local t = {}
  for _, l in ipairs(h.lines(out)) do t[#t + 1] = h.json.decode(l) end
  return t
end

-- Calls f until it returns a true value or secs seconds passed (a call of
-- the peer takes a while: helpers.wait_for counts calls, not time).
function M.wait(f, secs)
  local deadline = os.time() + (secs or 30)
  repeat
    local v = f()
    if v then return v end
    os.execute("sleep 0.2")
  until os.time() >= deadline
  return f()
end

function M.count(b, q)
  local code, out, err = M.peer(b, "count " .. q)
  assert(code == 0, err)
  return tonumber(out)
end

return M
