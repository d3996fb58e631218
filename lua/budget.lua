-- The per-call step budget. LuaJIT's count hook does not fire inside
-- JIT-compiled traces, so a runaway loop is stopped by source
-- instrumentation instead: a call to the local __sl_step() is inserted after
-- every `do`, `repeat`, `::label::` and function parameter list, on the same
-- line (error line numbers do not move). Each call spends one step.
local B = {}
local left = 0
local error, byte, sub, find = error, string.byte, string.sub, string.find

function B.reset(n) left = n end

function B.step()
  left = left - 1
  if left < 0 then error("instruction budget exceeded", 2) end
end

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
