-- Peer: the same mapping in plain LuaJIT + lua-cjson over the same document,
-- N times, with no host around it. Prints messages per second.
local cjson = require("cjson")
local n = tonumber(arg[1]) or 1000000
local doc = '{"user":"user-000042","event":"page_view","path":"/products/42/details","ts":1700000042,' ..
  '"agent":"Mozilla/5.0 (X11; Linux x86_64)","tags":["a","b","c"],"score":42.5,"ok":true}'
local random, fmt = math.random, string.format
local function uuid_v4()
  return fmt("%08x-%04x-4%03x-%04x-%012x", random(0, 0xffffffff), random(0, 0xffff), random(0, 0xfff),
    random(0x8000, 0xbfff), random(0, 0xffffffffffff))
end
local t0 = os.clock()
local sink = 0
for _ = 1, n do
  local this = cjson.decode(doc)
  this.id = uuid_v4()
  this.processed = true
  sink = sink + #cjson.encode(this)
end
local dt = os.clock() - t0
io.write(string.format("%.0f\n", n / dt))
assert(sink > 0)
