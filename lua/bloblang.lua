-- What Lua translated from Bloblang (processors/bloblang.lua) calls: Bloblang's
-- value semantics (null, missing, "nothing", typed errors, copies) in plain
-- Lua. Every script environment gets its own copy as `__bloblang`; nothing
-- here reaches outside the sandbox.
local json, uuid_v4, now, raw_of, deleted, is_this, hash, time, re = ...
local null = json.null
local B = {}
local type, pairs, ipairs, tostring, tonumber, error, pcall, select = type, pairs, ipairs, tostring, tonumber, error,
  pcall, select
local floor, huge = math.floor, math.huge
local concat, sort, insert = table.concat, table.sort, table.insert
local str_find, str_sub, str_upper, str_lower, str_format, str_rep, str_byte, str_char, str_gsub =
  string.find, string.sub, string.upper, string.lower, string.format, string.rep, string.byte, string.char, string.gsub

-- Distinct values: a query that yields nothing (an `if` without `else`), a
-- deletion, and the marks of arrays (empty ones stay arrays).
local NOTHING = setmetatable({}, {__tostring = function() return "nothing" end})
local DELETED = deleted   -- the sandbox's deleted(): the lua processor drops the message
local UNPARSED = {}   -- a mutation's root when the message is not JSON
B.NOTHING, B.DELETED, B.null = NOTHING, DELETED, null
-- The message's decoded table behind the sandbox's `this` (which tracks
-- changes for the lua processor): Bloblang reads and copies it whole.
B.raw = raw_of

local function is_array(v)
  -- json.array's mark (an empty array stays one), or a first element
  local mt = getmetatable(v)
  return mt == "json.array" or mt ~= "json.object" and v[1] ~= nil
end

local json_array = json.array
local function array(t) return json_array(t or {}) end

-- The message's table behind the sandbox's `this` (reading a field through
-- `this` keeps the lua processor's fast paths; a whole-table use needs it).
local function unwrap(v)
  if is_this(v) then return raw_of(v) end
  return v
end
B.array = array

-- Literals: a value that is nothing or deleted() is left out (`[1, if false
-- { 2 }]` is [1]); a missing field is null.
function B.array_of(...)
  local out = array()
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if v == nil then v = null end
    if v ~= NOTHING and v ~= DELETED then out[#out + 1] = v end
  end
  return out
end
function B.object(t)
  for k, v in pairs(t) do
    if v == NOTHING or v == DELETED then t[k] = nil end
  end
  return t
end

-- Bloblang's type names, as its errors print them.
local function kind(v)
  if v == nil or v == null then return "null" end
  local t = type(v)
  if t == "table" then
    if v == NOTHING then return "nothing" end
    if v == DELETED then return "delete" end
    return is_array(v) and "array" or "object"
  elseif t == "boolean" then return "bool"
  end
  return t
end
B.kind = kind

-- Errors name the line of the mapping that called in here: the first frame
-- up the stack that is neither this file nor C (the host relines it).
local getinfo = debug.getinfo
local function fail(fmt, ...)
  local lvl = 2
  while true do
    local info = getinfo(lvl, "S")
    -- (not a tail call: that would take this frame off the stack)
    if not info then error(str_format(fmt, ...), 0) end
    if info.what ~= "C" and info.source ~= "lua.bloblang" then
      error(str_format(fmt, ...), lvl)
    end
    lvl = lvl + 1
  end
end
B.fail = fail

local function is_null(v) return v == nil or v == null end

-- A value as text, as Bloblang prints it (strings raw, the rest as JSON).
local function text(v)
  v = unwrap(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v == floor(v) and v > -1e15 and v < 1e15 then return str_format("%d", v) end
    return str_format("%.14g", v)
  end
  if is_null(v) then return "null" end
  return json.encode(v)
end
B.text = text

function B.copy(v)
  if type(v) ~= "table" or v == NOTHING or v == DELETED then return v end
  v = unwrap(v)
  local c = {}
  for k, x in pairs(v) do c[k] = B.copy(x) end
  if getmetatable(v) == "json.array" then json_array(c) end
  return c
end

-- this.a.b: a missing field, or a field of something that is not an object
-- (or of an array by index), is null.
function B.get(v, ...)
  for i = 1, select("#", ...) do
    local k = select(i, ...)
    if type(v) ~= "table" or v == NOTHING then return null end
    if is_array(v) then
      local n = tonumber(k)
      if not n then return nil end
      if n < 0 then n = #v + n end
      v = v[n + 1]
    else
      v = v[k]
    end
  end
  if v == nil then return null end
  return v
end

-- root.a.b = v: builds objects along the path; deleted() removes the key;
-- nothing leaves the document as it was.
function B.set(root, v, ...)
  if v == NOTHING then return root end
  if v == nil then v = null end   -- env("UNSET"), a lookup that found nothing
  v = unwrap(v)
  if getmetatable(root) == UNPARSED then error(root.err, 0) end
  local n = select("#", ...)
  if n == 0 then return v end
  if type(root) ~= "table" or root == NOTHING or root == DELETED then
    if v == DELETED then return root end
    root = {}
  end
  local t = root
  for i = 1, n - 1 do
    local k = select(i, ...)
    local nxt = t[k]
    if type(nxt) ~= "table" or nxt == NOTHING then
      if v == DELETED then return root end
      nxt = {}
      t[k] = nxt
    end
    t = nxt
  end
  local k = select(n, ...)
  if v == DELETED then t[k] = nil else t[k] = v end
  return root
end

function B.meta_set(meta, k, v)
  if v == NOTHING then return end
  if v == DELETED or is_null(v) then meta[k] = nil else meta[k] = text(v) end
end

function B.apply(maps, v, name)
  local f = maps[name]
  if not f then fail("map %s was not found", text(name)) end
  return f(unwrap(v))
end

-- `@`: every key (values are text here, where Benthos may keep structure).
function B.meta_all(meta) return meta() end
-- `meta = v`: all of the metadata at once; deleted() removes it all.
function B.meta_replace(meta, v)
  if v == NOTHING then return end
  v = unwrap(v)
  if v ~= DELETED and (type(v) ~= "table" or is_null(v) or is_array(v)) then
    fail("setting root meta object requires object value, received: %s", kind(v))
  end
  for k in pairs(meta()) do meta[k] = nil end
  if v ~= DELETED then
    for k, e in pairs(v) do B.meta_set(meta, k, e) end
  end
end

function B.meta_get(meta, k)
  local v = meta[k]
  if v == nil then return null end
  return v
end

-- A mutation's root: the message, or why it is not JSON, raised only when
-- the mutation changes the document (one that sets metadata runs on any bytes).
function B.mutable(load)
  local ok, v = pcall(load)
  if ok then return v end
  return setmetatable({err = v}, UNPARSED)
end

-- ---------- operators ----------

function B.add(a, b)
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "number" then return a + b end
  if ta == "string" and tb == "string" then return a .. b end
  fail("cannot add types %s (from left) and %s (from right)", kind(a), kind(b))
end

local function arith(name, f)
  return function(a, b)
    if type(a) ~= "number" or type(b) ~= "number" then
      fail("cannot %s types %s (from left) and %s (from right)", name, kind(a), kind(b))
    end
    return f(a, b)
  end
end
B.sub = arith("subtract", function(a, b) return a - b end)
B.mul = arith("multiply", function(a, b) return a * b end)
B.div = arith("divide", function(a, b)
  if b == 0 then fail("attempted to divide by zero") end
  return a / b
end)
B.mod = arith("modulo", function(a, b)
  if b == 0 then fail("attempted to divide by zero") end
  return math.fmod(a, b)
end)
B.neg = function(a)
  if type(a) ~= "number" then fail("cannot negate type %s", kind(a)) end
  return -a
end

local function equal(a, b)
  a, b = unwrap(a), unwrap(b)
  if is_null(a) and is_null(b) then return true end
  local ta, tb = type(a), type(b)
  if ta ~= tb then return false end
  if ta ~= "table" then return a == b end
  if is_array(a) ~= is_array(b) then return false end
  for k, v in pairs(a) do
    if not equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
-- Scalars of one type (the common case) compare at once.
function B.eq(a, b)
  local ta = type(a)
  if ta == type(b) and ta ~= "table" and ta ~= "userdata" then return a == b end
  return equal(a, b)
end
function B.ne(a, b) return not B.eq(a, b) end

local function ordered(a, b)
  local ta, tb = type(a), type(b)
  if ta == tb and (ta == "number" or ta == "string") then return true end
  fail("cannot compare types %s (from left) and %s (from right)", kind(a), kind(b))
end
function B.lt(a, b) ordered(a, b) return a < b end
function B.le(a, b) ordered(a, b) return a <= b end
function B.gt(a, b) ordered(a, b) return a > b end
function B.ge(a, b) ordered(a, b) return a >= b end

function B.bool(v, what)
  if type(v) ~= "boolean" then fail("expected bool value%s, got %s", what or "", kind(v)) end
  return v
end
function B.no(v) return not B.bool(v) end

-- a | b: b when a fails or is null.
function B.coalesce(fa, fb)
  local ok, v = pcall(fa)
  if ok and not is_null(v) and v ~= NOTHING then return v end
  return fb()
end

function B.catch(fa, fb)
  local ok, v = pcall(fa)
  if ok then return v end
  return fb()
end

-- ---------- methods ----------

local M = {}

local function want(v, t, name)
  if type(v) ~= t then fail("expected %s value, got %s", t == "table" and "object" or t, kind(v)) end
  return v
end

function M.string(v) return text(v) end
-- number(default) and bool(default): the default instead of the error.
function M.number(v, default)
  if type(v) == "number" then return v end
  local n = type(v) == "string" and tonumber(v)
  if not n then
    if default ~= nil then return default end
    fail("expected number value, got %s", kind(v))
  end
  return n
end
function M.bool(v, default)
  if type(v) == "boolean" then return v end
  if v == "true" then return true elseif v == "false" then return false end
  if type(v) == "number" then return v ~= 0 end
  if default ~= nil then return default end
  fail("expected bool value, got %s", kind(v))
end
function M.type(v) return kind(v) end
function M.not_null(v)
  if is_null(v) then fail("value is null") end
  return v
end
function M.not_empty(v)
  if (type(v) == "string" and v == "") or (type(v) == "table" and next(v) == nil) then fail("value is empty") end
  return v
end
function M.uppercase(v) return str_upper(want(v, "string")) end

-- Go's html.EscapeString and html.UnescapeString. Unescaping knows numeric
-- references and the named ones below (Go knows all of HTML5's 2,231: a name
-- not listed here is left as written, as Go leaves names it does not know).
local ESC = {["&"] = "&amp;", ["'"] = "&#39;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;"}
function M.escape_html(v) return (str_gsub(want(v, "string"), "[&'<>\"]", ESC)) end
local ENTITIES = {amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = "\194\160", copy = "\194\169",
  reg = "\194\174", trade = "\226\132\162", hellip = "\226\128\166", mdash = "\226\128\148",
  ndash = "\226\128\147", lsquo = "\226\128\152", rsquo = "\226\128\153", ldquo = "\226\128\156",
  rdquo = "\226\128\157", laquo = "\194\171", raquo = "\194\187", euro = "\226\130\172", pound = "\194\163",
  yen = "\194\165", cent = "\194\162", sect = "\194\167", deg = "\194\176", plusmn = "\194\177",
  times = "\195\151", divide = "\195\183", micro = "\194\181", para = "\194\182", middot = "\194\183",
  bull = "\226\128\162", shy = "\194\173", iexcl = "\194\161", iquest = "\194\191"}
local function utf8_char(cp)
  if cp == 0 or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then cp = 0xFFFD end
  if cp < 0x80 then return str_char(cp) end
  if cp < 0x800 then return str_char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then return str_char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64) end
  return str_char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end
function M.unescape_html(v)
  return (str_gsub(want(v, "string"), "&(#?[xX]?%w+);?", function(ref)
    local hex = ref:match("^#[xX](%x+)$")
    local dec = ref:match("^#(%d+)$")
    if hex or dec then return utf8_char(tonumber(hex or dec, hex and 16 or 10) or 0xFFFD) end
    return ENTITIES[ref]
  end))
end
function M.lowercase(v) return str_lower(want(v, "string")) end
function M.capitalize(v)
  return (str_gsub(want(v, "string"), "(%a)([%w]*)", function(a, b) return str_upper(a) .. b end))
end
function M.trim(v, cut)
  want(v, "string")
  if cut ~= nil then
    local set = {}
    for i = 1, #cut do set[str_byte(cut, i)] = true end
    local i, j = 1, #v
    while i <= j and set[str_byte(v, i)] do i = i + 1 end
    while j >= i and set[str_byte(v, j)] do j = j - 1 end
    return str_sub(v, i, j)
  end
  return (str_gsub(str_gsub(v, "^%s+", ""), "%s+$", ""))
end
function M.trim_prefix(v, p)
  want(v, "string")
  if str_sub(v, 1, #p) == p then return str_sub(v, #p + 1) end
  return v
end
function M.trim_suffix(v, s)
  want(v, "string")
  if #s > 0 and str_sub(v, -#s) == s then return str_sub(v, 1, #v - #s) end
  return v
end
function M.has_prefix(v, p) return str_sub(want(v, "string"), 1, #p) == p end
function M.has_suffix(v, s) return #s == 0 or str_sub(want(v, "string"), -#s) == s end

local function replace_all(v, old, new)
  want(v, "string")
  if old == "" then return v end
  local out, i = {}, 1
  while true do
    local a, b = str_find(v, old, i, true)
    if not a then break end
    out[#out + 1] = str_sub(v, i, a - 1)
    out[#out + 1] = new
    i = b + 1
  end
  out[#out + 1] = str_sub(v, i)
  return concat(out)
end
M.replace_all = replace_all
M.replace = replace_all

function M.split(v, sep)
  want(v, "string")
  local out = array()
  if sep == "" then
    for i = 1, #v do out[i] = str_sub(v, i, i) end
    return out
  end
  local i = 1
  while true do
    local a, b = str_find(v, sep, i, true)
    if not a then break end
    out[#out + 1] = str_sub(v, i, a - 1)
    i = b + 1
  end
  out[#out + 1] = str_sub(v, i)
  return out
end

function M.contains(v, x)
  if type(v) == "string" then return str_find(v, text(x), 1, true) ~= nil end
  if type(v) == "table" then
    for _, e in pairs(v) do
      if equal(e, x) then return true end
    end
    return false
  end
  fail("expected string, array or object value, got %s", kind(v))
end

function M.length(v)
  if type(v) == "string" then return #v end
  if type(v) == "table" and v ~= NOTHING then
    if is_array(v) then return #v end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n
  end
  fail("expected string, array or object value, got %s", kind(v))
end

local function sorted_keys(v)
  local ks = {}
  for k in pairs(v) do ks[#ks + 1] = k end
  sort(ks)
  return ks
end

function M.keys(v)
  want(v, "table")
  return array(sorted_keys(v))
end
function M.values(v)
  want(v, "table")
  local out = array()
  for _, k in ipairs(sorted_keys(v)) do out[#out + 1] = v[k] end
  return out
end

-- map_each, filter: fn gets each element (arrays) or {key, value} (objects).
function M.map_each(v, fn)
  want(v, "table")
  if is_array(v) then
    local out = array()
    for _, e in ipairs(v) do
      local r = fn(e)
      if r ~= DELETED and r ~= NOTHING then out[#out + 1] = r end
    end
    return out
  end
  local out = {}
  for k, e in pairs(v) do
    local r = fn({key = k, value = e})
    if r ~= DELETED then out[k] = r == NOTHING and e or r end
  end
  return out
end

function M.filter(v, fn)
  want(v, "table")
  if is_array(v) then
    local out = array()
    for _, e in ipairs(v) do
      if B.bool(fn(e), " from filter") then out[#out + 1] = e end
    end
    return out
  end
  local out = {}
  for k, e in pairs(v) do
    if B.bool(fn({key = k, value = e}), " from filter") then out[k] = e end
  end
  return out
end

function M.exists(v, path)
  want(v, "table")
  local t = v
  for seg in string.gmatch(path, "[^%.]+") do
    if type(t) ~= "table" or t[seg] == nil then return false end
    t = t[seg]
  end
  return true
end

-- merge: objects merge key by key (values of both under one key become an
-- array), arrays append; the receiver is not changed.
local function merge(a, b)
  if type(a) == "table" and type(b) == "table" and not is_array(a) and not is_array(b) then
    local out = B.copy(a)
    for k, v in pairs(b) do
      if out[k] ~= nil then out[k] = merge(out[k], v) else out[k] = B.copy(v) end
    end
    return out
  end
  if type(a) == "table" and is_array(a) then
    local out = B.copy(a)
    if type(b) == "table" and is_array(b) then
      for _, v in ipairs(b) do out[#out + 1] = B.copy(v) end
    else
      out[#out + 1] = B.copy(b)
    end
    return out
  end
  local out = array({B.copy(a)})
  if type(b) == "table" and is_array(b) then
    for _, v in ipairs(b) do out[#out + 1] = B.copy(v) end
  else
    out[#out + 1] = B.copy(b)
  end
  return out
end
function M.merge(v, w) return merge(v, w) end

-- this.merge(obj) when the message is not read again: obj's keys go into the
-- message in place (through the sandbox's `this`, which tracks them).
function B.merge_into(this, w)
  if not is_this(this) or type(w) ~= "table" or is_array(w) then return merge(unwrap(this), w) end
  for k, v in pairs(w) do
    local cur = this[k]
    if cur == nil then this[k] = B.copy(v) else this[k] = merge(cur, v) end
  end
  return this
end

-- The same for a literal of distinct constant keys, given as key, value
-- pairs: each key is looked up once, and the literal is never built.
function B.merge_fields(this, ...)
  local n = select("#", ...)
  if not is_this(this) then
    local w = {}
    for i = 1, n, 2 do
      local k, v = select(i, ...)
      w[k] = v
    end
    return merge(unwrap(this), B.object(w))
  end
  for i = 1, n, 2 do
    local k, v = select(i, ...)
    if v ~= nil and v ~= NOTHING and v ~= DELETED then
      local cur = this[k]
      if cur == nil then this[k] = B.copy(v) else this[k] = merge(cur, v) end
    end
  end
  return this
end

function M.without(v, ...)
  want(v, "table")
  local out = B.copy(v)
  for i = 1, select("#", ...) do
    local path, t = select(i, ...), out
    local segs = {}
    for seg in string.gmatch(path, "[^%.]+") do segs[#segs + 1] = seg end
    for j = 1, #segs - 1 do
      t = type(t) == "table" and t[segs[j]] or nil
    end
    if type(t) == "table" then t[segs[#segs]] = nil end
  end
  return out
end

function M.append(v, ...)
  want(v, "table")
  local out = B.copy(v)
  for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end
  return array(out)
end

function M.join(v, sep)
  want(v, "table")
  local parts = {}
  for i, e in ipairs(v) do
    if type(e) ~= "string" then fail("expected string value at index %d, got %s", i - 1, kind(e)) end
    parts[i] = e
  end
  return concat(parts, sep or "")
end

function M.index(v, i)
  want(v, "table")
  if i < 0 then i = #v + i end
  local e = v[i + 1]
  if e == nil then fail("index %d out of bounds", i) end
  return e
end

function M.slice(v, a, b)
  local n = type(v) == "string" and #v or #want(v, "table")
  if a < 0 then a = n + a end
  b = b or n
  if b < 0 then b = n + b end
  if a < 0 then a = 0 end
  if b > n then b = n end
  if type(v) == "string" then return str_sub(v, a + 1, b) end
  local out = array()
  for k = a + 1, b do out[#out + 1] = v[k] end
  return out
end

function M.sum(v)
  want(v, "table")
  local s = 0
  for _, e in ipairs(v) do s = s + M.number(e) end
  return s
end
function M.abs(v) return math.abs(M.number(v)) end
function M.floor(v) return floor(M.number(v)) end
function M.ceil(v) return math.ceil(M.number(v)) end
function M.round(v)
  local n = M.number(v)
  return n >= 0 and floor(n + 0.5) or -floor(-n + 0.5)
end

function M.sort(v, fn)
  want(v, "table")
  local out = array(B.copy(v))
  if fn then
    sort(out, function(a, b) return B.bool(fn({left = a, right = b}), " from sort") end)
  else
    sort(out, function(a, b) return B.lt(a, b) end)
  end
  return out
end

function M.unique(v)
  want(v, "table")
  local out = array()
  for _, e in ipairs(v) do
    local seen = false
    for _, o in ipairs(out) do
      if equal(o, e) then seen = true break end
    end
    if not seen then out[#out + 1] = e end
  end
  return out
end

function M.parse_json(v)
  local ok, r = pcall(json.decode, want(v, "string"))
  if not ok then fail("failed to parse value as JSON: %s", tostring(r)) end
  return r
end
-- As Benthos writes it: keys sorted, each level indented (four spaces by
-- default), arrays one element a line.
local function pretty(v, indent, depth, out)
  local t = type(v)
  if t ~= "table" or v == NOTHING then
    out[#out + 1] = is_null(v) and "null" or json.encode(v)
    return
  end
  local pad, inner = "\n" .. str_rep(indent, depth), "\n" .. str_rep(indent, depth + 1)
  if is_array(v) then
    if #v == 0 then out[#out + 1] = "[]" return end
    out[#out + 1] = "["
    for i, e in ipairs(v) do
      out[#out + 1] = (i > 1 and "," or "") .. inner
      pretty(e, indent, depth + 1, out)
    end
    out[#out + 1] = pad .. "]"
    return
  end
  local keys = sorted_keys(v)
  if #keys == 0 then out[#out + 1] = "{}" return end
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    out[#out + 1] = (i > 1 and "," or "") .. inner .. json.encode(k) .. ": "
    pretty(v[k], indent, depth + 1, out)
  end
  out[#out + 1] = pad .. "}"
end
function M.format_json(v, indent)
  local out = {}
  pretty(v, indent or "    ", 0, out)
  return concat(out)
end

function M.from_all(v) return v end

-- Regular expressions (the scripts' `re`: PCRE2, empty matches as Go's).
local function re_call(f, ...)
  local ok, a, b = pcall(f, ...)
  if not ok then fail("%s", (tostring(a):gsub("^[^:]*:%d+: ", ""))) end
  return a, b
end
function M.re_match(v, pattern) return re_call(re.find, want(v, "string"), want(pattern, "string")) ~= nil end
function M.re_replace_all(v, pattern, with)
  return (re_call(re.gsub, want(v, "string"), want(pattern, "string"), want(with, "string")))
end
function M.re_find_all(v, pattern)
  local out = array()
  for caps in re_call(re.gmatch, want(v, "string"), want(pattern, "string")) do out[#out + 1] = caps[0] end
  return out
end
function M.re_find_all_submatch(v, pattern)
  local out = array()
  for caps in re_call(re.gmatch, want(v, "string"), want(pattern, "string")) do
    local m = array({caps[0]})
    for i = 1, #caps do m[#m + 1] = caps[i] or "" end
    out[#out + 1] = m
  end
  return out
end

-- fold(initial, query): the query sees {tally, value} for each element.
function M.fold(v, init, fn)
  if type(v) ~= "table" or not is_array(v) then fail("expected array value, got %s", kind(v)) end
  local tally = init
  for _, e in ipairs(v) do tally = fn({tally = tally, value = e}) end
  return tally
end

function M.enumerated(v)
  if type(v) ~= "table" or not is_array(v) then fail("expected array value, got %s", kind(v)) end
  local out = array()
  for i, e in ipairs(v) do out[i] = {index = i - 1, value = e} end
  return out
end

-- An unsigned big-endian integer of bytes, in decimal (wider than a double).
local function decimal(bytes)
  local digits, n = {}, {str_byte(bytes, 1, -1)}
  repeat
    local rem, nz = 0, false
    for i = 1, #n do
      local cur = rem * 256 + n[i]
      n[i] = floor(cur / 10)
      rem = cur % 10
      nz = nz or n[i] ~= 0
    end
    insert(digits, 1, tostring(rem))
  until not nz
  return concat(digits)
end

-- Bloblang's hash: raw digest bytes; xxhash64 gives its number in decimal
-- text, as Benthos does.
function M.hash(v, alg, key, poly)
  want(v, "string")
  if alg == "md5" or alg == "sha1" or alg == "sha256" or alg == "sha512" then return hash[alg](v, "raw") end
  local h = type(alg) == "string" and alg:match("^hmac_(.+)$")
  if h == "md5" or h == "sha1" or h == "sha256" or h == "sha512" then
    if key == nil then fail("hash algorithm %s requires a key argument", alg) end
    return hash.hmac(h, text(key), v, "raw")
  end
  if alg == "xxhash64" then return decimal(hash.xxhash64(v, "raw")) end
  if alg == "crc32" then
    if poly ~= nil and poly ~= "IEEE" then fail("crc32 polynomial %s is not translated (IEEE is)", text(poly)) end
    return hash.crc32(v, "raw")
  end
  fail("unrecognized hash type: %s", text(alg))
end

local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s, url)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = str_byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {floor(n / 262144) % 64, floor(n / 4096) % 64, floor(n / 64) % 64, n % 64}
    local chunk = {}
    for k = 1, 4 do chunk[k] = str_sub(b64, q[k] + 1, q[k] + 1) end
    if not b then chunk[3], chunk[4] = "=", "=" elseif not c then chunk[4] = "=" end
    out[#out + 1] = concat(chunk)
  end
  local r = concat(out)
  if url then r = str_gsub(str_gsub(str_gsub(r, "+", "-"), "/", "_"), "=", "") end
  return r
end
local function unbase64(s)
  s = str_gsub(str_gsub(s, "-", "+"), "_", "/")
  s = str_gsub(s, "=", "")
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    local d = str_find(b64, str_sub(s, i, i), 1, true)
    if not d then fail("illegal base64 data at input byte %d", i - 1) end
    bits, nbits = bits * 64 + d - 1, nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local p = 2 ^ nbits
      out[#out + 1] = str_char(floor(bits / p))
      bits = bits % p
    end
  end
  return concat(out)
end
function M.encode(v, scheme)
  v = text(v)
  if scheme == "base64" then return base64(v) end
  if scheme == "base64url" or scheme == "base64rawurl" then return base64(v, true) end
  if scheme == "hex" then
    return (str_gsub(v, ".", function(c) return str_format("%02x", str_byte(c)) end))
  end
  fail("unrecognized encoding type: %s", tostring(scheme))
end
function M.decode(v, scheme)
  want(v, "string")
  if scheme == "base64" or scheme == "base64url" or scheme == "base64rawurl" then return unbase64(v) end
  if scheme == "hex" then
    if #v % 2 == 1 or str_find(v, "[^%x]") then fail("encoding/hex: invalid byte") end
    return (str_gsub(v, "%x%x", function(h) return str_char(tonumber(h, 16)) end))
  end
  fail("unrecognized encoding type: %s", tostring(scheme))
end

-- Timestamps: RFC 3339 text <-> Unix seconds, in UTC.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
local function parse_rfc3339(s)
  local y, mo, d, h, mi, sec, frac, zone = string.match(s,
    "^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not y then fail("failed to parse %q as a timestamp (RFC 3339)", s) end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + h * 3600 + mi * 60 + sec
  if frac ~= "" and frac ~= "." then t = t + tonumber("0" .. frac) end
  if zone == "Z" or zone == "z" then return t end
  local sign, zh, zm = string.match(zone, "^([+-])(%d%d):(%d%d)$")
  if not sign then fail("failed to parse %q as a timestamp (RFC 3339)", s) end
  local off = zh * 3600 + zm * 60
  return sign == "+" and t - off or t + off
end
local function to_unix(v)
  if type(v) == "number" then return v end
  return parse_rfc3339(want(v, "string"))
end
function M.ts_unix(v) return floor(to_unix(v)) end
function M.ts_unix_milli(v) return floor(to_unix(v) * 1000) end
function M.ts_unix_nano(v) return floor(to_unix(v) * 1e9) end
local function format_utc(t, frac)
  local secs = floor(t)
  local s = os.date("!%Y-%m-%dT%H:%M:%S", secs)
  local f = t - secs
  if frac and f > 0 then s = s .. (str_gsub(str_format("%.9f", f):sub(2), "0+$", "")) end
  return s .. "Z"
end
function M.ts_format(v, layout)
  local t = to_unix(v)
  if layout == nil or layout == "2006-01-02T15:04:05.999999999Z07:00" then return format_utc(t, true) end
  if layout == "2006-01-02T15:04:05Z07:00" then return format_utc(t, false) end
  -- Go's reference layout, translated token by token to strftime.
  local map = {{"2006", "%Y"}, {"01", "%m"}, {"02", "%d"}, {"15", "%H"}, {"04", "%M"}, {"05", "%S"},
    {"Jan", "%b"}, {"Mon", "%a"}, {"MST", "UTC"}, {"Z07:00", "Z"}, {"-0700", "+0000"}}
  local out, i = {}, 1
  while i <= #layout do
    local hit
    for _, p in ipairs(map) do
      if str_sub(layout, i, i + #p[1] - 1) == p[1] then hit = p break end
    end
    if hit then
      out[#out + 1] = hit[2]
      i = i + #hit[1]
    else
      local c = str_sub(layout, i, i)
      out[#out + 1] = c == "%" and "%%" or c
      i = i + 1
    end
  end
  return os.date("!" .. concat(out), floor(t))
end
function M.ts_strftime(v, f) return os.date("!" .. f, floor(to_unix(v))) end
function M.ts_parse(v, layout)
  local _ = layout
  return format_utc(parse_rfc3339(want(v, "string")), true)
end

function M.format(v, ...)
  local args = {...}
  local i = 0
  return (str_gsub(want(v, "string"), "%%([%%vsdfq])", function(c)
    if c == "%" then return "%" end
    i = i + 1
    local a = args[i]
    if c == "d" then return str_format("%d", M.number(a)) end
    if c == "f" then return str_format("%f", M.number(a)) end
    if c == "q" then return str_format("%q", text(a)) end
    return text(a)
  end))
end

local function unwrap_all(...)
  if select("#", ...) == 0 then return end
  return unwrap((...)), unwrap_all(select(2, ...))
end

function B.call(name, recv, ...)
  local f = M[name]
  if not f then fail("unknown method %s", name) end
  if recv == NOTHING then fail("cannot call %s on nothing", name) end
  return f(unwrap(recv), unwrap_all(...))
end

-- ---------- functions ----------

-- A request-context reference ("query.user", "path") of the message's
-- request, as text; "" (or the default) when it has none.
function B.ctx(ctx, what, def)
  local map, name = string.match(what, "^(%w+)%.(.+)$")
  local v
  if map then
    local m = ctx[map]
    v = m and m[name]
  else
    v = ctx[what]
  end
  if v == nil or v == "" or v == null then return def or "" end
  return text(v)
end
B.uuid_v4 = uuid_v4
B.now = now
function B.timestamp_unix() return os.time() end
function B.timestamp_unix_nano() return floor(time.now() * 1e9) end
local NANOID = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
function B.nanoid(size, alphabet)
  size, alphabet = size or 21, alphabet or NANOID
  if type(size) ~= "number" or size < 1 then fail("nanoid: size must be a positive number") end
  want(alphabet, "string")
  if #alphabet == 0 then fail("nanoid: the alphabet is empty") end
  local out = {}
  for i = 1, size do
    local k = math.random(1, #alphabet)
    out[i] = str_sub(alphabet, k, k)
  end
  return concat(out)
end
-- json("a.b"): a field of the message as it came in (this at the top).
function B.json(this, path)
  if path == nil or path == "" then return this end
  local keys = {}
  for k in string.gmatch(want(path, "string"), "[^.]+") do keys[#keys + 1] = tonumber(k) or k end
  return B.get(this, unpack(keys))
end
function B.range(a, b, step)
  local out = array()
  step = step or (b >= a and 1 or -1)
  for k = a, b - (step > 0 and 1 or -1), step do out[#out + 1] = k end
  return out
end
function B.throw(msg) fail("%s", text(msg)) end

-- The result of a mapping: what the lua processor returns for root.
function B.result(root)
  if root == NOTHING or getmetatable(root) == UNPARSED or is_this(root) then return nil end
  if root == DELETED then return DELETED end
  if type(root) == "table" or type(root) == "string" then return root end
  return text(root)
end

return B
