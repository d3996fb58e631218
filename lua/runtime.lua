-- The host side of sluice's Lua VM: compiles user code into sandboxed
-- functions, runs them over whole batches through FFI, and evaluates checks
-- and ${! } interpolations. Loaded once per VM by lua/vm.c; user code never
-- sees this module, only the environment it builds.
-- A batch runs in a runner coroutine, so that a long call can yield to the
-- loop between time slices (lua/guard.h) and resume where it stopped.
local ffi = require("ffi")
local cjson = require("cjson")
-- budget_mod: lua/budget.lua; strmatch: {find, match, gmatch, gsub} that stop
-- at the call's deadline (lua/strmatch.c); cache_mod: cache.* (lua/cache.lua);
-- bloblang: loads lua/bloblang.lua's chunk; async: {begin, ready = C functions,
-- bindings = {["lib.name"] = start C function}} (lua/async.h); library: the C
-- parts of the scripts' standard library (lua/library.h)
local budget_mod, strmatch, cache_mod, bloblang, async, library = ...
local mp_ok, mpack = pcall(require, "mpack")
if not mp_ok then error("cannot load lua-mpack (apt-get install lua-mpack): " .. tostring(mpack), 0) end

ffi.cdef [[
typedef struct sl_msg sl_msg_t;
const char *sl_lmsg_content(sl_msg_t *m, size_t *len);
void sl_lmsg_set_content(sl_msg_t *m, const char *p, size_t len);
const char *sl_lmsg_meta_get(sl_msg_t *m, const char *k, size_t *len);
void sl_lmsg_meta_set(sl_msg_t *m, const char *k, const char *v, size_t len);
void sl_lmsg_meta_del(sl_msg_t *m, const char *k);
int sl_lmsg_meta_at(sl_msg_t *m, unsigned i, const char **k, const char **v, size_t *len);
const char *sl_lmsg_error(sl_msg_t *m);
void sl_lmsg_set_error(sl_msg_t *m, const char *e);
const char *sl_lmsg_ctx_str(sl_msg_t *m, int which);
int sl_lmsg_ctx_kv_at(sl_msg_t *m, int list, unsigned i, const char **k, const char **v, size_t *len);
void sl_lmodule_dep(void *owner, const char *path);
sl_msg_t *sl_lmsg_clone(void *run, sl_msg_t *m);
sl_msg_t *sl_lmsg_new(void *run, const char *p, size_t len);
void sl_lrun_keep(void *run, sl_msg_t *m, unsigned k);
void sl_lfaillog_note(void *log, const char *text, unsigned n);
int sl_uuid_v4(char *out);
int sl_lnow(char *out, size_t cap);
int sl_llog(const char *level, const char *msg, const char **kv);
]]

local C = ffi.C
local ffi_string, ffi_cast = ffi.string, ffi.cast
local type, pairs, ipairs, tostring, error, pcall, select = type, pairs, ipairs, tostring, error, pcall, select
local co_create, co_resume, co_yield, co_running, co_status = coroutine.create, coroutine.resume, coroutine.yield,
  coroutine.running, coroutine.status
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local str_sub, str_format, str_find, str_gsub = string.sub, string.format, string.find, string.gsub
local json_decode, json_encode = cjson.decode, cjson.encode
local msgs_t = ffi.typeof("sl_msg_t **")
local len_box = ffi.new("size_t[1]")
local k_box, v_box = ffi.new("const char *[1]"), ffi.new("const char *[1]")
local uuid_buf = ffi.new("char[37]")
local now_buf = ffi.new("char[64]")

local M = {}

-- ---------- positions ----------
-- Code from the config is compiled as a chunk of its own, counting its lines
-- from 1 (placing it on its line with newlines made compiling cost its line
-- number: quadratic in a config of many scripts). The chunk's name carries
-- the line before its first ("@config.yaml:+40" for code on line 41), and
-- every text that reaches the user with a position ("config.yaml:+40:3",
-- raised by error(), a runtime error, a budget, the matcher) is relined to
-- the file's ("config.yaml:43").
local function chunk_name(chunk, line)
  local off = (line or 1) - 1
  if off > 0 then return "@" .. chunk .. ":+" .. off end
  return "@" .. chunk
end
-- Line 0 is LuaJIT's "no line" (a stack overflow met entering a function
-- names it, as the frames fall): the script's first line stands for it.
local function shifted(off, n)
  if n == "0" then n = 1 end
  return ":" .. (off + n)
end
local function reline(s)
  if type(s) ~= "string" or not str_find(s, ":+", 1, true) then return s end
  return (str_gsub(s, ":%+(%d+):(%d+)", shifted))
end
-- LuaJIT's own stack limit is met entering the function that recursed, or
-- entering its step function or a C function it calls, as the frames fall:
-- then the error names the budget's chunk or no place at all, and the stack
-- that would say more is gone. It is placed at the start of the script fn
-- (the script's first line, or the module's function) instead.
local BUDGET_POS = '^%[string "lua%.budget"%]:%d+: '
local getinfo = debug.getinfo
local function place(err, fn)
  if type(err) ~= "string" then return err end
  local rest
  if str_find(err, BUDGET_POS) then rest = str_gsub(err, BUDGET_POS, "")
  elseif err == "stack overflow" then rest = err
  else return err end
  if not fn then return rest end
  local d = getinfo(fn, "S")
  return reline(d.short_src .. ":" .. d.linedefined .. ": " .. rest)
end

-- ---------- per-message state (set by the run loop) ----------
local cur_msg            -- sl_msg_t* being processed (module runs, set_current)
-- The inline loop's batch instead: its message is cur_msgs[cur_index], read
-- where it is used, so that LuaJIT need not box a pointer per message (an
-- allocation per message, and garbage collection to match).
local cur_msgs = nil
local cur_index = 0      -- 0-based position in the batch
local function cur()
  if cur_msgs ~= nil then return cur_msgs[cur_index] end
  return cur_msg
end
local cur_seq = nil      -- generate's `i`
local cur_this, this_loaded, this_dirty, this_exposed, this_set = nil, false, false, false, false
-- this_dirty: false, APPEND (only keys absent from the original were set,
-- listed in this_added[1..this_nadded]) or FULL (anything else).
local APPEND, FULL = 1, 2
local this_added, this_nadded, this_src = {}, 0, nil
local cur_ctx_cache = nil
local cur_run = nil
local cur_runner = nil   -- the runner coroutine whose run executes now (it may yield)
-- A message whose call waited (lua/async.h) goes on in its own coroutine
-- once resumed: the run's loop went on without it, so it ends with it.
local cur_detached = false
local cur_deadline = nil -- when the message's waits must be over (ms), set at its first
local cur_timeout = 0    -- the run's per-message deadline (ms, 0: none)

local DELETED = setmetatable({}, {__tostring = function() return "deleted()" end, __metatable = false})

-- Scripts reach message state only while a message is processed (not, for
-- example, at a module's top level, where there is none).
-- The current message, or an error at the script's line when there is none.
local function need()
  local m = cur()
  if m == nil then error("no message here: this runs only while a message is processed", 3) end
  return m
end

local function content()
  local m = need()
  return ffi_string(C.sl_lmsg_content(m, len_box), len_box[0])
end

-- `this` for a JSON object is an empty proxy whose one raw key, the private
-- RAW table, holds the decoded object. Every write goes through __newindex
-- and marks it dirty, so a changed message is re-encoded without comparing.
-- Reading a nested table (or handing the object to pairs, next, rawset,
-- table.* ...) "exposes" it: such tables can change without the proxy
-- seeing it, so only then is the object compared with the original at the
-- end. A script that reads only scalar fields keeps the original bytes.
--
-- Until a script needs the whole object, it is not decoded at all: RAW is
-- false, SRC holds the text, and a read of a field finds it in the bytes
-- (lua/jfield.c) and decodes that value only; keys the script added (absent
-- from the text, so that the bytes can be appended to) are kept in VALS,
-- ABSENT standing for one set to nil once it was added (listed in
-- this_added), MISSING for one the text lacks and nobody set: a read that
-- found a key absent says so there, so that setting it next (a merge, `if
-- this.k == nil then this.k = ...`) does not scan the text again. Anything
-- else (writing a key the text
-- has, reading a nested table, pairs ...) decodes it: materialize.
local RAW = setmetatable({}, {__metatable = false})
async.proxy_key(RAW)     -- bindings answer with lazy proxies too (lua/async.h)
local VALS, ABSENT = setmetatable({}, {__metatable = false}), setmetatable({}, {__metatable = false})
local materialize, load_this, this_mt
local decode   -- below
do
  local SRC = setmetatable({}, {__metatable = false})
  local MISSING = setmetatable({}, {__metatable = false})
  ffi.cdef [[
  typedef struct sl_jfield { int32_t off, len; } sl_jfield_t;
  int sl_ljson_field(const char *s, size_t len, const char *key, size_t klen, sl_jfield_t *out);
  int sl_ljson_field_again(const char *s, size_t len, const char *key, size_t klen, sl_jfield_t *out);
  double strtod(const char *s, char **end);
  ]]
  local jf = ffi.new("sl_jfield_t")
  local tab_new = require("table.new")
  -- lua/jfield.h's kinds
  local ABSENT_, STRING, ESCAPED, NUMBER, TRUE, FALSE, NULL = 0, 1, 2, 3, 4, 5, 6
  local str_byte = string.byte
  local cstr = ffi.typeof("const char *")
  function materialize(p)
    local src = rawget(p, SRC)
    if src == nil then
      -- a binding's proxy (http.request's headers): its __index makes it
      local _ = p[materialize]
      return rawget(p, RAW)
    end
    -- the text was only seen to begin as an object: the decoder judges it
    local ok, raw = pcall(decode, src)
    if not ok then error("this: message is not JSON: " .. tostring(raw):gsub("^.-: ", ""), 3) end
    local vals = rawget(p, VALS)
    if vals then
      for k, v in next, vals do
        if v == ABSENT or v == MISSING then raw[k] = nil else raw[k] = v end
      end
    end
    rawset(p, RAW, raw)
    rawset(p, SRC, nil)
    rawset(p, VALS, nil)
    return raw
  end
  -- A field of a text not decoded yet: nil when absent, the decoded value,
  -- or ABSENT when it is an object or array or the scan is unsure of the
  -- text (the caller decodes the whole).
  local SCANNED = setmetatable({}, {__metatable = false})
  local function lazy_field(p, k)
    local src = rawget(p, SRC)
    -- after its first scan the proxy has held src: the scanner may look
    -- among the members it kept instead of scanning again
    local kind
    if rawget(p, SCANNED) then
      kind = C.sl_ljson_field_again(src, #src, k, #k, jf)
    else
      kind = C.sl_ljson_field(src, #src, k, #k, jf)
      rawset(p, SCANNED, true)
    end
    if kind == ABSENT_ then return nil end
    if kind == STRING then return str_sub(src, jf.off + 1, jf.off + jf.len) end
    if kind == NUMBER then return C.strtod(ffi.cast(cstr, src) + jf.off, nil) end
    if kind == TRUE then return true end
    if kind == FALSE then return false end
    if kind == NULL then return cjson.null end
    if kind == ESCAPED then return json_decode(str_sub(src, jf.off + 1, jf.off + jf.len)) end
    return ABSENT
  end
  function load_this()
    this_loaded = true
    local src = content()
    this_src = src
    -- An object is read lazily: the scan of the first field read checks the
    -- whole text too (what it is unsure of is decoded whole, or refused).
    local c = str_byte(src, 1)
    if c == 123 or ((c == 32 or c == 10 or c == 13 or c == 9) and str_find(src, "^[ \t\r\n]*{")) then
      -- VALS and SCANNED have their slots from the start, as its table has room for a few
      -- keys: adding them (this.id = ...) then grows no hash part
      cur_this = setmetatable({[RAW] = false, [SRC] = src, [VALS] = false, [SCANNED] = false}, this_mt)
      return cur_this
    end
    local ok, v = pcall(decode, src)
    if not ok then error("this: message is not JSON: " .. tostring(v):gsub("^.-: ", ""), 2) end
    if type(v) == "table" then
      -- Arrays stay plain tables (# and ipairs must work): exposed at once.
      if rawget(v, 1) ~= nil or getmetatable(v) == "json.array" then this_exposed = true
      else v = setmetatable({[RAW] = v}, this_mt) end
    end
    cur_this = v
    return v
  end
this_mt = {
  __index = function(p, k)
    local raw = rawget(p, RAW)
    if raw == false then
      local vals, v = rawget(p, VALS), nil
      if vals then v = vals[k] end
      if v == nil and type(k) == "string" then
        v = lazy_field(p, k)
        if v == nil then
          if not vals then vals = tab_new(0, 4); rawset(p, VALS, vals) end
          vals[k] = MISSING
          return nil
        end
        if v ~= ABSENT then return v end
        raw = materialize(p)
      elseif v == ABSENT or v == MISSING or v == nil then
        return nil
      else
        if type(v) == "table" then this_exposed = true end
        return v
      end
    end
    local v = raw[k]
    if type(v) == "table" then this_exposed = true end
    return v
  end,
  __newindex = function(p, k, v)
    if type(v) == "table" then
      local r = rawget(v, RAW)
      if r == false then r = materialize(v) end
      if r ~= nil then v = r end
    end
    local raw = rawget(p, RAW)
    if raw == false then
      local vals = rawget(p, VALS)
      if type(k) == "string" and ((vals and vals[k] ~= nil) or lazy_field(p, k) == nil) then
        -- a key the text does not have: appended, nothing decoded
        if not vals then vals = tab_new(0, 4); rawset(p, VALS, vals) end
        local was = vals[k]
        local listed = was ~= nil and was ~= MISSING
        if not listed and v ~= nil then
          this_nadded = this_nadded + 1
          this_added[this_nadded] = k
          this_dirty = APPEND
        end
        if v ~= nil then vals[k] = v elseif listed then vals[k] = ABSENT else vals[k] = MISSING end
        return
      end
      raw = materialize(p)
    end
    if this_dirty ~= FULL then
      local added = false
      for j = 1, this_nadded do
        if this_added[j] == k then added = true break end
      end
      if not added then
        if raw[k] ~= nil or type(k) ~= "string" then this_dirty = FULL
        elseif v ~= nil then
          this_nadded = this_nadded + 1
          this_added[this_nadded] = k
          this_dirty = APPEND
        end
      end
    end
    raw[k] = v
  end,
  __metatable = false,
}
end

-- The decoded table behind a `this` proxy (marked exposed), or t itself.
local function raw_of(t)
  if type(t) == "table" then
    local r = rawget(t, RAW)
    if r ~= nil then
      this_exposed = true
      if r == false then r = materialize(t) end
      return r
    end
  end
  return t
end

-- JSON arrays and objects that keep their kind: lua-cjson decodes `[]` and
-- `{}` alike and encodes every empty table as `{}`. Tables marked with
-- ARRAY_MT encode as arrays, with OBJECT_MT as objects (lua/json.c, which
-- also sees through `this` proxies). A text that holds an empty array is
-- decoded by jansson, marking its arrays; any other by lua-cjson, whose
-- arrays need no mark (they are not empty), and which also decodes what
-- jansson refuses (bytes that are not UTF-8, integers past 64 bits).
local ARRAY_MT = {__metatable = "json.array"}
local OBJECT_MT = {__metatable = "json.object"}
local jsonx = library.json_make(ARRAY_MT, OBJECT_MT, RAW, mpack.NIL, materialize)
local encode, decode_marked, msg_insert = jsonx.encode, jsonx.decode_marked, jsonx.insert
ffi.cdef "int sl_ljson_empty_array(const char *s, size_t len);"
function decode(s)
  if type(s) == "string" then
    local v = jsonx.decode_flat(s)   -- a flat object: what lua-cjson gives, made faster
    if v ~= nil then return v end
    if C.sl_ljson_empty_array(s, #s) ~= 0 then
      v = decode_marked(s)
      if v ~= nil then return v end
    end
  end
  return json_decode(s)
end

-- Host objects handed to scripts (meta, ctx, msg.meta) are userdata proxies:
-- rawset/rawget cannot reach past their metamethods, and their metatables
-- are hidden, so one script cannot plant values that others would read.
local newproxy = newproxy
local function proxy(mt)
  local p = newproxy(true)
  local pm = getmetatable(p)
  for k, v in pairs(mt) do pm[k] = v end
  pm.__metatable = false
  return p
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" or getmetatable(a) ~= getmetatable(b) then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- ---------- meta, ctx ----------
local meta = proxy({
  __index = function(_, k)
    local m = need()
    local p = C.sl_lmsg_meta_get(m, tostring(k), len_box)
    if p == nil then return nil end
    return ffi_string(p, len_box[0])
  end,
  __newindex = function(_, k, v)
    local m = need()
    k = tostring(k)
    if v == nil then C.sl_lmsg_meta_del(m, k) return end
    if type(v) == "table" then v = encode(v) else v = tostring(v) end
    C.sl_lmsg_meta_set(m, k, v, #v)
  end,
  -- meta() gives a plain table copy (for pairs).
  __call = function()
    local m = need()
    local t, i = {}, 0
    while C.sl_lmsg_meta_at(m, i, k_box, v_box, len_box) == 1 do
      t[ffi_string(k_box[0])] = ffi_string(v_box[0], len_box[0])
      i = i + 1
    end
    return t
  end,
})

local CTX_STR = {method = 0, path = 1, remote_addr = 2, request_id = 3, user = 4}
local CTX_LIST = {query = 0, headers = 1, params = 2, cookies = 3, jwt = 4}

local function ctx_list(which)
  local t, i, m = {}, 0, cur()
  while C.sl_lmsg_ctx_kv_at(m, which, i, k_box, v_box, len_box) == 1 do
    local k, v = ffi_string(k_box[0]), ffi_string(v_box[0], len_box[0])
    if which == 4 then
      local ok, dv = pcall(decode, v)
      if ok then v = dv end
    end
    if t[k] == nil then t[k] = v end
    i = i + 1
  end
  return t
end

local ctx = proxy({
  __index = function(_, k)
    local m = need()
    local s = CTX_STR[k]
    if s then
      local p = C.sl_lmsg_ctx_str(m, s)
      return p ~= nil and ffi_string(p) or nil
    end
    local l = CTX_LIST[k]
    if not l then return nil end
    cur_ctx_cache = cur_ctx_cache or {}
    local t = cur_ctx_cache[k]
    if not t then t = ctx_list(l); cur_ctx_cache[k] = t end
    return t
  end,
  __newindex = function() error("ctx is read-only", 2) end,
})

-- ---------- the sandbox ----------
local function uuid_v4()
  C.sl_uuid_v4(uuid_buf)
  return ffi_string(uuid_buf, 36)
end

local function now()
  local n = C.sl_lnow(now_buf, 64)
  return ffi_string(now_buf, n)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local lua_path = {}      -- directories require() may read, set by lua/vm.c
local modules = {}       -- modules required by inline code, per VM
-- While a module file's version loads or runs, its own require state: each
-- version starts with fresh copies of what it requires (so a reload picks up
-- changed dependencies), and every file read is recorded (to detect changes)
-- and reported to its C owner (to be watched).
local cur_req = nil      -- {modules = {}, files = {{path, src}, ...}, owner = lightuserdata}
local base = {}          -- what every user environment falls back to
local reserved = {this = true, meta = true, ctx = true, i = true}

-- Library tables are copied into each environment, so a script that
-- changes `string` or `math` changes only its own; when the script first
-- reads them (a script reads few, and copying all of them was most of
-- compiling a one-line mapping). A builder instead of true makes the table
-- on the VM's first read (Bloblang's runtime was a ninth of a start).
local LIBS = {string = true, table = true, math = true, bit = true, os = true, coroutine = true, json = true,
  cache = true, __bloblang = true, re = true, time = true, hash = true, base64 = true, hex = true, url = true,
  msgpack = true}
local function new_env()
  return setmetatable({}, {
    __index = function(env, k)
      if k == "this" then
        if this_set or this_loaded then return cur_this end
        return load_this()
      elseif k == "meta" then return meta
      elseif k == "ctx" then return ctx
      elseif k == "i" then return cur_seq
      end
      local lib = LIBS[k]
      if not lib then return base[k] end
      if lib ~= true then base[k], LIBS[k] = lib(), true end
      local c = copy(base[k])
      rawset(env, k, c)
      return c
    end,
    __newindex = function(t, k, v)
      if k == "this" then
        this_set, this_loaded, cur_this = true, true, v
      elseif reserved[k] then
        error(k .. " cannot be assigned", 2)
      else
        rawset(t, k, v)
      end
    end,
    __metatable = false,
  })
end

local compile

local function safe_load(s, name, mode, env)
  if type(s) ~= "string" then return nil, "load: only source strings are allowed" end
  if str_sub(s, 1, 1) == "\27" then return nil, "load: bytecode is not allowed" end
  return compile(s, name and tostring(name):gsub("^[@=]", "") or "load", env or new_env(), 1, "chunk")
end

-- Files the host has already read off the loop thread for a reload:
-- path -> content, or {error message}. Set only while a reload compiles.
local preread = nil

local function read_file(path)
  local pre = preread and preread[path]
  if type(pre) == "string" then return pre end
  if pre then return nil, pre[1] end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local src = f:read("*a")
  f:close()
  return src
end

local function sandbox_require(name)
  if type(name) ~= "string" or str_find(name, "[^%w_%.]") then error("require: bad module name", 2) end
  local req = cur_req
  local cache = req and req.modules or modules
  local m = cache[name]
  if m ~= nil then return m end
  local rel = name:gsub("%.", "/") .. ".lua"
  for _, dir in ipairs(lua_path) do
    local path = dir .. "/" .. rel
    local src = read_file(path)
    if src then
      if req then
        req.files[#req.files + 1] = {path, src}
        if req.owner then C.sl_lmodule_dep(req.owner, path) end
      end
      local fn, err = safe_load(src, "@" .. path)
      if not fn then error(err, 2) end
      m = fn(name)
      if m == nil then m = true end
      cache[name] = m
      return m
    end
  end
  error(str_format("module '%s' not found in lua_path (%s)", name,
    #lua_path > 0 and table.concat(lua_path, ";") or "lua_path is not set"), 0)
end

-- The string metatable's __index is this very table, so ("").find must be
-- the bounded matcher too, and ("").dump must not exist.
for name, f in pairs(strmatch) do string[name] = f end
string.dump = nil
base.string = copy(string)
base.table = copy(table)
base.math = copy(math)
base.bit = copy(bit)
base.os = {time = os.time, clock = os.clock, date = os.date, difftime = os.difftime}
-- ---------- the standard library (documented in lua/library.h) ----------
do
  local setmt = debug.setmetatable
  local function marker(mt, what)
    return function(t)
      if t == nil then t = {} end
      if type(t) ~= "table" then error("json." .. what .. ": a table expected, got " .. type(t), 2) end
      local r = raw_of(t)
      local cur = getmetatable(r)
      if cur ~= nil and cur ~= "json.array" and cur ~= "json.object" then
        error("json." .. what .. ": the table has a metatable of its own", 2)
      end
      setmt(r, mt)
      return t
    end
  end
  base.json = {encode = encode, decode = decode, null = cjson.null, array = marker(ARRAY_MT, "array"),
               object = marker(OBJECT_MT, "object"),
               is_array = function(t) return type(t) == "table" and getmetatable(raw_of(t)) == "json.array" end}
end
-- msgpack through lua-mpack: what json.encode sees through, so does encode
-- (`this` proxies, json.null as msgpack's nil), and a table is an array
-- exactly when json.encode writes one (its marks; unmarked: keys 1..n, so an
-- empty table is a map, as `{}`). lua-mpack decides by keys alone (an empty
-- table an array) and cannot be told, so tables are written here: headers
-- in Lua, scalars by mpack.
do
  local unpack_args = unpack
  local pack, unpack, NIL, null = mpack.pack, mpack.unpack, mpack.NIL, cjson.null
  local char, rshift, band, floor = string.char, bit.rshift, bit.band, math.floor
  local function head(out, n, fix, w16)   -- w16: the 16-bit form's byte; the 32-bit one follows it
    if n < 16 then out[#out + 1] = char(fix + n)
    elseif n < 0x10000 then out[#out + 1] = char(w16, rshift(n, 8), band(n, 255))
    else out[#out + 1] = char(w16 + 1, rshift(n, 24), band(rshift(n, 16), 255), band(rshift(n, 8), 255), band(n, 255)) end
  end
  -- json.c's array_length: the array's length, or -1 for a map (where
  -- json.encode refuses an excessively sparse array)
  local function length(t, marked)
    local max, items = 0, 0
    for k in next, t do
      if type(k) == "number" and k >= 1 and k == floor(k) then
        if k > max then max = k end
        items = items + 1
      elseif not marked then
        return -1
      end
    end
    if marked then return max end
    if items == 0 or (max > items * 2 and max > 10) then return -1 end
    return max
  end
  -- lua-mpack 1.0.7 packs -129 as 127, -32769 as 32767 and -4294967297 as -1
  -- (the ranges of its int8/int16/int32 forms are off): negative integers
  -- past int8 are written here, two's complement big-endian.
  local bytes = {}
  local function negint(v)
    local n = v >= -32768 and 2 or v >= -2147483648 and 4 or 8
    local c = -v - 1
    for i = n, 1, -1 do
      bytes[i] = 255 - c % 256
      c = floor(c / 256)
    end
    return char(n == 2 and 0xd1 or n == 4 and 0xd2 or 0xd3, unpack_args(bytes, 1, n))
  end
  local function enc(v, out, depth)
    if type(v) ~= "table" then
      if type(v) == "number" and v < -128 and v >= -2 ^ 53 and v == floor(v) then out[#out + 1] = negint(v)
      else out[#out + 1] = (v == nil or v == null) and "\192" or pack(v) end
      return
    end
    if depth > 1000 then error("msgpack.encode: nested too deep (a cycle?)", 0) end
    local r = rawget(v, RAW)
    if r == false then r = materialize(v) end
    if r ~= nil then v = r end
    local mt = getmetatable(v)
    local n = mt == "json.object" and -1 or length(v, mt == "json.array")
    if n >= 0 then
      head(out, n, 0x90, 0xdc)
      for i = 1, n do enc(rawget(v, i), out, depth + 1) end
      return
    end
    local items = 0
    for _ in next, v do items = items + 1 end
    head(out, items, 0x80, 0xde)
    for k, x in next, v do
      enc(k, out, depth + 1)
      enc(x, out, depth + 1)
    end
  end
  -- decode for a text that may hold an empty array, which lua-mpack gives
  -- as a plain {} (encoded again as a map): the same values, every array
  -- marked as json.decode marks them. The text is valid (mpack read it).
  local byte, fbuf = string.byte, ffi.new("union { uint8_t b[8]; float f; double d; }")
  local dec
  local function be(s, p, n)   -- an unsigned big-endian integer (exact up to 2^53)
    local v = 0
    for i = p, p + n - 1 do v = v * 256 + byte(s, i) end
    return v
  end
  local function neg(s, p, n)  -- a two's complement integer of n bytes
    if byte(s, p) < 128 then return be(s, p, n) end
    local v = 0
    for i = p, p + n - 1 do v = v * 256 + (255 - byte(s, i)) end
    return -v - 1
  end
  local function float(s, p, n)
    for i = 0, n - 1 do fbuf.b[i] = byte(s, p + n - 1 - i) end
    return n == 4 and fbuf.f or fbuf.d
  end
  local function array(s, p, n)
    local t = setmetatable({}, ARRAY_MT)
    for i = 1, n do t[i], p = dec(s, p) end
    return t, p
  end
  local function map(s, p, n)
    local t, k = {}, nil
    for _ = 1, n do
      k, p = dec(s, p)
      t[k], p = dec(s, p)
    end
    return t, p
  end
  local EXT = {[0xd4] = 3, [0xd5] = 4, [0xd6] = 6, [0xd7] = 10, [0xd8] = 18}
  function dec(s, p)
    local b = byte(s, p)
    if b < 0x80 then return b, p + 1 end
    if b >= 0xe0 then return b - 256, p + 1 end
    if b < 0x90 then return map(s, p + 1, b - 0x80) end
    if b < 0xa0 then return array(s, p + 1, b - 0x90) end
    if b < 0xc0 then return str_sub(s, p + 1, p + b - 0xa0), p + 1 + b - 0xa0 end
    if b == 0xc0 then return NIL, p + 1 end
    if b == 0xc2 or b == 0xc3 then return b == 0xc3, p + 1 end
    if b >= 0xc4 and b <= 0xc6 or b >= 0xd9 and b <= 0xdb then   -- bin, str: 1, 2 or 4 length bytes
      local w = 2 ^ ((b >= 0xd9 and b - 0xd9) or b - 0xc4)
      local n = be(s, p + 1, w)
      return str_sub(s, p + 1 + w, p + w + n), p + 1 + w + n
    end
    if b >= 0xcc and b <= 0xcf then local w = 2 ^ (b - 0xcc); return be(s, p + 1, w), p + 1 + w end
    if b >= 0xd0 and b <= 0xd3 then local w = 2 ^ (b - 0xd0); return neg(s, p + 1, w), p + 1 + w end
    if b == 0xca or b == 0xcb then local w = b == 0xca and 4 or 8; return float(s, p + 1, w), p + 1 + w end
    if b == 0xdc or b == 0xdd then local w = b == 0xdc and 2 or 4; return array(s, p + 1 + w, be(s, p + 1, w)) end
    if b == 0xde or b == 0xdf then local w = b == 0xde and 2 or 4; return map(s, p + 1 + w, be(s, p + 1, w)) end
    -- ext (fixext or ext 8/16/32): what mpack makes of it
    local len = EXT[b]
    if not len then
      local w = 2 ^ (b - 0xc7)
      len = 2 + w + be(s, p + 1, w)
    end
    return unpack(str_sub(s, p, p + len - 1)), p + len
  end
  base.msgpack = {
    encode = function(v)
      local out = {}
      enc(v, out, 0)
      return table.concat(out)
    end,
    decode = function(s)
      if type(s) ~= "string" then error("msgpack.decode: a string expected, got " .. type(s), 2) end
      local v = unpack(s)   -- refuses what is not msgpack, with its messages
      if not str_find(s, "[\144\220\221]") then return v end   -- holds no empty array
      return (dec(s, 1))
    end,
    null = NIL,
  }
end
for _, name in ipairs({"re", "hash", "base64", "hex", "url"}) do base[name] = library[name] end
-- time: clocks through FFI (compiled into traces), the rest in C
do
  ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } sl_timespec_t;
  int clock_gettime(int clock, sl_timespec_t *ts);
  ]]
  local ts, floor, tonumber = ffi.new("sl_timespec_t"), math.floor, tonumber
  local t = {}
  for k, f in pairs(library.time) do t[k] = f end
  t.now = function() C.clock_gettime(0, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9 end
  t.now_ms = function() C.clock_gettime(0, ts); return tonumber(ts.tv_sec) * 1000 + floor(tonumber(ts.tv_nsec) / 1e6) end
  t.now_us = function() C.clock_gettime(0, ts); return tonumber(ts.tv_sec) * 1000000 + floor(tonumber(ts.tv_nsec) / 1e3) end
  t.now_ns = function() C.clock_gettime(0, ts); return ts.tv_sec * 1000000000LL + ts.tv_nsec end
  base.time = t
end
base.cache = cache_mod
for _, k in ipairs({"assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring",
  "type", "unpack", "xpcall", "rawequal", "rawget", "rawset", "rawlen", "setmetatable"}) do
  base[k] = _G[k]
end
-- Builtins that bypass metamethods see the table behind a `this` proxy.
do
  local pairs_, next_, ipairs_, rawget_, rawset_, unpack_ = pairs, next, ipairs, rawget, rawset, unpack
  base.pairs = function(t) return pairs_(raw_of(t)) end
  base.next = function(t, k) return next_(raw_of(t), k) end
  base.ipairs = function(t) return ipairs_(raw_of(t)) end
  base.rawget = function(t, k) return rawget_(raw_of(t), k) end
  base.rawset = function(t, k, v) rawset_(raw_of(t), k, v); return t end
  base.unpack = function(t, i, j) return unpack_(raw_of(t), i, j) end
  for name, f in pairs_(base.table) do
    base.table[name] = function(t, ...) return f(raw_of(t), ...) end
  end
end
-- A script that catches an error sees the position relined too.
do
  local pcall_, xpcall_ = pcall, xpcall
  local function relined(ok, ...)
    if ok then return ok, ... end
    return false, reline(place((...)))
  end
  base.pcall = function(f, ...) return relined(pcall_(f, ...)) end
  base.xpcall = function(f, handler, ...)
    if type(handler) ~= "function" then return xpcall_(f, handler, ...) end
    return xpcall_(f, function(e) return handler(reline(place(e))) end, ...)
  end
end
-- Runner coroutines are the host's: a script sees none of them (running()
-- answers nil, as Lua 5.1 does on the main thread, and a yield there is an
-- error), so it can neither resume another script's suspended run nor
-- suspend its own. Every resume first checks the C stack: nested coroutines
-- take C stack but no Lua stack, so Lua's own limit never stops them.
-- A slice taken inside a script's coroutine yields PASS_ON to the resume
-- that runs it, which takes the slice in its own coroutine (if it can) and
-- resumes the inner one: the whole chain of coroutines gets suspended. Only
-- a few levels deep, as each level costs a yield and a resume per slice.
-- runners[co]: true, or the job co waits for while it is parked (see begin).
local runners = setmetatable({}, {__mode = "k"})
local PASS_ON, PASS_DEPTH = {}, 8
local guard_now = budget_mod.check_now
local co_depth = 0       -- resumes in progress in the running run
local take_slice, pass_wait    -- defined with the runners below
local WAIT = {}          -- a call waits (lua/async.h): passed up to the runner too
local function resumed(co, ok, first, ...)
  if ok and first == PASS_ON and co_status(co) == "suspended" then
    take_slice()
    return resumed(co, co_resume(co))
  end
  if ok and first == WAIT and co_status(co) == "suspended" then
    return pass_wait(co, pcall(co_yield, WAIT, ...))
  end
  co_depth = co_depth - 1
  if not ok then return false, reline(first) end
  return ok, first, ...
end
local function resume(co, ...)
  guard_now()
  co_depth = co_depth + 1
  return resumed(co, co_resume(co, ...))
end
local function rethrow(ok, ...)
  if not ok then error((...), 0) end
  return ...
end
base.coroutine = {
  create = co_create,
  status = co_status,
  resume = resume,
  running = function()
    local co = co_running()
    if co == nil or runners[co] then return nil end
    return co
  end,
  yield = function(...)
    local co = co_running()
    if co == nil or runners[co] then error("attempt to yield from outside a coroutine", 2) end
    return co_yield(...)
  end,
  wrap = function(f)
    local co = co_create(f)
    return function(...) return rethrow(resume(co, ...)) end
  end,
}
-- The text of an error value. A string is itself; anything else goes through
-- tostring in a coroutine of its own, so that a __tostring that fails,
-- returns no string, recurses or yields still gives a readable text. The
-- __tostring is user code: its call is ended like any other.
local function describe(err)
  local t = type(err)
  if t == "string" then return reline(err) end
  if t ~= "table" and t ~= "userdata" then return tostring(err) end
  local co = co_create(function(v) return tostring(v) end)
  local runner = cur_runner
  cur_runner = nil         -- no slices in here: the value is stringified now
  local ok, text = co_resume(co, err)
  cur_runner = runner
  budget_mod.finish()
  if ok and co_status(co) == "dead" and type(text) == "string" then return reline(text) end
  local why
  if not ok then why = "its __tostring failed: " .. (type(text) == "string" and text or "(a " .. type(text) .. ")")
  elseif co_status(co) ~= "dead" then why = "its __tostring yielded"
  else why = "its __tostring returned a " .. type(text) end
  return "error with a " .. t .. " value (" .. why .. ")"
end

-- table.sort compares in C with LuaJIT's median-of-three quicksort, which
-- some inputs drive to n^2 comparisons: a long sort without a comparator
-- gets one in Lua, which spends steps (and so stops at the budget).
do
  local sort, step = table.sort, budget_mod.step
  local function less(a, b) step(); return a < b end
  base.table.sort = function(t, cmp)
    t = raw_of(t)
    if cmp == nil and type(t) == "table" and #t > 256 then cmp = less end
    return sort(t, cmp)
  end
end
base.getmetatable = function(v)
  if type(v) == "string" then return nil end
  return getmetatable(v)
end
base.load = function(s, name, mode, env)
  if mode ~= nil and mode ~= "t" then return nil, "load: only text mode is allowed" end
  return safe_load(s, name, mode, env)
end
base.loadstring = function(s, name) return safe_load(s, name) end
base.require = sandbox_require
base.print = function(...)
  local t = {}
  for k = 1, select("#", ...) do t[k] = tostring((select(k, ...))) end
  io.stderr:write(table.concat(t, "\t"), "\n")
end
-- log(level, message, fields): a line in the logger's format, with the
-- running processor's stream and component; fields values are stringified.
base.log = function(level, message, fields)
  local kv, keep = {}, {}
  if fields ~= nil then
    if type(fields) ~= "table" then error("log: fields must be a table", 2) end
    for k, v in pairs(fields) do
      keep[#keep + 1] = tostring(k)
      keep[#keep + 1] = type(v) == "table" and encode(v) or tostring(v)
    end
  end
  local arr = ffi.new("const char *[?]", #keep + 1)
  for i = 1, #keep do arr[i - 1] = keep[i] end
  if C.sl_llog(tostring(level), tostring(message), arr) ~= 0 then
    error("log: level must be trace, debug, info, warn or error", 2)
  end
end
base.uuid_v4 = uuid_v4
base.now = now
-- What Lua translated from Bloblang calls (processors/mapping.c); bloblang()
-- loads lua/bloblang.lua's chunk.
LIBS.__bloblang = function()
  return bloblang()(base.json, uuid_v4, now, raw_of, DELETED,
    function(t) return type(t) == "table" and rawget(t, RAW) ~= nil end, base.hash, base.time, base.re)
end
base.deleted = function() return DELETED end
base.content = content
base.batch_index = function()
  need()
  return cur_index
end
base.errored = function()
  local m = need()
  return C.sl_lmsg_error(m) ~= nil
end
base.error_message = function()
  local m = need()
  local p = C.sl_lmsg_error(m)
  return p ~= nil and ffi_string(p) or nil
end
base.env = function(name)
  local v = os.getenv(tostring(name))
  return v
end
base._VERSION = _VERSION

-- ---------- compiling ----------
local scripts = {}       -- id -> {kind, fn | module}
local free_ids = {}

local function register(s)
  local id = table.remove(free_ids)
  if not id then id = #scripts + 1 end
  scripts[id] = s
  return id
end

function M.release(id)
  scripts[id] = nil
  free_ids[#free_ids + 1] = id
end

-- What user code is compiled into: a function (a message's body, an
-- expression's value, or a chunk taking ...) that spends a step on entry. The
-- step function reaches it as an upvalue of the enclosing chunk, never
-- through the environment, so no script can swap it for another.
local SHAPES = {
  inline = {"return function() __sl_step(); ", "\nend"},
  expr = {"return function() __sl_step(); return (", "\n) end"},
  chunk = {"return function(...) __sl_step(); ", "\nend"},
}

-- A syntax error's text may name other lines of the chunk ("to close
-- 'function' at line 2", "function at line 3 has more than ...").
local function reline_compile(err, line)
  local off = (line or 1) - 1
  if off > 0 then err = str_gsub(err, " at line (%d+)", function(n) return " at line " .. (n + off) end) end
  return reline(err)
end

-- User code is instrumented for the step budget, then wrapped; the budget
-- function is a local of the chunk so a step costs a local call.
local budget_step = budget_mod.step
function compile(src, chunk, env, line, shape)
  local head, tail = SHAPES[shape][1], SHAPES[shape][2]
  local name = chunk_name(chunk, line)
  local ok, code = pcall(budget_mod.instrument, src)
  if not ok then
    -- Lua's own parser knows the line of what the instrumenter refused.
    local _, perr = loadstring(head .. src .. tail, name)
    return nil, perr and reline_compile(perr, line) or chunk .. ":" .. (line or 1) .. ": " .. tostring(code)
  end
  local f, err = loadstring("local __sl_step = ...; " .. head .. code .. tail, name)
  if not f then return nil, reline_compile(err, line) end
  setfenv(f, env)
  return f(budget_step)
end

function M.compile_inline(code, chunk, line)
  local fn, err = compile(code, chunk, new_env(), line, "inline")
  if not fn then return nil, err end
  return register({kind = "inline", fn = fn})
end

function M.compile_expr(expr, chunk, line, kind)
  local fn, err = compile(expr, chunk, new_env(), line, "expr")
  if not fn then return nil, err end
  return register({kind = kind, fn = fn})
end

-- Whether every file a module version read (itself first, then what it
-- required) still holds the same text.
local function unchanged(s, src)
  local files = s.req.files
  if files[1][2] ~= src then return false end
  for k = 2, #files do
    if read_file(files[k][1]) ~= files[k][2] then return false end
  end
  return true
end

-- Loads a module file in a fresh environment, running its top level under
-- the step budget. owner (lightuserdata, may be nil) is told of every file
-- required. With prev (the id of the running version), returns prev itself
-- when neither the file nor anything it required has changed. pre: files
-- already read (see preread).
local function compile_module(path, owner, prev, steps)
  local src, ferr = read_file(path)
  if not src then return nil, ferr end
  if prev and unchanged(scripts[prev], src) then return prev end
  local env = new_env()
  local f, err = compile(src, path, env, 1, "chunk")
  if not f then return nil, err end
  local req = {modules = {}, files = {{path, src}}, owner = owner}
  local saved = cur_req
  cur_req = req
  budget_mod.reset(steps or 0)
  local ok, mod = pcall(f)
  local over = budget_mod.finish()
  cur_req = saved
  if ok and over then ok, mod = false, over end
  if not ok then return nil, describe(mod) end
  if type(mod) ~= "table" then mod = env end
  local process, process_batch = rawget(mod, "process"), rawget(mod, "process_batch")
  if type(process) ~= "function" and type(process_batch) ~= "function" then
    return nil, path .. ": a module must define process(msg, ctx) or process_batch(batch, ctx)"
  end
  return register({kind = "module", process = process, process_batch = process_batch, req = req})
end

function M.compile_module(path, owner, prev, steps, pre)
  preread = pre
  local id, err = compile_module(path, owner, prev, steps)
  preread = nil
  return id, err
end

-- ---------- running ----------
local function set_current(m, index)
  cur_msg, cur_msgs, cur_index = m, nil, index
  cur_this, this_loaded, this_dirty, this_exposed, this_set = nil, false, false, false, false
  this_nadded, this_src, cur_deadline = 0, nil, nil
  cur_ctx_cache = nil
end

-- Only new keys were added to the object: the original bytes stay as they
-- are and the new members are encoded and inserted before its closing brace.
-- The message is put together in C (lua/json.c insert), not as a Lua string:
-- messages that differ in a few bytes would all be interned, and LuaJIT's
-- hash of a long string samples a few of its bytes, so they would share one
-- chain (43% of a mapping's time went to comparing them); nor in an FFI
-- buffer written piece by piece, whose pointer arithmetic boxed a cdata per
-- piece where the code ran interpreted (the end of a run of one message).
local append_into
do
  local str_byte = string.byte
  local uintptr = ffi.typeof("uintptr_t")
  local pieces = {}
  -- keys as JSON, by key: a mapping adds the same few keys to every message
  -- (cjson's encode of one was ~800 instructions); bounded for scripts that
  -- add keys made from the data
  local keys, nkeys = {}, 0
  function append_into(m, raw)
    local src = this_src
    local e = #src
    while str_byte(src, e) ~= 125 do e = e - 1 end          -- the closing '}'
    local b = e - 1
    local c = str_byte(src, b)
    while c == 32 or c == 10 or c == 13 or c == 9 do b = b - 1; c = str_byte(src, b) end
    local sep = c ~= 123 and "," or ""                     -- '{': the object was empty
    local n = 0
    for j = 1, this_nadded do
      local k = this_added[j]
      local v = raw[k]
      if v ~= nil and v ~= ABSENT then
        local ke = keys[k]
        if ke == nil then
          ke = json_encode(k)
          if nkeys < 256 then keys[k], nkeys = ke, nkeys + 1 end
        end
        pieces[n + 1], pieces[n + 2] = ke, v
        n = n + 2
      end
    end
    msg_insert(tonumber(ffi_cast(uintptr, m)), src, e - 1, sep, pieces, n)
  end
end

local function encode_into(m, v)
  local s = encode(v)
  C.sl_lmsg_set_content(m, s, #s)
end

-- Apply what an inline script did to the current message; true = keep it.
local function finish_inline(m, ret)
  if ret == DELETED then return false end
  if ret ~= nil then
    local t = type(ret)
    if t == "string" then C.sl_lmsg_set_content(m, ret, #ret)
    elseif t == "table" then encode_into(m, ret)
    elseif t == "number" then local s = tostring(ret); C.sl_lmsg_set_content(m, s, #s)
    else error("script returned a " .. t .. "; return a table, a string, deleted() or nothing", 0) end
    return true
  end
  if this_set then
    local t = type(cur_this)
    if cur_this == DELETED then return false end
    if t == "string" then C.sl_lmsg_set_content(m, cur_this, #cur_this)
    else encode_into(m, cur_this) end
  elseif this_dirty == APPEND and not this_exposed then
    append_into(m, rawget(cur_this, RAW) or rawget(cur_this, VALS))
  elseif this_dirty then
    encode_into(m, cur_this)
  elseif this_exposed then
    -- A nested table was handed out: compare, so unchanged bytes stay exact.
    local raw = raw_of(cur_this)
    if not deep_equal(raw, decode(content())) then encode_into(m, raw) end
  end
  return true
end

-- The text a failed call flags its message with. After "not enough memory"
-- the garbage that caused it is still there; LuaJIT does not collect before
-- failing an allocation, so collect now.
local faillog = nil      -- the running script's rate-limited failure log (C)
local function fail_text(err, n, fn)
  if err == "not enough memory" then budget_mod.collect() end
  -- errors raised by the host itself (say, cjson refusing a cycle) carry no
  -- useful position
  local text = describe(place(err, fn)):gsub('^%[string "lua%.%w+"%]:%d+: ', "")
  if faillog ~= nil then C.sl_lfaillog_note(faillog, text, n or 1) end
  return text
end
local function fail(m, err, fn) C.sl_lmsg_set_error(m, fail_text(err, nil, fn)) end

-- One pcall per batch, not per message: the loop is left by an error and
-- resumed after the failing message, so the happy path stays on one trace.
-- A batch of one message (an HTTP request) takes no loop here: LuaJIT
-- aborts a trace that enters a loop it did not start at ("inner loop in root
-- trace"), and a loop of one turn never gets a trace of its own ("leaving
-- loop in root trace"), so the driver of a one-message batch ran interpreted.
local budget_reset, budget_finish = budget_mod.reset, budget_mod.finish
local inline_loop, run_inline
do
  local function inline_one(fn, msgs, k, seq_base, drop, steps)
    cur_index = k
    cur_this, this_loaded, this_dirty, this_exposed, this_set, cur_ctx_cache = nil, false, false, false, false, nil
    this_nadded, this_src, cur_deadline = 0, nil, nil
    if seq_base ~= 0 then cur_seq = seq_base + k end
    budget_reset(steps)
    local ret = fn()
    local over = budget_finish()
    if over then error(over, 0) end
    if (ret ~= nil or this_loaded or this_set) and not finish_inline(msgs[k], ret) then drop[k] = 1 end
  end
  function inline_loop(fn, msgs, from, n, seq_base, drop, steps)
    -- Nothing a script calls changes these (a slice saves and restores them),
    -- and a message pointer kept in a local across fn() would be boxed for
    -- every message that fn leaves the trace for (a loop, say).
    cur_msg, cur_msgs = nil, msgs
    if from == n - 1 then return inline_one(fn, msgs, from, seq_base, drop, steps) end
    for k = from, n - 1 do
      inline_one(fn, msgs, k, seq_base, drop, steps)
      if cur_detached then return end
    end
  end

  -- After a message failed: flag it, and go on with the next.
  local function failed(s, msgs, n, seq_base, drop, steps, err)
    while true do
      budget_finish()
      fail(msgs[cur_index], err, s.fn)
      if cur_detached then return end
      local from = cur_index + 1
      if from >= n then return end
      local ok
      ok, err = pcall(inline_loop, s.fn, msgs, from, n, seq_base, drop, steps)
      if ok then return end
    end
  end

  function run_inline(s, msgs, from, n, seq_base, drop, steps)
    if from >= n then return end
    local ok, err = pcall(inline_loop, s.fn, msgs, from, n, seq_base, drop, steps)
    if not ok then return failed(s, msgs, n, seq_base, drop, steps, err) end
  end
end

-- Module API: the msg object handed to process(msg, ctx). Its message
-- pointer lives in `live`, a table replaced after every run, so a msg kept
-- past its call (in a global, say) fails cleanly instead of reaching a
-- message the host has already passed on or freed.
local live = {}
local Msg = {__metatable = false}
local function ptr(self)
  local m = live[self]
  if m == nil then
    error("msg is no longer valid: a message lives only during the call that received it", 3)
  end
  return m
end
local function new_msg(m)
  local o = setmetatable({}, Msg)
  live[o] = m
  return o
end

local function meta_set(m, k, v)
  k = tostring(k)
  if v == nil then C.sl_lmsg_meta_del(m, k) return end
  if type(v) == "table" then v = encode(v) else v = tostring(v) end
  C.sl_lmsg_meta_set(m, k, v, #v)
end

-- msg.meta is a metadata proxy bound to that message, made on first use.
local function bound_meta(o)
  return proxy({
    __index = function(_, k)
      local p = C.sl_lmsg_meta_get(ptr(o), tostring(k), len_box)
      return p ~= nil and ffi_string(p, len_box[0]) or nil
    end,
    __newindex = function(_, k, v) meta_set(ptr(o), k, v) end,
  })
end
Msg.__index = function(self, k)
  if k == "meta" then
    local p = bound_meta(self)
    rawset(self, "meta", p)
    return p
  end
  return Msg[k]
end
function Msg:content() local m = ptr(self); return ffi_string(C.sl_lmsg_content(m, len_box), len_box[0]) end
Msg.bytes = Msg.content
function Msg:set_content(s)
  local m = ptr(self)
  s = tostring(s)
  rawset(self, "_json", nil)
  C.sl_lmsg_set_content(m, s, #s)
end
function Msg:json()
  local t = rawget(self, "_json")
  if t == nil then t = decode(self:content()); rawset(self, "_json", t) end
  return t
end
function Msg:set_json(t)
  local m = ptr(self)
  rawset(self, "_json", t)
  encode_into(m, t)
end
function Msg:metadata()
  local saved, saved_msgs = cur_msg, cur_msgs
  cur_msg, cur_msgs = ptr(self), nil
  local t = meta()
  cur_msg, cur_msgs = saved, saved_msgs
  return t
end
function Msg:error()
  local p = C.sl_lmsg_error(ptr(self))
  return p ~= nil and ffi_string(p) or nil
end
function Msg:set_error(e) C.sl_lmsg_set_error(ptr(self), e ~= nil and tostring(e) or nil) end
-- New messages join the run's output only when returned; they need a module run.
local function need_run()
  if cur_run == nil then error("new messages can be made only in a module's process or process_batch", 3) end
end
function Msg:copy()
  local m = ptr(self)
  need_run()
  return new_msg(C.sl_lmsg_clone(cur_run, m))
end
base.new_message = function(content_s)
  need_run()
  content_s = type(content_s) == "table" and encode(content_s) or tostring(content_s or "")
  return new_msg(C.sl_lmsg_new(cur_run, content_s, #content_s))
end

local function is_msg_list(t)
  if #t == 0 then return false end
  for k = 1, #t do
    if live[t[k]] == nil then return false end
  end
  return true
end

-- process() returns the message to keep (itself or another), nil / false /
-- deleted() to drop it, a list of messages to split it, or new content.
local function keep_module_result(run, msg, ret)
  if ret == nil or ret == DELETED or ret == false then return end
  local t = type(ret)
  if t == "table" and live[ret] then msg = ret
  elseif t == "table" and is_msg_list(ret) then
    for j = 1, #ret do C.sl_lrun_keep(run, live[ret[j]], cur_index) end
    return
  elseif t == "string" then C.sl_lmsg_set_content(live[msg], ret, #ret)
  elseif t == "table" then encode_into(live[msg], ret)
  elseif ret ~= true then error("process returned a " .. t, 0) end
  C.sl_lrun_keep(run, live[msg], cur_index)
end

-- Runs fn as one call of the budget: (true, result) or (false, error), an
-- error too when it returned after going over budget.
local function call(steps, fn, a, b)
  budget_reset(steps)
  local ok, ret = pcall(fn, a, b)
  local over = budget_finish()
  if ok and over then return false, over end
  return ok, ret
end

local function keep_failed(run, msgs, n, err, fn)
  local text = fail_text(err, n, fn)
  for k = 0, n - 1 do C.sl_lmsg_set_error(msgs[k], text); C.sl_lrun_keep(run, msgs[k], k) end
end

local function run_module(s, msgs, from, n, run, steps)
  if s.process_batch then
    local batch = {}
    for k = 0, n - 1 do batch[k + 1] = new_msg(msgs[k]) end
    set_current(n > 0 and msgs[0] or nil, 0)
    local ok, ret = call(steps, s.process_batch, batch, ctx)
    if not ok then return keep_failed(run, msgs, n, ret, s.process_batch) end
    local out = ret == nil and batch or ret
    if type(out) ~= "table" then out = {false} end
    for _, msg in ipairs(out) do
      if live[msg] == nil then return keep_failed(run, msgs, n, "process_batch must return nothing or a list of messages") end
    end
    for _, msg in ipairs(out) do C.sl_lrun_keep(run, live[msg], 0) end
    return
  end
  for k = from, n - 1 do
    local msg = new_msg(msgs[k])
    set_current(msgs[k], k)
    local ok, ret = call(steps, s.process, msg, ctx)
    if ok then ok, ret = pcall(keep_module_result, run, msg, ret) end
    if not ok then
      fail(msgs[k], ret, s.process)
      C.sl_lrun_keep(run, msgs[k], k)
    end
    -- a message that waited finished here: the run went on without it
    if cur_detached then return end
  end
end

-- ---------- runs, runners, slices and waits ----------
-- A run is one batch through one script, inside runner coroutines. When the
-- guard asks for a slice, the running coroutine yields (if no C function's
-- callback is in the way) with its state saved, the host returns to the
-- loop, and a later M.resume restores the state and carries on. When a
-- script's call waits (await below, lua/async.h), its coroutine yields WAIT:
-- the driver starts the operation once the run's concurrency group has a
-- slot, parks the coroutine until the host wakes it with the results, and
-- the run goes on with the next message in another runner; the parked
-- coroutine ends with its message. Runners are reused.
local SLICE, DONE = {}, {}
local WOKE, EXPIRED, FAIL, NOT_HERE = {}, {}, {}, {}
local idle_runners = {}
local jobs, next_job = {}, 0     -- the runtime's id of a run -> its job
-- waiter id -> its coroutine; the job it waits for is runners[co] meanwhile
-- (a record per wait was a table). An id is taken again once its wait is
-- over (the host wakes a waiter once at most, and not after its run was
-- dropped): parked stays in its array part, where ever new ids were a new
-- key of its hash part per call.
local parked, wids = {}, {}
do
  local next_wid, free, nfree = 0, {}, 0
  function wids.new()
    if nfree == 0 then
      next_wid = next_wid + 1
      return next_wid
    end
    nfree = nfree - 1
    return free[nfree + 1]
  end
  function wids.unpark(wid)
    parked[wid] = nil
    nfree = nfree + 1
    free[nfree] = wid
  end
end
-- Concurrency groups by their C id, {inflight, q, jobs}, while they have
-- runs: groups.of(gid) finds or makes one, groups.drop(gid) ends it. One
-- request after another (a batch each) would make a group and its queue per
-- run: the records are reused.
local groups = {}
do
  local by_gid, spare, nspare = {}, {}, 0
  function groups.of(gid)
    local g = by_gid[gid]
    if g then return g end
    if nspare > 0 then
      g, spare[nspare], nspare = spare[nspare], nil, nspare - 1
    else
      g = {inflight = 0, q = {}, jobs = 0}
    end
    by_gid[gid] = g
    return g
  end
  function groups.drop(gid)
    local g = by_gid[gid]
    by_gid[gid] = nil
    -- no run left: no call in flight nor waiting for a slot
    if nspare < 16 and g.inflight == 0 and g.q[1] == nil then
      nspare = nspare + 1
      spare[nspare] = g
    end
  end
end
local table_remove, unpack_ = table.remove, unpack
local drop_t = ffi.typeof("uint8_t *")
local budget_pause, budget_expire = budget_mod.pause, budget_mod.expire

-- What a runner resumed the first time runs: set by the driver rather than
-- passed through resume and yield, which copy every value between the stacks.
local job_J, job_from
local function run_next()
  local J, from = job_J, job_from
  faillog, cur_timeout, live, cur_detached = J.log, J.timeout, J.live, false
  local s = J.s
  if s.kind == "module" then
    cur_run, cur_req = J.run, s.req
    run_module(s, J.msgs, from, J.n, J.run, J.steps)
  else
    run_inline(s, J.msgs, from, J.n, J.seq_base, J.drop, J.steps)
  end
end

local function clear_run()
  cur_run, cur_req, faillog, co_depth, cur_detached = nil, nil, nil, 0, false
  -- only module runs hand out msg objects
  if next(live) ~= nil then live = {} end
  set_current(nil, 0)
end

local function runner_main()
  while true do
    local ok, err = pcall(run_next)
    clear_run()
    co_yield(DONE, ok, err)
  end
end

local function take_runner()
  local co = table_remove(idle_runners)
  if not co then
    co = co_create(runner_main)
    runners[co] = true
  end
  return co
end

-- Entries of J.ready: e.co resumes with e[1..5] (nil past what was given),
-- or, when e.from is set, starts the run's loop at that message. Reused: a
-- call made two of them (its run's loop going on, its wake), each a table
-- with two parts. No function on the way from a resume to the next call's
-- start takes a vararg list: LuaJIT starts no trace at a vararg function,
-- so those ran interpreted, and select and unpack each cost a C call there.
local new_entry, free_entry
do
  local pool, npool = {}, 0
  function new_entry(co, from, v1, v2, v3, v4, v5)
    local e
    if npool > 0 then
      e = pool[npool]
      pool[npool], npool = nil, npool - 1
    else
      e = {false, false, false, false, false, co = false, from = false, pooled = true}
    end
    e.co, e.from, e[1], e[2], e[3], e[4], e[5] = co, from, v1, v2, v3, v4, v5
    return e
  end
  function free_entry(e)
    if not e.pooled or npool >= 256 then return end
    e.co, e.from, e[1], e[2], e[3], e[4], e[5] = false, false, nil, nil, nil, nil, nil
    npool = npool + 1
    pool[npool] = e
  end
end

-- J.ready is a deque of coroutines to resume: entries from r.h to r.t - 1.
local function job_ready(J, e, front)
  local r = J.ready
  if front then
    r.h = r.h - 1
    r[r.h] = e
  else
    r[r.t] = e
    r.t = r.t + 1
  end
end

-- A slot of g is free again: it passes to the first call waiting for one.
local function release(g)
  -- nearly always nothing waits: table.remove with a position is not
  -- compiled (a trace stitches around it)
  if g.q[1] == nil then
    g.inflight = g.inflight - 1
    return
  end
  local e = table_remove(g.q, 1)
  e.J.waiting = e.J.waiting - 1
  job_ready(e.J, e)
  async.ready(e.J.cjob)
end

-- Starts a call that holds a slot: the host calls start(waiter, a1, ...,
-- an) and wakes co with what the operation gives (M.wake); with more than
-- four arguments, a1 is the table of them all (see await). Meanwhile the
-- run's loop goes on in another runner (unless process_batch holds the
-- whole batch).
local function begin(J, co, index, what, deadline, start, n, a1, a2, a3, a4)
  if J.loop == co and not J.s.process_batch then
    if index + 1 < J.n then
      J.loop = take_runner()
      job_ready(J, new_entry(J.loop, index + 1), true)
    else
      J.loop = nil
    end
  end
  local left = -1
  if deadline then
    left = deadline - async.now_ms()
    if left <= 0 then
      release(J.group)
      return job_ready(J, new_entry(co, false, EXPIRED), true)
    end
  end
  local wid = wids.new()
  parked[wid], runners[co] = co, J
  J.waiting = J.waiting + 1
  -- async.begin answers what start raised rather than raising it: a C
  -- function called by pcall ends the trace, the rest of the driver then
  -- ran interpreted
  local ok, err
  if n <= 4 then
    ok, err = async.begin(J.cjob, wid, left, start, n, a1, a2, a3, a4)
  else
    local called, started, why = pcall(async.begin, J.cjob, wid, left, start, n, unpack_(a1, 1, n))
    if called then ok, err = started, why else ok, err = false, started end
  end
  if not ok and parked[wid] then
    -- start refused its arguments: the script's call raises the error
    wids.unpark(wid)
    J.waiting = J.waiting - 1
    release(J.group)
    job_ready(J, new_entry(co, false, FAIL, err), true)
  end
end

-- co yielded WAIT for the message at index: the call starts when the
-- group has a slot; until then the run's later messages wait with it.
local function on_wait(J, co, index, what, deadline, start, n, a1, a2, a3, a4)
  local g = J.group
  if g.inflight < J.max then
    g.inflight = g.inflight + 1
    return begin(J, co, index, what, deadline, start, n, a1, a2, a3, a4)
  end
  J.waiting = J.waiting + 1
  g.q[#g.q + 1] = {J = J, co = co, begin = true, index, what, deadline, start, n, a1, a2, a3, a4}
end

-- What a resumed coroutine yielded (DONE, ok, err; SLICE; or WAIT and
-- on_wait's arguments); true when the run must go back to the loop (a slice).
local function yielded(J, co, ok, tag, v1, v2, v3, v4, v5, v6, v7, v8, v9)
  if not ok then error(tag, 0) end
  if tag == DONE then
    if J.loop == co then J.loop = nil end
    idle_runners[#idle_runners + 1] = co
    if not v1 then error(v2, 0) end
    return false
  end
  if tag == SLICE then
    -- first when resumed, so that the time it used before is carried to it
    job_ready(J, new_entry(co, false), true)
    return true
  end
  on_wait(J, co, v1, v2, v3, v4, v5, v6, v7, v8, v9)
  return false
end

-- first: a new run's loop runner, resumed before the queue is looked at
-- (a one-message batch then enters no loop: see inline_one).
local function drive(J, first)
  if first then
    job_J, job_from = J, 0
    local saved = cur_runner
    cur_runner = first
    local ok, tag, v1, v2, v3, v4, v5, v6, v7, v8, v9 = co_resume(first)
    local sliced = yielded(J, first, ok, tag, v1, v2, v3, v4, v5, v6, v7, v8, v9)
    cur_runner = saved
    if sliced then return true end
  end
  local ready = J.ready
  while ready.h < ready.t do
    local e = ready[ready.h]
    ready[ready.h] = nil
    ready.h = ready.h + 1
    local co = e.co
    if e.begin then
      begin(J, co, e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8], e[9])
    else
      if e.from then job_J, job_from = J, e.from end
      local saved = cur_runner
      cur_runner = co
      local ok, tag, v1, v2, v3, v4, v5, v6, v7, v8, v9 = co_resume(co, e[1], e[2], e[3], e[4], e[5])
      local sliced = yielded(J, co, ok, tag, v1, v2, v3, v4, v5, v6, v7, v8, v9)
      cur_runner = saved
      free_entry(e)
      if sliced then return true end
    end
  end
end

-- A run's record, reused: a batch of one message (an HTTP request) built
-- one with its group and first entry, its hash part grown four times, which
-- was a third of what a trivial script cost per request.
local new_job, free_job
do
  local free_jobs, nfree_jobs = {}, 0
  function new_job()
    if nfree_jobs > 0 then
      local J = free_jobs[nfree_jobs]
      free_jobs[nfree_jobs], nfree_jobs = nil, nfree_jobs - 1
      return J
    end
    -- a record keeps its id: jobs[id] then reuses its slot instead of
    -- adding a key (and rehashing) for every run
    next_job = next_job + 1
    return {ready = {h = 1, t = 1}, waiting = 0, s = false, msgs = false, n = 0, seq_base = 0, run = false,
            steps = 0, log = false, drop = false, live = false, timeout = 0, id = next_job, cjob = false, gid = 0,
            max = 1, group = false, loop = false, own = {inflight = 0, q = {}, jobs = 0}}
  end

  function free_job(J)
    if nfree_jobs >= 64 then return end
    local r = J.ready
    for k = r.h, r.t - 1 do r[k] = nil end
    r.h, r.t = 1, 1
    local own = J.own
    own.inflight, own.jobs = 0, 0
    for k = #own.q, 1, -1 do own.q[k] = nil end
    J.waiting, J.s, J.msgs, J.run, J.log, J.drop, J.live, J.cjob, J.group, J.loop = 0, nil, nil, nil, nil, nil, nil, nil, nil, nil
    nfree_jobs = nfree_jobs + 1
    free_jobs[nfree_jobs] = J
  end
end

-- A run's calls and parked coroutines are dropped (its C side cancels the
-- operations): their slots pass on.
local function drop_job(J)
  if J.waiting > 0 then
    for wid, co in pairs(parked) do
      if runners[co] == J then
        wids.unpark(wid)
        release(J.group)
      end
    end
    local q = J.group.q
    for k = #q, 1, -1 do
      if q[k].J == J then table_remove(q, k) end
    end
  end
  jobs[J.id] = nil
  local g = J.group
  g.jobs = g.jobs - 1
  if g.jobs == 0 and J.gid ~= 0 then groups.drop(J.gid) end
  free_job(J)
end

-- Drives J: 0 when its run is done; else its id times 8, plus 4 when it
-- yielded for a slice, 2 while its loop has messages to start, 1 when it has
-- coroutines to resume on a later loop turn. An error escaping the run
-- (memory, a host bug) is raised.
local function step(J, first)
  local ok, sliced = pcall(drive, J, first)
  local err = sliced
  if not ok then
    drop_job(J)
    clear_run()
    error(err, 0)
  end
  local any = J.ready.h < J.ready.t
  if J.loop == nil and J.waiting == 0 and not any then
    drop_job(J)
    return 0
  end
  return J.id * 8 + (sliced and 4 or 0) + (J.loop and 2 or 0) + (any and 1 or 0)
end

-- A run that may not yield (generate's mapping, the lint VM) needs no runner,
-- and its calls cannot wait.
local sync_J = {ready = {}}
do
-- The pointers (addresses as numbers: lua/run.c push_run) as cdata, kept
-- while the host passes the same addresses (a request after another reuses
-- the job, whose drop flags are inline, and often the batch's array). A
-- cdata holds only the address: reusing it for the same address is the same
-- as casting again.
local last_msgs_p, last_msgs, last_drop_p, last_drop
function M.run(id, msgs_p, n, seq_base, run, steps, drop_p, log, may_slice, cjob, gid, max, timeout)
  local J = may_slice and new_job() or sync_J
  if msgs_p ~= last_msgs_p then last_msgs_p, last_msgs = msgs_p, ffi_cast(msgs_t, msgs_p) end
  if drop_p ~= last_drop_p then last_drop_p, last_drop = drop_p, ffi_cast(drop_t, drop_p) end
  J.s, J.msgs, J.n, J.seq_base, J.run, J.steps, J.log = scripts[id], last_msgs, n, seq_base, run, steps, log
  J.drop = last_drop
  J.live, J.timeout = live, timeout or 0
  if not may_slice then
    job_J, job_from = J, 0
    local ok, err = pcall(run_next)
    clear_run()
    J.s, J.msgs, J.run, J.log, J.live = nil, nil, nil, nil, nil
    if not ok then error(err, 0) end
    return 0
  end
  J.cjob, J.gid, J.max = cjob, gid, max > 0 and max or 1
  jobs[J.id] = J
  local g
  if gid == 0 then
    g = J.own
  else
    g = groups.of(gid)
  end
  g.jobs = g.jobs + 1
  J.group = g
  local co = take_runner()
  J.loop = co
  return step(J, co)
end
end

function M.resume(id)
  local J = jobs[id]
  if J == nil then return 0 end
  return step(J)
end

-- The host ends a waiter: kind 0 with the operation's results, 1 when the
-- message's deadline passed first, 2 with an error text (r1). The script's
-- coroutine is resumed with WOKE, how many results, and the first three (or
-- -1 and all of them in a table): a fixed number of values (see await), as
-- the host passes them (lua/async.c).
function M.wake(wid, kind, n, r1, r2, r3)
  local co = parked[wid]
  if co == nil then return end
  local J = runners[co]
  wids.unpark(wid)
  J.waiting = J.waiting - 1
  local e
  if kind == 0 then
    e = new_entry(co, false, WOKE, n, r1, r2, r3)
  else
    e = new_entry(co, false, kind == 1 and EXPIRED or FAIL, r1)
  end
  -- the message goes on before the call its slot passes to starts
  job_ready(J, e)
  release(J.group)
  return true   -- the host readies the job (async.ready is a C function: a trace stitches around it)
end

-- A run that will not be resumed: its coroutines are dropped.
function M.cancel(id)
  local J = jobs[id]
  if J then drop_job(J) end
end

-- Everything a run keeps outside its own stack: saved at a slice or a wait,
-- since other calls run on this VM before it resumes. The records are reused
-- (one per wait was a table and its array). The lists of keys added to this
-- and of live msg objects go with the record only when they hold something;
-- an empty one stays in use, as nothing of it needs keeping.
local save_state, restore_state
do
  local free_st, nfree_st = {}, 0
  local budget_save, budget_restore = budget_mod.save, budget_mod.restore
  function save_state()
    local st
    if nfree_st > 0 then
      st = free_st[nfree_st]
      free_st[nfree_st], nfree_st = nil, nfree_st - 1
    else
      st = {}
    end
    st[1], st[2], st[3], st[4], st[5], st[6] = cur_msg, cur_msgs, cur_index, cur_seq, cur_this, this_loaded
    st[7], st[8], st[9], st[10], st[11], st[12] = this_dirty, this_exposed, this_set, false, this_nadded, this_src
    st[13], st[14], st[15], st[16], st[17] = cur_ctx_cache, cur_run, cur_req, false, faillog
    budget_save(st, 18)
    st[21], st[22], st[23], st[24] = co_depth, cur_detached, cur_deadline, cur_timeout
    if this_nadded > 0 then st[10], this_added = this_added, {} end
    if next(live) ~= nil then st[16], live = live, {} end
    co_depth = 0
    return st
  end
  function restore_state(st)
    cur_msg, cur_msgs, cur_index, cur_seq, cur_this, this_loaded = st[1], st[2], st[3], st[4], st[5], st[6]
    this_dirty, this_exposed, this_set, this_nadded, this_src = st[7], st[8], st[9], st[11], st[12]
    cur_ctx_cache, cur_run, cur_req, faillog = st[13], st[14], st[15], st[17]
    budget_restore(st, 18)
    co_depth, cur_detached, cur_deadline, cur_timeout = st[21], st[22], st[23], st[24]
    if st[10] then this_added = st[10] end
    if st[16] then live = st[16] elseif next(live) ~= nil then live = {} end
    if nfree_st < 256 then
      -- what the record holds must not outlive the message
      st[2], st[5], st[10], st[12], st[13], st[14], st[15], st[16], st[17] = false, false, false, false, false, false,
        false, false, false
      nfree_st = nfree_st + 1
      free_st[nfree_st] = st
    end
  end
end

-- Yields the run for a slice, from the runner or from a script's coroutine
-- (see PASS_ON). A yield fails inside a C function's callback (a gsub
-- replacement, a sort comparator): the run then goes on, bounded by its
-- deadline. Sync calls (checks, interpolations) have no runner.
function take_slice()
  local runner, co = cur_runner, co_running()
  if runner == nil or co == nil then return end
  if co ~= runner then
    if co_depth <= PASS_DEPTH then pcall(co_yield, PASS_ON) end
    return
  end
  local st = save_state()
  pcall(co_yield, SLICE)
  restore_state(st)
end
budget_mod.on_slice = take_slice

-- ---------- waiting calls (lua/async.h) ----------
local function not_here(what)
  return what .. " cannot be called here: only a `lua` processor's script may wait for a call (not a check, "
    .. "an interpolation or a `generate` mapping, nor a C function's callback such as a gsub replacement)"
end
local function expire(level)
  local msg = "deadline exceeded: the message waited longer than its `lua` processor's timeout (" ..
    cur_timeout .. " ms)"
  budget_expire(msg)
  error(msg, level)
end

local enter_wait
do
  -- shapes[binding name](n, r1, r2, r3): what the script's call returns,
  -- made from the binding's results in Lua, where a table constructor runs
  -- compiled after the resume (the table built through the C API, key by
  -- key, cost ~1k instructions more per call).
  local shapes = {}
  -- lua/lhttp.c answers status, body and the headers' proxy, or nil and err
  shapes["http.request"] = function(n, status, body, headers)
    if n == 3 then return {status = status, body = body, headers = headers} end
    return status, body
  end
  -- await(what, start, n, a1, a2, a3, a4): start's n arguments in fixed
  -- places (more than four: a1 is the table of them all); returns how many
  -- results the call gave and the first three (or -1 and a table of all).
  -- Written so that LuaJIT stitches a trace across the yield: it is a plain
  -- call with a fixed number of arguments and of results, one frame above
  -- where the trace starts (after enter_wait's isyieldable), with nothing
  -- before it that leaves the trace. The rest of the script and of the
  -- message then run compiled after the call answers. A pcall around the
  -- yield, the clock through a C function, or a vararg list in it or in its
  -- results kept all of that in the interpreter.
  local co_isyieldable = coroutine.isyieldable
  local ts = ffi.new("sl_timespec_t")
  -- The clock of deadlines (ms, CLOCK_MONOTONIC) through FFI, compiled in
  -- await and in the driver's begin: a C function there ended the trace.
  function async.now_ms()
    C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1e3 + tonumber(ts.tv_nsec) / 1e6
  end
  local now_ms = async.now_ms
  local function await(what, start, n, a1, a2, a3, a4)
    if cur_timeout > 0 then
      local now = now_ms()
      if cur_deadline == nil then cur_deadline = now + cur_timeout
      elseif now >= cur_deadline then expire(4) end
    end
    budget_pause()
    local st = save_state()
    local tag, k, r1, r2, r3 = co_yield(WAIT, cur_index, what, cur_deadline, start, n, a1, a2, a3, a4)
    restore_state(st)
    -- positions: level 3 is the script's line (or the line of lib's module
    -- that called its hook), as enter_wait is the binding's tail call
    if tag == NOT_HERE then error(not_here(what), 3) end
    cur_detached = true
    if tag == WOKE then return k, r1, r2, r3 end
    if tag == EXPIRED then expire(4) end
    error(k, 3)   -- FAIL, err
  end
  -- What a binding's function does (see above), with start's n arguments
  -- as await takes them: a C function's callback cannot yield, so a call
  -- there raises instead. Not a vararg function: the script's frame is
  -- resumed through it, and LuaJIT does not compile a return from a vararg
  -- function to a frame entered before the trace ("NYI: return to lower
  -- frame"): the rest of the script and of the message ran interpreted.
  local function wait(what, start, n, a1, a2, a3, a4)
    if cur_runner == nil or not co_isyieldable() then error(not_here(what), 2) end
    local k, r1, r2, r3 = await(what, start, n, a1, a2, a3, a4)
    local shape = shapes[what]
    if shape ~= nil then return shape(k, r1, r2, r3) end
    -- the operation's results, as many as it gave
    if k == 1 then return r1 end
    if k == 2 then return r1, r2 end
    if k == 3 then return r1, r2, r3 end
    if k == 0 then return end
    return unpack_(r1, 1, r1.n)
  end
  -- The bindings' functions take any number of arguments and tail-call
  -- wait, which leaves no vararg frame below it; more than four go in a
  -- table.
  function enter_wait(what, start, ...)
    local n = select("#", ...)
    if n > 4 then return wait(what, start, n, {...}) end
    local a1, a2, a3, a4 = ...
    return wait(what, start, n, a1, a2, a3, a4)
  end
end

-- A wait inside a script's coroutine passes up to the runner the same way;
-- the inner coroutine is resumed with what the outer one was.
function pass_wait(co, ok, ...)
  if ok then return resumed(co, co_resume(co, ...)) end
  return resumed(co, co_resume(co, NOT_HERE))
end

-- Each binding ("http.request") becomes lib.name in every environment; the
-- lib is copied into each, as the standard ones are.
for name, start in pairs(async.bindings) do
  local lib, fn = name:match("^(%w+)%.([%w_]+)$")
  if base[lib] == nil then
    base[lib] = {}
    LIBS[lib] = true
  end
  if fn:sub(1, 1) == "_" then
    -- a hook of lib's own module, not a script's function (cache.lua's
    -- backends that answer later): its calls name the function that waits
    base[lib][fn](function(what, ...) return enter_wait(what, start, ...) end)
  else
    base[lib][fn] = function(...) return enter_wait(name, start, ...) end
  end
end
if base.http then
  local request = base.http.request
  base.http.get = function(url, opts)
    local t = {}
    if opts ~= nil then for k, v in pairs(opts) do t[k] = v end end
    t.method, t.url = "GET", url
    return request(t)
  end
  base.http.post = function(url, body, opts)
    local t = {}
    if opts ~= nil then for k, v in pairs(opts) do t[k] = v end end
    t.method, t.url, t.body = "POST", url, body
    return request(t)
  end
end

local function stringify(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "nil" then return "null" end
  if t == "table" then return encode(v) end
  return tostring(v)
end

-- Evaluates a check or interpolation part against one message: returns
-- true/false (check) or a string (expr); errors propagate to the caller.
function M.eval(id, m, index, steps)
  local s = scripts[id]
  set_current(ffi_cast("sl_msg_t *", m), index)
  local ok, v = call(steps, s.fn)
  set_current(nil, 0)
  if not ok then error(describe(place(v, s.fn)), 0) end
  if s.kind == "check" then return v ~= nil and v ~= false end
  return stringify(v)
end

-- The names every environment sees, for `sluice doc lua --check` against
-- lua/api.lua: "name", "name." for a table and "name.member" for its keys.
function M.exposed()
  local env = new_env()
  for k in pairs(LIBS) do local _ = env[k] end   -- builds those made on first read
  local out = {}
  for k in pairs(reserved) do out[#out + 1] = k end
  for k, v in pairs(base) do
    if type(v) == "table" then
      out[#out + 1] = k .. "."
      for m in pairs(v) do out[#out + 1] = k .. "." .. m end
    else
      out[#out + 1] = k
    end
  end
  return table.concat(out, "\n")
end

function M.set_lua_path(dirs)
  lua_path = dirs
  modules = {}
end

return M
