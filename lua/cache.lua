-- cache.* for scripts: operations on the named resources of
-- `cache_resources:` (cache/cache.h), shared by every script and processor
-- of the process and kept across reloads. Loaded once per VM by lua/vm.c and
-- handed to lua/runtime.lua, which copies the table into each environment.
-- Errors of the cache come back as values (nil, err); a call the script
-- gets wrong (no such resource, a key that is not a string) raises, which
-- fails the message that is running, never its batch.
local ffi = require("ffi")
ffi.cdef [[
int sl_lcache_op(int op, const char *name, size_t nlen, const char *key, size_t klen, const char *val, size_t vlen,
                 int64_t ttl_ms, int64_t by, const char **out, size_t *olen, int64_t *n);
int64_t sl_lcache_ttl(const char *s);
]]
local C = ffi.C
local ffi_string, tonumber, tostring, type, error = ffi.string, tonumber, tostring, type, error
local out, olen, nbox = ffi.new("const char *[1]"), ffi.new("size_t[1]"), ffi.new("int64_t[1]")
-- sl_cache_op_t and sl_cache_status_t (cache/cache.h), lua/cache.c's own
local GET, SET, ADD, DELETE, INCR = 0, 1, 2, 3, 4
local OK, MISS, EXISTS, ERROR, NO_CACHE, ASYNC = 0, 1, 2, -1, -2, -3
local TTL_DEFAULT = -1

local function arg_string(v, what, fn)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  error("cache." .. fn .. ": " .. what .. " must be a string or a number, not a " .. t, 4)
end

-- nil: the resource's default_ttl; a number of seconds or a duration ("30s"); 0: none.
local function ttl_ms(ttl, fn)
  if ttl == nil then return TTL_DEFAULT end
  -- (a TTL under a millisecond is one: truncated to 0 it would mean none)
  if type(ttl) == "number" and ttl >= 0 and ttl < 1e12 then return ttl > 0 and ttl < 0.001 and 1 or ttl * 1000 end
  if type(ttl) == "string" then
    local ms = C.sl_lcache_ttl(ttl)
    if ms >= 0 then return tonumber(ms) end
  end
  error("cache." .. fn .. ": ttl must be seconds or a duration such as \"30s\", not " .. tostring(ttl), 3)
end

-- A backend that answers later (redis): sl_lcache_op does not start the
-- operation but answers ASYNC, and the call waits for it instead
-- (lua/async.h): wait(what, op, name, key, value, ttl, by), which
-- lua/runtime.lua hands over through M._wait (lua/cache.c's "cache._wait"),
-- returns what the functions below return for the answer's status.
local wait
local M = {}
function M._wait(f)
  wait = f
  M._wait = nil
end

-- One operation: the status, then the C side's results in out/olen/nbox;
-- also the key and value as strings.
local function call(fn, op, name, key, val, ttl, by)
  if type(name) ~= "string" then error("cache." .. fn .. ": the resource's name must be a string", 3) end
  key = arg_string(key, "key", fn)
  local vlen = 0
  if val ~= nil then val = arg_string(val, "value", fn); vlen = #val end
  local rc = C.sl_lcache_op(op, name, #name, key, #key, val, vlen, ttl, by or 0, out, olen, nbox)
  if rc == NO_CACHE then error("cache." .. fn .. ": no cache resource labelled \"" .. name .. "\"", 3) end
  return rc, key, val
end

local function failed()
  return nil, ffi_string(out[0], olen[0])
end

-- cache.get(name, key) -> value, or nil when absent, or nil, err
function M.get(name, key)
  local rc, k = call("get", GET, name, key, nil, TTL_DEFAULT)
  if rc == OK then return ffi_string(out[0], olen[0]) end
  if rc == MISS then return nil end
  if rc == ASYNC then return wait("cache.get", GET, name, k, nil, TTL_DEFAULT, 0) end
  return failed()
end

-- cache.set(name, key, value, ttl?) -> true, or nil, err
function M.set(name, key, value, ttl)
  if value == nil then error("cache.set: value is missing (cache.delete removes a key)", 2) end
  local t = ttl_ms(ttl, "set")
  local rc, k, v = call("set", SET, name, key, value, t)
  if rc == OK then return true end
  if rc == ASYNC then return wait("cache.set", SET, name, k, v, t, 0) end
  return failed()
end

-- cache.add(name, key, value, ttl?) -> true when added, false when the key
-- was there (nothing changed), or nil, err
function M.add(name, key, value, ttl)
  if value == nil then error("cache.add: value is missing", 2) end
  local t = ttl_ms(ttl, "add")
  local rc, k, v = call("add", ADD, name, key, value, t)
  if rc == OK then return true end
  if rc == EXISTS then return false end
  if rc == ASYNC then return wait("cache.add", ADD, name, k, v, t, 0) end
  return failed()
end

-- cache.delete(name, key) -> true when it was there, false when not, or nil, err
function M.delete(name, key)
  local rc, k = call("delete", DELETE, name, key, nil, TTL_DEFAULT)
  if rc == OK then return true end
  if rc == MISS then return false end
  if rc == ASYNC then return wait("cache.delete", DELETE, name, k, nil, TTL_DEFAULT, 0) end
  return failed()
end

-- cache.incr(name, key, by?, ttl?) -> the new value (a missing key counts
-- from 0 and takes ttl; an existing one keeps its expiry), or nil, err
function M.incr(name, key, by, ttl)
  if by == nil then by = 1 end
  if type(by) ~= "number" or by ~= by or by % 1 ~= 0 or by >= 2^63 or by < -2^63 then
    error("cache.incr: by must be an integer", 2)
  end
  local t = ttl_ms(ttl, "incr")
  local rc, k = call("incr", INCR, name, key, nil, t, by)
  if rc == OK then return tonumber(nbox[0]) end
  if rc == ASYNC then return wait("cache.incr", INCR, name, k, nil, t, by) end
  return failed()
end

return M
