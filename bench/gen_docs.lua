-- Writes N ~200-byte NDJSON documents to stdout: luajit gen_docs.lua N
local n = tonumber(arg[1]) or 1000
local out = {}
for i = 1, n do
  out[#out + 1] = string.format(
    '{"user":"user-%06d","event":"page_view","path":"/products/%d/details","ts":%d,' ..
    '"agent":"Mozilla/5.0 (X11; Linux x86_64)","tags":["a","b","c"],"score":%d.5,"ok":true}\n',
    i % 100000, i % 977, 1700000000 + i, i % 100)
  if #out == 10000 then io.write(table.concat(out)); out = {} end
end
io.write(table.concat(out))
