-- Runs spec/bloblang_cases.lua through Benthos's `blobl` and through
-- `sluice lua --bloblang`, and prints every case where they differ.
-- Usage: luajit bench/bloblang_vs_benthos.lua BENTHOS SLUICE (bench/bloblang.sh
-- builds a Benthos binary into ~/.cache/sluice-bench/benthos)
local benthos, sluice = arg[1], arg[2]
local cjson = require("cjson")
local cases = dofile("spec/bloblang_cases.lua")

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function sh(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("a")
  p:close()
  return out
end
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
-- A result as a comparable value: decoded JSON, or the text; "error" when
-- the message failed, "dropped" when nothing came out.
local function value(text, failed)
  if failed then return "<error>" end
  text = text:gsub("\n$", "")
  if text == "" then return "<dropped>" end
  local ok, v = pcall(cjson.decode, text)
  if ok then return v end
  return text
end

local n, agree, differ = 0, 0, {}
for i, c in ipairs(cases) do
  -- blobl reads no metadata, and uuid_v4/now differ by nature
  if not c.input_meta and not c.benthos_skip and not (type(c[3]) == "table" and c[3].json_check) then
    n = n + 1
    local b = sh("printf '%s\\n' " .. q(c[2]) .. " | " .. benthos .. " blobl " .. q(c[1]))
    local b_failed = b:find("failed to execute", 1, true) ~= nil or (b == "" and c[3].drop == nil)
    local s = sh(sluice .. " lua --bloblang -v -e " .. q(c[1]) .. " --input " .. q(c[2]))
    local sv
    if s == "" then sv = "<dropped>"
    else
      local o = cjson.decode(s)
      sv = value(o.content, o.error ~= nil)
    end
    local bv = value(b, b_failed)
    if same(bv, sv) then agree = agree + 1
    else
      differ[#differ + 1] = string.format("case %d: %s\n  input %s\n  benthos %s\n  sluice  %s", i, c[1]:gsub("\n", "\\n"),
        c[2], type(bv) == "table" and cjson.encode(bv) or tostring(bv), type(sv) == "table" and cjson.encode(sv) or tostring(sv))
    end
  end
end
print(table.concat(differ, "\n"))
print(string.format("%d cases run through both: %d agree, %d differ", n, agree, #differ))
