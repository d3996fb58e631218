-- A local OTLP/HTTP receiver (spec/tools/otlp_receiver.py) for tracer specs.
local h = require("spec.helpers")
local json = h.json
local assert = require("luassert")
local M = {}

-- Starts the receiver; returns {endpoint, spans(), stop()}.
function M.receiver()
  local d = h.tmpdir()
  os.execute(string.format("/usr/bin/python3 spec/tools/otlp_receiver.py %s/port %s/out.jsonl & echo $! > %s/pid",
    d, d, d))
  local port = h.wait_for(function() return h.read(d .. "/port") end, 5)
  assert(port, "the OTLP receiver did not start")
  local r = {endpoint = "http://127.0.0.1:" .. port}
  -- Every span received so far, with its resource attributes as a map.
  r.spans = function()
    local out = {}
    for _, l in ipairs(h.lines(h.read(d .. "/out.jsonl") or "")) do
      local doc = json.decode(l)
      assert.are.equal("application/json", doc._content_type)
      for _, rs in ipairs(doc.resourceSpans) do
        local res = {}
        for _, a in ipairs(rs.resource.attributes) do res[a.key] = a.value.stringValue end
        for _, ss in ipairs(rs.scopeSpans) do
          for _, s in ipairs(ss.spans) do
            s.resource = res
            s.attrs = {}
            for _, a in ipairs(s.attributes) do s.attrs[a.key] = a.value.stringValue end
            out[#out + 1] = s
          end
        end
      end
    end
    return out
  end
  r.stop = function()
    os.execute("kill " .. h.read(d .. "/pid"):match("%d+") .. " 2>/dev/null")
    h.rmdir(d)
  end
  return r
end

-- Waits (up to 20 s) until the receiver got n (1 by default) spans named name.
function M.wait_for_span(rcv, name, n)
  return h.wait_for(function()
    local got = 0
    for _, s in ipairs(rcv.spans()) do if s.name == name then got = got + 1 end end
    return got >= (n or 1)
  end, 20)
end

return M
