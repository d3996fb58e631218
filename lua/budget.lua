-- The per-call step budget, and the checks that bound a call from outside
-- (lua/guard.h): LuaJIT's count hook does not fire inside JIT-compiled
-- traces, so user code is instrumented instead: a call to the chunk's local
-- __sl_step() is inserted after every `do`, `repeat`, `::label::` and function
-- parameter list, on the same line (error line numbers do not move), and the
-- compiled chunk starts with one. Each call spends one step; every STRIDE
-- steps the guard is asked whether the call is over its time, whether the C
-- stack runs low, whether the run should yield to the loop, or whether the
-- VM's heap is due for a full collection (lua/vm.c).
local ffi = require("ffi")
ffi.cdef [[
typedef struct sl_lguard_shared { int32_t call, irq_call, irq; } sl_lguard_shared_t;
int sl_lguard_check(void *g);
void sl_lguard_trip(void *g, int irq);
const char *sl_lguard_message(void *g, int irq);
void sl_lvm_collected(void *vm);
]]
local C = ffi.C
local guard_p, vm_p = ...
-- cdata: the JIT does not pass lightuserdata to C. The guard begins with
-- what is shared without a call (lua/guard.h).
local guard, vm = ffi.cast("void *", guard_p), ffi.cast("void *", vm_p)
local sh = ffi.cast("sl_lguard_shared_t *", guard_p)
local tobit = bit.tobit
local B = {}
local error, byte, sub, find, ffi_string = error, string.byte, string.sub, string.find, ffi.string
local collectgarbage = collectgarbage
local IRQ_SLICE, IRQ_DEADLINE, IRQ_BUDGET, IRQ_CSTACK, IRQ_GC = 1, 2, 3, 4, 5
local STRIDE = 16
local left, check_at = 0, 0
local over = nil          -- the error of a call that went over a budget: raised again at every step

-- Called when the run may yield to the loop (set by the runtime).
B.on_slice = function() end

-- A full collection, counted (sluice_lua_gc_full_total).
function B.collect()
  collectgarbage("collect")
  C.sl_lvm_collected(vm)
end

-- A call begins with n steps.
function B.reset(n)
  left, over = n, nil
  check_at = n > STRIDE and n - STRIDE or 0
end

-- error() at level (of the user code as check sees it: check 1, step 2,
-- user 3), or with no position (0).
local function raise(msg, level)
  error(msg, level > 0 and level + 1 or 0)
end

local function stop(irq, level)
  over = ffi_string(C.sl_lguard_message(guard, irq))
  check_at = 1 / 0
  if irq == IRQ_BUDGET then C.sl_lguard_trip(guard, irq) end
  raise(over, level > 0 and level + 1 or 0)
end

local function check(level)
  if over then raise(over, level) end
  if left < 0 then stop(IRQ_BUDGET, level) end
  local irq = C.sl_lguard_check(guard)
  if irq == IRQ_DEADLINE or irq == IRQ_BUDGET then stop(irq, level)
  elseif irq == IRQ_CSTACK then raise(ffi_string(C.sl_lguard_message(guard, irq)), level)
  elseif irq == IRQ_GC then B.collect()
  elseif irq == IRQ_SLICE then B.on_slice() end
  check_at = left > STRIDE and left - STRIDE or 0
end

function B.step()
  left = left - 1
  if left < check_at then check(3) end
end

-- The same checks at once, for host code about to nest a call through C.
function B.check_now() check(0) end

-- Ends the call: the error it must fail with even though it returned (it
-- caught the budget's own error with pcall, say), or nil. Every call ends
-- here, failed or not, so that the next one is timed on its own: the
-- watchdog sees the call's number change. No C call: this runs per message.
function B.finish()
  local call = sh.call
  local irq = sh.irq_call == call and sh.irq or 0
  sh.call = tobit(call + 1)
  if over then return over end
  if irq == IRQ_DEADLINE or irq == IRQ_BUDGET then return ffi_string(C.sl_lguard_message(guard, irq)) end
  if left < 0 then return ffi_string(C.sl_lguard_message(guard, IRQ_BUDGET)) end
  return nil
end

-- A call that waits (lua/async.h): the time until it resumes is not its own,
-- so the watchdog times what runs meanwhile as another call.
function B.pause() sh.call = tobit(sh.call + 1) end
-- The message's deadline passed while it waited: the call fails as over a
-- budget, even if the script catches the error.
function B.expire(msg) over, check_at = msg, 1 / 0 end

-- A run that yields keeps its budget; another call may run meanwhile. Kept
-- in t[i..i+2] of the caller's record: a table per wait was an allocation.
function B.save(t, i) t[i], t[i + 1], t[i + 2] = left, check_at, over end
function B.restore(t, i) left, check_at, over = t[i], t[i + 1], t[i + 2] end

local STEP = " __sl_step();"

-- Position after a long bracket opened at i ("[[", "[==["), or nil.
local function long_bracket_end(src, i)
  local eq = src:match("^%[(=*)%[", i)
  if not eq then return nil end
  local close = "]" .. eq .. "]"
  local s, e = find(src, close, i + #eq + 2, true)
  if not s then error("unfinished long string or comment", 0) end
  return e + 1
end

function B.instrument(src)
  local out, n = {}, 0
  local i, last, len = 1, 1, #src
  local want_paren = false
  local function emit_after(pos)
    n = n + 1; out[n] = sub(src, last, pos - 1)
    n = n + 1; out[n] = STEP
    last = pos
  end
  while i <= len do
    local c = byte(src, i)
    if c == 45 and byte(src, i + 1) == 45 then                       -- comment
      local e = byte(src, i + 2) == 91 and long_bracket_end(src, i + 2)
      if e then i = e else
        local nl = find(src, "\n", i, true)
        i = nl and nl + 1 or len + 1
      end
    elseif c == 34 or c == 39 then                                     -- quoted string
      local j = i + 1
      while true do
        local d = byte(src, j)
        if d == nil or d == 10 then error("unfinished string", 0) end
        if d == 92 then j = j + 2
        elseif d == c then break
        else j = j + 1 end
      end
      i = j + 1
    elseif c == 91 and (byte(src, i + 1) == 91 or byte(src, i + 1) == 61) and long_bracket_end(src, i) then
      i = long_bracket_end(src, i)
    elseif c == 58 and byte(src, i + 1) == 58 then                     -- ::label::
      local e = select(2, find(src, "^::%s*[%a_][%w_]*%s*::", i))
      if e then
        -- A label that ends its block stays last, or `goto continue` would
        -- jump into the scope of the block's locals.
        local nxt = src:match("^%s*([%a_]*)", e + 1)
        if nxt ~= "end" and nxt ~= "until" and nxt ~= "else" and nxt ~= "elseif" and e < len and
           not src:match("^%s*$", e + 1) then emit_after(e + 1) end
        i = e + 1
      else i = i + 2 end
    elseif (c >= 97 and c <= 122) or (c >= 65 and c <= 90) or c == 95 then
      local s, e = find(src, "^[%a_][%w_]*", i)
      local word = sub(src, s, e)
      if sub(word, 1, 5) == "__sl_" then error("names starting with __sl_ are reserved", 0) end
      -- a.do / a:function are not keywords, but those are syntax errors anyway
      if word == "do" or word == "repeat" then emit_after(e + 1)
      elseif word == "function" then want_paren = true end
      i = e + 1
    elseif c >= 48 and c <= 57 then                                    -- number (incl. 1e-5, 0x1p4)
      local _, e = find(src, "^[%w_%.]*", i)
      if byte(src, e) == 101 or byte(src, e) == 69 or byte(src, e) == 112 or byte(src, e) == 80 then
        local _, e2 = find(src, "^[%+%-]?[%w_%.]*", e + 1)
        e = e2
      end
      i = e + 1
    elseif c == 40 and want_paren then                                 -- parameter list
      local close = find(src, ")", i, true)
      if not close then error("unfinished parameter list", 0) end
      want_paren = false
      emit_after(close + 1)
      i = close + 1
    else
      i = i + 1
    end
  end
  n = n + 1; out[n] = sub(src, last)
  return table.concat(out)
end

return B
