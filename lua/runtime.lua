-- The host side of sluice's Lua VM: compiles user code into sandboxed
-- functions, runs them over whole batches through FFI, and evaluates checks
-- and ${! } interpolations. Loaded once per VM by lua/vm.c; user code never
-- sees this module, only the environment it builds.
local ffi = require("ffi")
local cjson = require("cjson")
local budget_mod = ...

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
sl_msg_t *sl_lmsg_clone(void *run, sl_msg_t *m);
sl_msg_t *sl_lmsg_new(void *run, const char *p, size_t len);
void sl_lrun_keep(void *run, sl_msg_t *m);
int sl_uuid_v4(char *out);
int sl_lnow(char *out, size_t cap);
]]

local C = ffi.C
local ffi_string, ffi_cast = ffi.string, ffi.cast
local type, pairs, ipairs, tostring, error, pcall, select = type, pairs, ipairs, tostring, error, pcall, select
local setmetatable, getmetatable, rawget, rawset, setfenv = setmetatable, getmetatable, rawget, rawset, setfenv
local str_sub, str_format, str_find = string.sub, string.format, string.find
local json_decode, json_encode = cjson.decode, cjson.encode
local msgs_t = ffi.typeof("sl_msg_t **")
local len_box = ffi.new("size_t[1]")
local k_box, v_box = ffi.new("const char *[1]"), ffi.new("const char *[1]")
local uuid_buf = ffi.new("char[37]")
local now_buf = ffi.new("char[64]")

local M = {}

-- ---------- per-message state (set by the run loop) ----------
local cur_msg            -- sl_msg_t* being processed
local cur_index = 0      -- 0-based position in the batch
local cur_seq = nil      -- generate's `i`
local cur_this, this_loaded, this_new, this_set = nil, false, false, false
local cur_ctx_cache = nil
local cur_run = nil

local DELETED = setmetatable({}, {__tostring = function() return "deleted()" end, __metatable = false})

local function content() return ffi_string(C.sl_lmsg_content(cur_msg, len_box), len_box[0]) end

-- Writing a new top-level key marks `this` changed without a comparison.
local this_mt = {__newindex = function(t, k, v) this_new = true; rawset(t, k, v) end}

local function load_this()
  this_loaded = true
  local ok, v = pcall(json_decode, content())
  if not ok then error("this: message is not JSON: " .. tostring(v):gsub("^.-: ", ""), 2) end
  if type(v) == "table" then setmetatable(v, this_mt) end
  cur_this = v
  return v
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- ---------- meta, ctx ----------
local meta = setmetatable({}, {
  __index = function(_, k)
    local p = C.sl_lmsg_meta_get(cur_msg, tostring(k), len_box)
    if p == nil then return nil end
    return ffi_string(p, len_box[0])
  end,
  __newindex = function(_, k, v)
    k = tostring(k)
    if v == nil then C.sl_lmsg_meta_del(cur_msg, k) return end
    if type(v) == "table" then v = json_encode(v) else v = tostring(v) end
    C.sl_lmsg_meta_set(cur_msg, k, v, #v)
  end,
  -- meta() gives a plain table copy (for pairs).
  __call = function()
    local t, i = {}, 0
    while C.sl_lmsg_meta_at(cur_msg, i, k_box, v_box, len_box) == 1 do
      t[ffi_string(k_box[0])] = ffi_string(v_box[0], len_box[0])
      i = i + 1
    end
    return t
  end,
  __metatable = false,
})

local CTX_STR = {method = 0, path = 1, remote_addr = 2, request_id = 3, user = 4}
local CTX_LIST = {query = 0, headers = 1, params = 2, cookies = 3, jwt = 4}

local function ctx_list(which)
  local t, i = {}, 0
  while C.sl_lmsg_ctx_kv_at(cur_msg, which, i, k_box, v_box, len_box) == 1 do
    local k, v = ffi_string(k_box[0]), ffi_string(v_box[0], len_box[0])
    if which == 4 then
      local ok, dv = pcall(json_decode, v)
      if ok then v = dv end
    end
    if t[k] == nil then t[k] = v end
    i = i + 1
  end
  return t
end

local ctx = setmetatable({}, {
  __index = function(_, k)
    local s = CTX_STR[k]
    if s then
      local p = C.sl_lmsg_ctx_str(cur_msg, s)
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
  __metatable = false,
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
local modules = {}       -- required modules, per VM
local base = {}          -- what every user environment falls back to
local reserved = {this = true, meta = true, ctx = true, i = true}

-- Library tables are copied into each environment, so a script that
-- changes `string` or `math` changes only its own.
local LIBS = {"string", "table", "math", "bit", "os", "coroutine", "json"}
local function new_env()
  local env = {}
  for _, name in ipairs(LIBS) do env[name] = copy(base[name]) end
  return setmetatable(env, {
    __index = function(_, k)
      if k == "this" then
        if this_set or this_loaded then return cur_this end
        return load_this()
      elseif k == "meta" then return meta
      elseif k == "ctx" then return ctx
      elseif k == "i" then return cur_seq
      end
      return base[k]
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
  return compile(s, name and tostring(name):gsub("^[@=]", "") or "load", env or new_env(), 1, "", "")
end

local function sandbox_require(name)
  if type(name) ~= "string" or str_find(name, "[^%w_%.]") then error("require: bad module name", 2) end
  local m = modules[name]
  if m ~= nil then return m end
  local rel = name:gsub("%.", "/") .. ".lua"
  for _, dir in ipairs(lua_path) do
    local path = dir .. "/" .. rel
    local f = io.open(path, "rb")
    if f then
      local src = f:read("*a")
      f:close()
      local fn, err = safe_load(src, "@" .. path)
      if not fn then error(err, 2) end
      m = fn(name)
      if m == nil then m = true end
      modules[name] = m
      return m
    end
  end
  error(str_format("module '%s' not found in lua_path (%s)", name,
    #lua_path > 0 and table.concat(lua_path, ";") or "lua_path is not set"), 0)
end

base.string = copy(string)
base.string.dump = nil
base.table = copy(table)
base.math = copy(math)
base.bit = copy(bit)
base.os = {time = os.time, clock = os.clock, date = os.date, difftime = os.difftime}
base.coroutine = copy(coroutine)
base.json = {encode = json_encode, decode = json_decode, null = cjson.null}
for _, k in ipairs({"assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring",
  "type", "unpack", "xpcall", "rawequal", "rawget", "rawset", "rawlen", "setmetatable"}) do
  base[k] = _G[k]
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
base.uuid_v4 = uuid_v4
base.now = now
base.deleted = function() return DELETED end
base.content = content
base.batch_index = function() return cur_index end
base.errored = function() return C.sl_lmsg_error(cur_msg) ~= nil end
base.error_message = function()
  local p = C.sl_lmsg_error(cur_msg)
  return p ~= nil and ffi_string(p) or nil
end
base.env = function(name)
  local v = os.getenv(tostring(name))
  return v
end
base._VERSION = _VERSION
base.__sl_budget_step = budget_mod.step

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

-- Line numbers of errors must be those of the YAML (or .lua) file: the code
-- is placed on its real line by prefixing newlines.
local function wrap(code, line, head, tail)
  return head .. string.rep("\n", (line or 1) - 1) .. code .. tail
end

-- User code is instrumented for the step budget, then wrapped; the budget
-- function is a local of the chunk so a step costs a local call.
function compile(src, chunk, env, line, head, tail)
  local ok, code = pcall(budget_mod.instrument, src)
  if not ok then return nil, chunk .. ":" .. (line or 1) .. ": " .. tostring(code) end
  local f, err = loadstring(wrap(code, line, "local __sl_step = __sl_budget_step; " .. head, tail), "@" .. chunk)
  if not f then return nil, err end
  setfenv(f, env)
  return f
end

function M.compile_inline(code, chunk, line)
  local env = new_env()
  local f, err = compile(code, chunk, env, line, "return function() ", "\nend")
  if not f then return nil, err end
  local ok, fn = pcall(f)
  if not ok then return nil, fn end
  return register({kind = "inline", fn = fn})
end

function M.compile_expr(expr, chunk, line, kind)
  local env = new_env()
  local f, err = compile(expr, chunk, env, line, "return function() return (", "\n) end")
  if not f then return nil, err end
  local ok, fn = pcall(f)
  if not ok then return nil, fn end
  return register({kind = kind, fn = fn})
end

function M.compile_module(path)
  local fh, ferr = io.open(path, "rb")
  if not fh then return nil, ferr end
  local src = fh:read("*a")
  fh:close()
  local env = new_env()
  local f, err = compile(src, path, env, 1, "", "")
  if not f then return nil, err end
  local ok, mod = pcall(f)
  if not ok then return nil, mod end
  if type(mod) ~= "table" then mod = env end
  local process, process_batch = rawget(mod, "process"), rawget(mod, "process_batch")
  if type(process) ~= "function" and type(process_batch) ~= "function" then
    return nil, path .. ": a module must define process(msg, ctx) or process_batch(batch, ctx)"
  end
  return register({kind = "module", process = process, process_batch = process_batch})
end

-- ---------- running ----------
local function set_current(m, index)
  cur_msg, cur_index = m, index
  cur_this, this_loaded, this_new, this_set = nil, false, false, false
  cur_ctx_cache = nil
end

local function encode_into(m, v)
  local s = json_encode(v)
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
  elseif this_loaded and type(cur_this) == "table" then
    -- Read-only scripts keep the original bytes; a write is found without re-encoding.
    if this_new or not deep_equal(cur_this, json_decode(content())) then encode_into(m, cur_this) end
  end
  return true
end

-- After "not enough memory" the garbage that caused it is still there; LuaJIT
-- does not collect before failing an allocation, so collect now.
local collectgarbage = collectgarbage
local function fail(m, err)
  if err == "not enough memory" then collectgarbage("collect") end
  C.sl_lmsg_set_error(m, tostring(err))
end

-- One pcall per batch, not per message: the loop is left by an error and
-- resumed after the failing message, so the happy path stays on one trace.
local budget_reset = budget_mod.reset
local function inline_loop(fn, msgs, from, n, seq_base, drop, steps)
  for k = from, n - 1 do
    local m = msgs[k]
    cur_msg, cur_index = m, k
    cur_this, this_loaded, this_new, this_set, cur_ctx_cache = nil, false, false, false, nil
    if seq_base ~= 0 then cur_seq = seq_base + k end
    budget_reset(steps)
    local ret = fn()
    if (ret ~= nil or this_loaded or this_set) and not finish_inline(m, ret) then drop[k] = 1 end
  end
end

local function run_inline(s, msgs, n, seq_base, drop, steps)
  local from = 0
  while from < n do
    local ok, err = pcall(inline_loop, s.fn, msgs, from, n, seq_base, drop, steps)
    if ok then break end
    fail(msgs[cur_index], err)
    from = cur_index + 1
  end
  set_current(nil, 0)
end

-- Module API: the msg object handed to process(msg, ctx).
local Msg = {}
-- msg.meta is a metadata proxy bound to that message, made on first use.
local function bound_meta(m)
  return setmetatable({}, {
    __index = function(_, k)
      local p = C.sl_lmsg_meta_get(m, tostring(k), len_box)
      return p ~= nil and ffi_string(p, len_box[0]) or nil
    end,
    __newindex = function(_, k, v)
      local saved = cur_msg
      cur_msg = m
      meta[k] = v
      cur_msg = saved
    end,
    __metatable = false,
  })
end
Msg.__index = function(self, k)
  if k == "meta" then
    local p = bound_meta(self._m)
    rawset(self, "meta", p)
    return p
  end
  return Msg[k]
end
function Msg:content() return ffi_string(C.sl_lmsg_content(self._m, len_box), len_box[0]) end
Msg.bytes = Msg.content
function Msg:set_content(s)
  s = tostring(s)
  self._json = nil
  C.sl_lmsg_set_content(self._m, s, #s)
end
function Msg:json()
  if self._json == nil then self._json = json_decode(self:content()) end
  return self._json
end
function Msg:set_json(t)
  self._json = t
  encode_into(self._m, t)
end
function Msg:metadata()
  local saved = cur_msg
  cur_msg = self._m
  local t = meta()
  cur_msg = saved
  return t
end
function Msg:error()
  local p = C.sl_lmsg_error(self._m)
  return p ~= nil and ffi_string(p) or nil
end
function Msg:set_error(e) C.sl_lmsg_set_error(self._m, e ~= nil and tostring(e) or nil) end
function Msg:copy() return setmetatable({_m = C.sl_lmsg_clone(cur_run, self._m)}, Msg) end
base.new_message = function(content_s)
  content_s = type(content_s) == "table" and json_encode(content_s) or tostring(content_s or "")
  return setmetatable({_m = C.sl_lmsg_new(cur_run, content_s, #content_s)}, Msg)
end

local function is_msg_list(t)
  if #t == 0 then return false end
  for k = 1, #t do
    if getmetatable(t[k]) ~= Msg then return false end
  end
  return true
end

-- process() returns the message to keep (itself or another), nil / false /
-- deleted() to drop it, a list of messages to split it, or new content.
local function keep_module_result(run, msg, ret)
  if ret == nil or ret == DELETED or ret == false then return end
  local t = type(ret)
  if t == "table" and getmetatable(ret) == Msg then msg = ret
  elseif t == "table" and is_msg_list(ret) then
    for k = 1, #ret do C.sl_lrun_keep(run, ret[k]._m) end
    return
  elseif t == "string" then C.sl_lmsg_set_content(msg._m, ret, #ret)
  elseif t == "table" then encode_into(msg._m, ret)
  elseif ret ~= true then error("process returned a " .. t, 0) end
  C.sl_lrun_keep(run, msg._m)
end

local function run_module(s, msgs, n, run, steps)
  if s.process_batch then
    local batch = {}
    for k = 0, n - 1 do batch[k + 1] = setmetatable({_m = msgs[k]}, Msg) end
    set_current(n > 0 and msgs[0] or nil, 0)
    budget_mod.reset(steps)
    local ok, ret = pcall(s.process_batch, batch, ctx)
    if not ok then
      for k = 0, n - 1 do fail(msgs[k], ret); C.sl_lrun_keep(run, msgs[k]) end
      return
    end
    local out = ret == nil and batch or ret
    for _, msg in ipairs(out) do
      if getmetatable(msg) ~= Msg then
        for k = 0, n - 1 do fail(msgs[k], "process_batch must return a list of messages"); C.sl_lrun_keep(run, msgs[k]) end
        return
      end
    end
    for _, msg in ipairs(out) do C.sl_lrun_keep(run, msg._m) end
    return
  end
  for k = 0, n - 1 do
    local msg = setmetatable({_m = msgs[k]}, Msg)
    set_current(msgs[k], k)
    budget_mod.reset(steps)
    local ok, ret = pcall(s.process, msg, ctx)
    if ok then ok, ret = pcall(keep_module_result, run, msg, ret) end
    if not ok then
      fail(msgs[k], ret)
      C.sl_lrun_keep(run, msgs[k])
    end
  end
end

local drop_t = ffi.typeof("uint8_t *")
function M.run(id, msgs_p, n, seq_base, run, steps, drop_p)
  local s = scripts[id]
  local msgs = ffi_cast(msgs_t, msgs_p)
  cur_run = run
  if s.kind == "module" then run_module(s, msgs, n, run, steps)
  else run_inline(s, msgs, n, seq_base, ffi_cast(drop_t, drop_p), steps) end
  cur_run = nil
  set_current(nil, 0)
end

local function stringify(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "nil" then return "null" end
  if t == "table" then return json_encode(v) end
  return tostring(v)
end

-- Evaluates a check or interpolation part against one message: returns
-- true/false (check) or a string (expr); errors propagate to the caller.
function M.eval(id, m, index, steps)
  local s = scripts[id]
  set_current(ffi_cast("sl_msg_t *", m), index)
  budget_mod.reset(steps)
  local ok, v = pcall(s.fn)
  set_current(nil, 0)
  if not ok then error(v, 0) end
  if s.kind == "check" then return v ~= nil and v ~= false end
  return stringify(v)
end

function M.set_lua_path(dirs)
  lua_path = dirs
  modules = {}
end

return M
