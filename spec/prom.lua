-- Prometheus text read with the official Python parser (Debian's
-- python3-prometheus-client, through spec/tools/prom_parse.py).
local h = require("spec.helpers")
local M = {}

-- Every sample at url: {name, labels, value, type} (counters as NAME_total).
function M.samples(url)
  local _, out = h.sh("curl -s -m 5 " .. url .. " | /usr/bin/python3 spec/tools/prom_parse.py")
  local t = {}
  for _, l in ipairs(h.lines(out)) do
    local s = h.json.decode(l)
    if s.error then error("Prometheus parser: " .. s.error, 2) end
    t[#t + 1] = s
  end
  return t
end

-- The value of the first sample named name whose labels include labels.
function M.value(list, name, labels)
  for _, s in ipairs(list) do
    if s.name == name then
      local ok = true
      for k, v in pairs(labels) do if s.labels[k] ~= v then ok = false end end
      if ok then return s.value end
    end
  end
end

return M
