-- Calls of the HTTP APIs for specs, through curl: JSON answers with their
-- status, as a user with an API key, and real browser-style clients (npm
-- eventsource and ws, spec/node/access.js) that report a refusal's status.
local h = require("spec.helpers")
local json = h.json

local M = {}

-- curl ARGS (URL stands for the server's): status, and the body decoded when it is JSON.
function M.curl(srv, args)
  local _, out = h.sh("curl -s -m 20 -w '\\n%{http_code}' " .. args:gsub("URL", srv.url))
  local body, code = out:match("^(.*)\n(%d+)$")
  local ok, j = pcall(json.decode, body)
  return tonumber(code), ok and j or body
end

-- The same with `X-API-Key: key`.
function M.as(key, srv, args) return M.curl(srv, "-H 'X-API-Key: " .. key .. "' " .. args) end

-- spec/node/access.js: mode "sse" or "ws" on url, n messages (or a refusal's {status}), decoded.
function M.node(mode, url, n)
  local _, out = h.sh(string.format("cd spec/node && node access.js %s %s %d", mode, h.shell_quote(url), n or 1))
  local t = {}
  for _, l in ipairs(h.lines(out)) do t[#t + 1] = json.decode(l) end
  return t
end

-- Sorted names from a list of names or of groups ({group = name}).
function M.names(list)
  local t = {}
  for _, n in ipairs(list) do t[#t + 1] = type(n) == "table" and n.group or n end
  table.sort(t)
  return t
end

return M
