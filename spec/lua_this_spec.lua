-- `this` reads fields of a JSON object without decoding it (lua/jfield.c,
-- lua/runtime.lua): whatever the text, a script must see what a full decode
-- gives, and a message must come out as it did when `this` decoded it all.
local h = require("spec.helpers")

-- Runs CODE on each line of input through `sluice lua`; returns stdout lines
-- (or, with -v, the JSON of each message), the exit code and stderr.
local function run(code, lines, verbose)
  local input = h.tmpdir() .. "/in.ndjson"
  h.write(input, table.concat(lines, "\n") .. "\n")
  local r = h.sluice(string.format("lua %s-e %s < %s", verbose and "-v " or "", h.shell_quote(code),
    h.shell_quote(input)))
  local out = {}
  for l in r.stdout:gmatch("[^\n]+") do out[#out + 1] = l end
  return out, r.code, r.stderr
end

-- Each field read through `this` against the same field of a full decode.
local COMPARE = [[
local full = json.decode(content())
local bad = {}
for _, k in ipairs({"s", "e", "u", "n", "neg", "exp", "zero", "big", "t", "f", "z", "o", "a", "dup", "missing", ""}) do
  local l, f = this[k], full[k]
  local same
  if type(l) == "table" then same = json.encode(l) == json.encode(f)
  else same = l == f and type(l) == type(f) end
  if not same then bad[#bad + 1] = k .. "=" .. tostring(l) .. "/" .. tostring(f) end
end
return #bad == 0 and "same" or table.concat(bad, " ")
]]

describe("this, read without decoding the message", function()
  it("gives every kind of field exactly as a full decode does", function()
    local out, code, err = run(COMPARE, {
      [[{"s":"plain","e":"tab\there \"q\" \u00e9 \ud83d\ude00","u":"caf\u00e9","n":42,"neg":-7.25,"exp":1.5e3,"zero":-0,]] ..
        [=["big":12345678901234567890,"t":true,"f":false,"z":null,"o":{"x":[1,{"y":2}]},"a":[1,"two",[]],"dup":1,"dup":"last","":"empty key"}]=],
      [[  {  "n" : 1 , "s" : "x"  }  ]],
      [[{}]],
      '{"s":"\xff\xfe not UTF-8"}',
      [=[{"o":{"a":[]},"a":[[],{}]}]=],
    })
    assert.are.equal(0, code, err)
    assert.are.same({"same", "same", "same", "same", "same"}, out)
  end)

  it("keeps the original bytes when keys are only added, and re-encodes when one the text has is set", function()
    local function one(k, input)
      local r = h.sluice(string.format("lua --meta k=%s -e %s --input %s", k, h.shell_quote([[
local k = meta.k
if k == "add" then this.id = "x"; this.ok = true
elseif k == "add-nil" then this.gone = 1; this.gone = nil; this.kept = 2
elseif k == "add-gone" then this.gone = 1; this.gone = nil
elseif k == "nil-add" then this.late = nil; this.late = 3
elseif k == "read-add" then if this.r == nil then this.r = this.r2 or 4 end
elseif k == "set" then this.n = this.n + 1
elseif k == "read" then local _ = this.n .. this.s
elseif k == "table" then this.sub = {1, 2}; this.sub[3] = 3
elseif k == "nested" then local o = this.o; o.x = 9
end
]]), h.shell_quote(input)))
      assert.are.equal(0, r.code, r.stderr)
      return (r.stdout:gsub("\n$", ""))
    end
    local src = '{ "n" : 1,  "s":"a\\u0041", "o": {"x": 1} }'
    assert.are.equal('{ "n" : 1,  "s":"a\\u0041", "o": {"x": 1} ,"id":"x","ok":true}', one("add", src))
    assert.are.equal('{ "n" : 1,  "s":"a\\u0041", "o": {"x": 1} ,"kept":2}', one("add-nil", src))
    assert.are.equal(src, one("add-gone", src))
    assert.are.equal('{ "n" : 1,  "s":"a\\u0041", "o": {"x": 1} ,"late":3}', one("nil-add", src))
    assert.are.equal('{ "n" : 1,  "s":"a\\u0041", "o": {"x": 1} ,"r":4}', one("read-add", src))
    assert.are.equal(src, one("read", src))
    local set = require("cjson").decode(one("set", src))
    assert.are.same({n = 2, s = "aA", o = {x = 1}}, set)
    assert.are.same({1, 2, 3}, require("cjson").decode(one("table", src)).sub)
    assert.are.same({x = 9}, require("cjson").decode(one("nested", src)).o)
    assert.are.equal('{"ok":true}', one("add", "{}"):gsub('"id":"x",', ""))
  end)

  it("sees added keys through pairs, json.encode, msgpack and a later read", function()
    local out, code, err = run([[
this.added = "v"
this.t = {1}
local keys = {}
for k in pairs(this) do keys[#keys + 1] = k end
table.sort(keys)
local back = msgpack.decode(msgpack.encode(this))
return table.concat(keys, ",") .. " " .. json.encode({this.added, this.n, back.added, back.n}) ..
  " " .. (json.encode(this):find('"added":"v"', 1, true) and "enc" or "no")
]], {[[{"n":5}]]})
    assert.are.equal(0, code, err)
    assert.are.same({'added,n,t ["v",5,"v",5] enc'}, out)
  end)

  it("refuses a text that is not a JSON object as a full decode does, at the script's line", function()
    local out, code = run("return tostring(this.a)", {
      [[{"a":1,}]], [[{"a":1} x]], [[{"a" 1}]], [[{"a":1]], [[{"a":1]] .. "\0" .. "}",
    }, true)
    assert.are.equal(1, code)
    assert.are.equal(5, #out)
    for i, l in ipairs(out) do
      local r = require("cjson").decode(l)
      assert.is_truthy(r.error, "line " .. i .. ": " .. l)
      assert.matches("^%-e:1: this: message is not JSON", r.error)
    end
  end)

  it("takes what lua-cjson takes beyond JSON, as a full decode did", function()
    local out, code, err = run("return tostring(this.a)", {[[{"a":01}]], [[{"a":0x1F}]], [[{"a":Infinity}]]})
    assert.are.equal(0, code, err)
    assert.are.same({"1", "31", "inf"}, out)
  end)

  it("reads arrays, scalars and keys with escapes as before (decoded whole)", function()
    local out, code, err = run([[
if type(this) ~= "table" then return tostring(this) end
return tostring(this[1] or this["k\"ey"] or this.key)
]], {"[7,8]", "12", [["str"]], [[{"k\"ey":"esc"}]], [[{"key":"a","key":"b"}]]})
    assert.are.equal(0, code, err)
    assert.are.same({"7", "12", "str", "esc", "b"}, out)
  end)

  it("refuses nesting deeper than lua-cjson does, whatever field is read", function()
    local deep = string.rep('{"a":', 1200) .. "1" .. string.rep("}", 1200)
    local out, code = run("return tostring(this.b)", {deep}, true)
    assert.are.equal(1, code)
    assert.matches("this: message is not JSON", require("cjson").decode(out[1]).error, 1, true)
  end)
end)
