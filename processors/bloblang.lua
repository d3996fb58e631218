-- Bloblang to Lua, for the `mapping`, `mutation` and `bloblang` processors
-- (processors/mapping.c runs this in a Lua state of its own when a config
-- is built). The Lua keeps the mapping's line numbers: each statement's code
-- starts on the line its Bloblang starts on, so that errors name the config
-- file's lines. It calls lua/bloblang.lua (`__bloblang`) for Bloblang's
-- values: null and missing fields, typed errors, copies, methods.
-- translate(src, mode, ctxref) -> lua | nil, line, col, message
-- (ctxref: core/ctxref.c's reader of request-context references)
local M = {}

-- Functions the translation knows: name -> Lua (args appended).
local FUNCTIONS = {
  uuid_v4 = {"B.uuid_v4(", 0}, now = {"B.now(", 0}, deleted = {"B.DELETED", 0, const = true},
  nothing = {"B.NOTHING", 0, const = true}, timestamp_unix = {"B.timestamp_unix(", 0},
  timestamp_unix_nano = {"B.timestamp_unix_nano(", 0}, nanoid = {"B.nanoid(", 2},
  env = {"env(", 1}, content = {"content(", 0}, batch_index = {"batch_index(", 0},
  error = {"error_message(", 0}, errored = {"errored(", 0}, range = {"B.range(", 2}, throw = {"B.throw(", 1},
  meta = {"B.meta_get(meta, ", 1}, metadata = {"B.meta_get(meta, ", 1}, random_int = {"math.random(0, 2147483647", 0},
}

-- Methods lua/bloblang.lua implements (B.call checks arity at run time).
local METHODS = {}
for name in ([[string number bool type not_null not_empty uppercase lowercase capitalize trim trim_prefix trim_suffix
  has_prefix has_suffix replace_all replace split contains length keys values map_each filter exists merge without
  append join index slice sum abs floor ceil round sort unique parse_json format_json encode decode ts_unix
  ts_unix_milli ts_unix_nano ts_format ts_strftime ts_parse format from_all enumerated fold hash re_match re_replace_all re_find_all re_find_all_submatch
  escape_html unescape_html]]):gmatch("%S+") do
  METHODS[name] = true
end
-- Parameter names, in order, for named arguments (`.replace_all(old: "a",
-- new: "b")`), as Benthos v4.27 declares them (`?`: optional); a name not
-- listed takes none.
local PARAMS, OPTIONAL = {}, {}
for spec in ([[number:default? bool:default? trim:cutset? trim_prefix:prefix trim_suffix:suffix has_prefix:value
  has_suffix:value replace_all:old,new replace:old,new split:delimiter contains:value map_each:query filter:test
  exists:path merge:with join:delimiter? index:index slice:low,high? sort:compare? unique:emit?
  parse_json:use_number? format_json:indent?,no_indent? encode:scheme decode:scheme ts_format:format?,tz?
  ts_strftime:format,tz? ts_parse:format fold:initial,query hash:algorithm,key?,polynomial? re_match:pattern
  re_replace_all:pattern,value re_find_all:pattern re_find_all_submatch:pattern catch:fallback or:fallback
  apply:mapping f.nanoid:length?,alphabet? f.env:name,no_cache? f.range:start,stop,step? f.throw:why f.meta:key?
  f.metadata:key? f.random_int:seed?,min?,max? f.json:path?]]):gmatch("%S+") do
  local name, list = spec:match("^([%w_.]+):(.*)$")
  local names = {}
  for n in list:gmatch("[^,]+") do
    local bare = n:gsub("%?$", "")
    names[#names + 1] = bare
    if bare ~= n then OPTIONAL[name .. "." .. bare] = true end
  end
  PARAMS[name] = names
end

-- Methods whose argument is a query run per element, with `this` the element
-- (a number: only that argument is).
local LAMBDA = {map_each = true, filter = true, sort = true, fold = 2}

-- ---------- lexer ----------

local function lexer(src)
  local toks, i, line, col0 = {}, 1, 1, 0
  local function err(msg, at)
    error({line = line, col = (at or i) - col0, msg = msg}, 0)
  end
  local function push(t, v, start)
    toks[#toks + 1] = {t = t, v = v, line = line, col = start - col0}
  end
  local n = #src
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      push("nl", nil, i)
      line, col0 = line + 1, i
      i = i + 1
    elseif c == " " or c == "\t" or c == "\r" then
      i = i + 1
    elseif c == "#" then
      local e = src:find("\n", i, true) or n + 1
      i = e
    elseif src:sub(i, i + 2) == '"""' then
      local e = src:find('"""', i + 3, true)
      if not e then err("unterminated triple-quoted string") end
      local s = src:sub(i + 3, e - 1)
      push("str", s, i)
      for _ in s:gmatch("\n") do line = line + 1 end
      local last = s:match(".*()\n")
      if last then col0 = i + 3 + last - 1 end
      i = e + 3
    elseif c == '"' then
      local j, out = i + 1, {}
      while true do
        local ch = src:sub(j, j)
        if ch == "" or ch == "\n" then err("unterminated string", i) end
        if ch == '"' then break end
        if ch == "\\" then
          local e = src:sub(j + 1, j + 1)
          local map = {n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f"}
          if map[e] then
            out[#out + 1] = map[e]
            j = j + 2
          elseif e == "u" then
            local hex = src:sub(j + 2, j + 5)
            if not hex:match("^%x%x%x%x$") then err("bad \\u escape", j) end
            local cp = tonumber(hex, 16)
            if cp < 0x80 then out[#out + 1] = string.char(cp)
            elseif cp < 0x800 then out[#out + 1] = string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
            else out[#out + 1] = string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64) end
            j = j + 6
          else
            err("unknown escape \\" .. e, j)
          end
        else
          out[#out + 1] = ch
          j = j + 1
        end
      end
      push("str", table.concat(out), i)
      i = j + 1
    elseif c:match("%d") then
      local s = src:match("^%d+%.?%d*[eE]?[-+]?%d*", i)
      -- "1.foo" is not a number followed by a method on this grammar's paths
      if s:sub(-1) == "." then s = s:sub(1, -2) end
      push("num", tonumber(s), i)
      i = i + #s
    elseif c:match("[%a_]") then
      local s = src:match("^[%w_]+", i)
      push("id", s, i)
      i = i + #s
    else
      local two = src:sub(i, i + 1)
      if two == "==" or two == "!=" or two == "<=" or two == ">=" or two == "&&" or two == "||" or two == "->"
        or two == "=>" then
        push("op", two, i)
        i = i + 2
      elseif ("=+-*/%<>!|.,:()[]{}@$"):find(c, 1, true) then
        push("op", c, i)
        i = i + 1
      else
        err("unexpected character " .. string.format("%q", c))
      end
    end
  end
  push("eof", nil, i)
  return toks
end

-- ---------- parser and code generation ----------

local P = {}
P.__index = P

function P:peek(k) return self.toks[self.pos + (k or 0)] end
function P:next()
  local t = self.toks[self.pos]
  self.pos = self.pos + 1
  return t
end
function P:fail(msg, t)
  t = t or self:peek()
  error({line = t.line, col = t.col, msg = msg, file = self.file}, 0)
end
function P:is(v, k)
  local t = self:peek(k)
  return t.t == "op" and t.v == v or t.t == "id" and t.v == v
end
function P:expect(v, what)
  local t = self:peek()
  if not self:is(v) then
    self:fail("expected " .. (what or ("'" .. v .. "'")) .. ", got " .. (t.v and ("'" .. tostring(t.v) .. "'") or t.t))
  end
  return self:next()
end
function P:skip_nl()
  while self:peek().t == "nl" do self:next() end
end
function P:uses_this() self.nthis = self.nthis + 1 end

local function lua_str(s) return string.format("%q", s):gsub("\\\n", "\\n") end

-- A context (`this`) is a Lua expression: the message at the top level, an
-- element inside map_each/filter, a match's subject.
function P:ctx() return self.ctxs[#self.ctxs] end

local PREC = {["|"] = 1, ["||"] = 2, ["&&"] = 3, ["=="] = 4, ["!="] = 4, ["<"] = 5, ["<="] = 5, [">"] = 5,
  [">="] = 5, ["+"] = 6, ["-"] = 6, ["*"] = 7, ["/"] = 7, ["%"] = 7}
local BIN = {["+"] = "B.add", ["-"] = "B.sub", ["*"] = "B.mul", ["/"] = "B.div", ["%"] = "B.mod",
  ["=="] = "B.eq", ["!="] = "B.ne", ["<"] = "B.lt", ["<="] = "B.le", [">"] = "B.gt", [">="] = "B.ge"}

function P:expr(min)
  min = min or 1
  local left = self:unary()
  while true do
    local t = self:peek()
    local p = t.t == "op" and PREC[t.v]
    if not p or p < min then break end
    self:next()
    self:skip_nl()
    local right = self:expr(p + 1)
    if t.v == "|" then
      left = "B.coalesce(function() return " .. left .. " end, function() return " .. right .. " end)"
    elseif t.v == "&&" then
      left = "(B.bool(" .. left .. ") and B.bool(" .. right .. "))"
    elseif t.v == "||" then
      left = "(B.bool(" .. left .. ") or B.bool(" .. right .. "))"
    else
      left = BIN[t.v] .. "(" .. left .. ", " .. right .. ")"
    end
  end
  return left
end

function P:unary()
  if self:is("!") then
    self:next()
    return "B.no(" .. self:unary() .. ")"
  elseif self:is("-") then
    self:next()
    return "B.neg(" .. self:unary() .. ")"
  end
  return self:postfix(self:primary())
end

-- .field, .0, .method(args), .(query)
function P:postfix(e)
  while self:is(".") do
    self:next()
    local t = self:peek()
    if t.t == "id" and self:is("(", 1) then
      self:next()
      self:next()
      e = self:method(t, e)
    elseif t.t == "id" or t.t == "num" or t.t == "str" then
      self:next()
      e = "B.get(" .. e .. ", " .. lua_str(tostring(t.v)) .. ")"
    elseif self:is("(") then
      self:next()
      self:skip_nl()
      local var = self:fresh()
      self.ctxs[#self.ctxs + 1] = var
      local q = self:expr()
      self.ctxs[#self.ctxs] = nil
      self:skip_nl()
      self:expect(")")
      e = "(function(" .. var .. ") return " .. q .. " end)(" .. e .. ")"
    else
      self:fail("expected a field or method after '.'")
    end
  end
  return e
end

function P:fresh()
  self.nvars = self.nvars + 1
  return "C" .. self.nvars
end

-- A method's argument: a query (with `this` the element) or a lambda `x -> q`.
function P:lambda_arg()
  local var = self:fresh()
  if self:peek().t == "id" and self:is("->", 1) then
    local name = self:next().v
    self:next()
    self.vars[#self.vars + 1] = {name, var}
    local q = self:expr()
    self.vars[#self.vars] = nil
    return "function(" .. var .. ") return " .. q .. " end"
  end
  self.ctxs[#self.ctxs + 1] = var
  local q = self:expr()
  self.ctxs[#self.ctxs] = nil
  return "function(" .. var .. ") return " .. q .. " end"
end

-- Arguments up to `)`: positional, or all named (`name: value`, as
-- Bloblang has it: not mixed), placed by the parameter names of `params`
-- (what is left out is nil, the parameter's default).
function P:args(lambda, params, what, key)
  local out, named, n = {}, nil, 0
  self:skip_nl()
  while not self:is(")") do
    if n > 0 then
      self:expect(",")
      self:skip_nl()
    end
    n = n + 1
    local at = self:peek()
    local is_named = at.t == "id" and self:is(":", 1)
    if named == nil then named = is_named
    elseif named ~= is_named then self:fail("cannot mix named and unnamed arguments", at) end
    local pos = n
    if is_named then
      pos = nil
      for k, p in ipairs(params or {}) do
        if p == at.v then pos = k end
      end
      if not pos then
        self:fail(string.format("%s has no parameter named %s%s", what or "this call", at.v,
          params and #params > 0 and " (it takes " .. table.concat(params, ", ") .. ")" or " (it takes none)"), at)
      end
      if out[pos] then self:fail("the parameter " .. at.v .. " is given twice", at) end
      self:next()
      self:next()
      self:skip_nl()
    end
    local is_lambda = lambda == true or lambda == pos
    out[pos] = is_lambda and self:lambda_arg() or self:expr()
    self:skip_nl()
  end
  self:next()
  local last = 0
  for k in pairs(out) do
    if k > last then last = k end
  end
  for k = 1, (named and #params or last) do
    if named and not out[k] and not OPTIONAL[key .. "." .. params[k]] then
      self:fail("missing parameter " .. params[k] .. " of " .. what)
    end
  end
  for k = 1, last do out[k] = out[k] or "nil" end
  return out
end

function P:method(t, recv)
  local name = t.v
  local what = name .. "()"
  if name == "catch" or name == "or" then
    local a = self:args(nil, PARAMS[name], what, name)
    if #a ~= 1 then self:fail(name .. " takes one argument", t) end
    return (name == "catch" and "B.catch" or "B.coalesce") .. "(function() return " .. recv ..
      " end, function() return " .. a[1] .. " end)"
  end
  if name == "apply" then   -- a `map` of this mapping, with `this` the receiver
    local a = self:args(nil, PARAMS.apply, what, "apply")
    if #a ~= 1 then self:fail("apply takes the name of a map", t) end
    return "B.apply(MAPS, " .. recv .. ", " .. a[1] .. ")"
  end
  if not METHODS[name] then
    self:fail("the Bloblang method " .. name .. "() is not translated to Lua yet: write this mapping as a `lua` " ..
      "processor (docs/bloblang.md lists what is)", t)
  end
  local a = self:args(LAMBDA[name], PARAMS[name], what, name)
  return "B.call(" .. lua_str(name) .. ", " .. recv .. (#a > 0 and ", " .. table.concat(a, ", ") or "") .. ")"
end

-- The message itself (`this` at the top) is the sandbox's change-tracking
-- view of it: B.* take it as it is, a literal that holds it gets the table.
function P:value()
  local e = self:expr()
  if e == "this" then return "B.raw(this)" end
  return e
end

-- A name in a query: a lambda's parameter, a field of the context, or a
-- function call.
function P:primary()
  local t = self:next()
  if t.t == "num" then
    return string.format("%.17g", t.v)
  elseif t.t == "str" then
    return self:literal(t)
  elseif t.t == "op" then
    if t.v == "(" then
      self:skip_nl()
      local e = self:expr()
      self:skip_nl()
      self:expect(")")
      return e
    elseif t.v == "[" then
      return "B.array_of(" .. table.concat(self:list("]", self.value), ", ") .. ")"
    elseif t.v == "{" then
      return self:object()
    elseif t.v == "@" then
      local k = self:peek()
      if k.t == "id" or k.t == "str" then
        self:next()
        return "B.meta_get(meta, " .. lua_str(k.v) .. ")"
      end
      return "B.meta_all(meta)"
    elseif t.v == "$" then
      local k = self:expect_id("a variable name")
      return "V[" .. lua_str(k.v) .. "]"
    end
    self:fail("unexpected '" .. t.v .. "'", t)
  elseif t.t == "id" then
    local v = t.v
    if v == "true" or v == "false" then return v end
    if v == "null" then return "B.null" end
    if v == "this" then
      if #self.ctxs == 1 then self:uses_this() end
      return self:ctx()
    end
    if v == "root" then return "R" end
    if v == "if" then return self:if_expr(t) end
    if v == "match" then return self:match_expr(t) end
    for k = #self.vars, 1, -1 do
      if self.vars[k][1] == v then return self.vars[k][2] end
    end
    if v == "json" and self:is("(") then   -- a field of the message as it came in
      self:next()
      self:uses_this()
      return "B.json(" .. self.ctxs[1] .. (function(a) return #a > 0 and ", " .. a[1] or "" end)(self:args(nil, PARAMS["f.json"], "json()", "f.json")) .. ")"
    end
    if self:is("(") then
      self:next()
      local f = FUNCTIONS[v]
      if not f then
        self:fail("the Bloblang function " .. v .. "() is not translated to Lua yet: write this mapping as a `lua` " ..
          "processor (docs/bloblang.md lists what is)", t)
      end
      local a = self:args(nil, PARAMS["f." .. v], v .. "()", "f." .. v)
      if f.const then return f[1] end
      return f[1] .. table.concat(a, ", ") .. ")"
    end
    -- a bare name is a field of the context: `foo.bar` is `this.foo.bar`
    if #self.ctxs == 1 then self:uses_this() end
    return "B.get(" .. self:ctx() .. ", " .. lua_str(v) .. ")"
  elseif t.t == "nl" then
    self:fail("expected a value, got the end of the line", t)
  end
  self:fail("expected a value, got " .. t.t, t)
end

-- A string literal. Tyk's `$tyk_context.request_data_user` (and `${ctx.user}`)
-- inside one is the request's value, as Tyk substitutes it per request; in
-- a request-scoped stream the loader has put the value there already.
function P:literal(t)
  local s = t.v
  if not (s:find("$tyk_context.", 1, true) or s:find("${ctx.", 1, true)) then return lua_str(s) end
  local parts, at = {}, 0
  while true do
    local rc, a, b, what, def = self.ctxref(s, at)
    if rc < 0 then self:fail("not a request-context reference in " .. string.format("%q", s), t) end
    if rc == 0 then break end
    if a > at then parts[#parts + 1] = lua_str(s:sub(at + 1, a)) end
    parts[#parts + 1] = "B.ctx(ctx, " .. lua_str(what) .. (def and ", " .. lua_str(def) or "") .. ")"
    at = b
  end
  if at < #s then parts[#parts + 1] = lua_str(s:sub(at + 1)) end
  return "(" .. table.concat(parts, " .. ") .. ")"
end

function P:expect_id(what)
  local t = self:next()
  if t.t ~= "id" then self:fail("expected " .. what, t) end
  return t
end

-- Items up to `close`, comma separated (a trailing comma allowed), each
-- read by item(self); the closing token is consumed.
function P:list(close, item)
  local items = {}
  self:skip_nl()
  while not self:is(close) do
    if #items > 0 then
      self:expect(",")
      self:skip_nl()
      if self:is(close) then break end
    end
    items[#items + 1] = item(self)
    self:skip_nl()
  end
  self:next()
  return items
end

-- "key": value, key: value or (query): value; its Lua key and value, and
-- the key's text when it is a constant.
function P:field()
  local k = self:peek()
  local key, name
  if k.t == "str" or k.t == "id" then
    self:next()
    key, name = lua_str(k.v), k.v
  elseif self:is("(") then
    key = "B.text(" .. self:primary() .. ")"
  else
    self:fail("expected a key (a quoted string)")
  end
  self:skip_nl()
  self:expect(":")
  self:skip_nl()
  return {key = key, name = name, value = self:value()}
end

-- An object literal. One whose keys are distinct constants is remembered
-- (self.objects, by its code): a merge of it into the message sets its keys
-- one by one, without building it.
function P:object()
  local fields = self:list("}", self.field)
  local items, seen, pairs_ = {}, {}, {}
  for i, f in ipairs(fields) do
    items[i] = "[" .. f.key .. "] = " .. f.value
    if pairs_ and f.name and not seen[f.name] then
      seen[f.name] = true
      pairs_[#pairs_ + 1] = f.key .. ", " .. f.value
    else
      pairs_ = nil
    end
  end
  local code = "B.object({" .. table.concat(items, ", ") .. "})"
  if pairs_ and #pairs_ > 0 then self.objects[code] = table.concat(pairs_, ", ") end
  return code
end

-- if c { a } else if c2 { b } else { c }, as a value (nothing without else)
function P:if_expr()
  local parts = {"(function() "}
  while true do
    local c = self:expr()
    parts[#parts + 1] = "if B.bool(" .. c .. ", ' in if') then return "
    self:skip_nl()
    self:expect("{")
    self:skip_nl()
    parts[#parts + 1] = self:expr()
    self:skip_nl()
    self:expect("}")
    if self:is("else") then
      self:next()
      if self:is("if") then
        self:next()
        parts[#parts + 1] = " else"
      else
        self:skip_nl()
        self:expect("{")
        self:skip_nl()
        parts[#parts + 1] = " else return " .. self:expr()
        self:skip_nl()
        self:expect("}")
        parts[#parts + 1] = " end return B.NOTHING end)()"
        return table.concat(parts)
      end
    else
      parts[#parts + 1] = " end return B.NOTHING end)()"
      return table.concat(parts)
    end
  end
end

-- match subject { pattern => value, ... }: a literal pattern is compared with
-- the subject, another query is a condition with `this` the subject; `_`
-- matches anything. Without a subject each pattern is a condition.
function P:match_expr()
  local var = self:fresh()
  local subject
  if not self:is("{") then subject = self:expr() end
  self:skip_nl()
  self:expect("{")
  local parts = {"(function(" .. var .. ") "}
  self:skip_nl()
  local first = true
  while not self:is("}") do
    local pt = self:peek()
    local cond
    if pt.t == "id" and pt.v == "_" then
      self:next()
      cond = "true"
    elseif subject and (pt.t == "str" or pt.t == "num" or (pt.t == "id" and (pt.v == "true" or pt.v == "false"
      or pt.v == "null"))) and self:is("=>", 1) then
      cond = "B.eq(" .. var .. ", " .. self:primary() .. ")"
    else
      if subject then self.ctxs[#self.ctxs + 1] = var end
      cond = "B.bool(" .. self:expr() .. ", ' in match')"
      if subject then self.ctxs[#self.ctxs] = nil end
    end
    self:skip_nl()
    self:expect("=>")
    self:skip_nl()
    if subject then self.ctxs[#self.ctxs + 1] = var end
    local value = self:expr()
    if subject then self.ctxs[#self.ctxs] = nil end
    parts[#parts + 1] = (first and "if " or " elseif ") .. cond .. " then return " .. value
    first = false
    self:skip_nl()
    if self:is(",") then self:next() end
    self:skip_nl()
  end
  self:next()
  parts[#parts + 1] = (first and "" or " end") .. " return B.NOTHING end)(" .. (subject or "nil") .. ")"
  return table.concat(parts)
end

-- ---------- statements ----------

-- The left side of an assignment: root[.path], this.path (an alias of root
-- in assignments), a bare path, or meta KEY.
function P:target()
  local t = self:peek()
  if t.t == "id" and t.v == "meta" and not self:is("(", 1) then
    self:next()
    local k = self:peek()
    if k.t == "id" or k.t == "str" then
      self:next()
      return {meta = k.v}
    end
    if k.t == "op" and k.v == "=" then return {meta_all = true} end
    self:fail("expected a metadata key or '=' after meta", k)
  end
  local path = {}
  if t.t == "id" and (t.v == "root" or t.v == "this") then
    self:next()
  elseif t.t ~= "id" and t.t ~= "str" then
    self:fail("expected an assignment (root.field = ...), let, meta or if")
  else
    path[1] = self:next().v
  end
  while self:is(".") do
    self:next()
    local s = self:next()
    if s.t ~= "id" and s.t ~= "str" and s.t ~= "num" then self:fail("expected a field name after '.'", s) end
    path[#path + 1] = tostring(s.v)
  end
  return {path = path}
end

function P:statement(out)
  local t = self:peek()
  if t.t == "id" and t.v == "let" then
    self:next()
    local name = self:peek()
    if name.t ~= "id" and name.t ~= "str" then self:fail("expected a variable name after let") end
    self:next()
    self:expect("=")
    self:skip_nl()
    out[#out + 1] = "V[" .. lua_str(name.v) .. "] = " .. self:expr()
  elseif t.t == "id" and t.v == "if" and self:block_if() then
    self:next()
    self:if_statement(out)
  elseif t.t == "id" and t.v == "map" and #self.ctxs == 1 then
    self:map_definition(out)
  elseif t.t == "id" and t.v == "import" and #self.ctxs == 1 then
    self:import()
  elseif t.t == "id" and (t.v == "map" or t.v == "import") then
    self:fail("`" .. t.v .. "` is only allowed at the top of a mapping, not inside a block", t)
  elseif t.t == "id" and t.v == "from" then
    self:fail("`from` must be the mapping's only statement", t)
  elseif t.t == "id" and t.v == "match" and not self:is("=", 1) then
    -- Benthos v4.27's blobl refuses `match x { ... }` standing alone too
    self:fail("match is a value, not a statement (Benthos refuses it too): assign it, root = match ... { }", t)
  else
    local target = self:target()
    self:expect("=", "'=' (an assignment)")
    self:skip_nl()
    if self:is("if") and not target.meta and not target.meta_all then
      -- `root = if c { v }`: the assignment in each branch, without a
      -- closure per message (a branch that is not taken assigns nothing)
      self:next()
      self:assign_if(out, target)
      return
    end
    local value = self:expr()
    if target.meta_all then
      out[#out + 1] = "B.meta_replace(meta, " .. value .. ")"
    elseif target.meta then
      out[#out + 1] = "B.meta_set(meta, " .. lua_str(target.meta) .. ", " .. value .. ")"
    else
      local keys = {}
      for k, s in ipairs(target.path) do keys[k] = lua_str(s) end
      -- A value read from the message is copied when the mapping reads the
      -- message again later (root's changes must not show through `this`).
      local rest = #keys == 0 and "" or ", " .. table.concat(keys, ", ")
      out[#out + 1] = "R = B.set(R, " .. value .. rest .. ")"
      local r = {out = out, i = #out, n = self.nthis, copied = "R = B.set(R, B.copy(" .. value .. ")" .. rest .. ")"}
      -- `root = this` (or `this.merge(...)`) first: when the mapping reads the
      -- message no more, root is the message itself, changed in place, so
      -- that the lua processor appends new keys to its bytes.
      if #keys == 0 and #self.roots == 0 then
        if value == "this" then
          r.in_place = "R = this"
        else
          local arg = value:match('^B%.call%("merge", this, (.*)%)$')
          if arg and self.objects[arg] then r.in_place = "R = B.merge_fields(this, " .. self.objects[arg] .. ")"
          elseif arg then r.in_place = "R = B.merge_into(this, " .. arg .. ")" end
        end
      end
      self.roots[#self.roots + 1] = r
    end
  end
end

function P:assign_value(out, target, value)
  local keys = {}
  for k, s in ipairs(target.path) do keys[k] = lua_str(s) end
  local rest = #keys == 0 and "" or ", " .. table.concat(keys, ", ")
  out[#out + 1] = "R = B.set(R, " .. value .. rest .. ")"
  self.roots[#self.roots + 1] = {out = out, i = #out, n = self.nthis,
    copied = "R = B.set(R, B.copy(" .. value .. ")" .. rest .. ")"}
end

function P:assign_if(out, target)
  out[#out + 1] = "if B.bool(" .. self:expr() .. ", ' in if') then"
  while true do
    self:skip_nl()
    self:expect("{")
    self:skip_nl()
    self:assign_value(out, target, self:value())
    self:skip_nl()
    self:expect("}")
    if not self:is("else") then break end
    self:next()
    if self:is("if") then
      self:next()
      out[#out + 1] = "elseif B.bool(" .. self:expr() .. ", ' in if') then"
    else
      out[#out + 1] = "else"
      self:skip_nl()
      self:expect("{")
      self:skip_nl()
      self:assign_value(out, target, self:value())
      self:skip_nl()
      self:expect("}")
      break
    end
  end
  out[#out + 1] = "end"
end

-- An `if` at the start of a statement is a statement when its blocks hold
-- assignments (`if c { root.a = 1 }`), else a value (`if c { 1 }` cannot
-- stand alone): look for `=` before the block closes.
function P:block_if()
  local depth, k = 0, 1
  while true do
    local t = self:peek(k)
    if t.t == "eof" then return false end
    if t.t == "op" then
      if t.v == "{" then depth = depth + 1
      elseif t.v == "}" then
        depth = depth - 1
        if depth == 0 then return false end
      elseif t.v == "=" and depth == 1 then return true
      end
    end
    k = k + 1
  end
end

function P:block(out)
  self:skip_nl()
  self:expect("{")
  self:skip_nl()
  while not self:is("}") do
    self:statement(out)
    self:end_statement()
  end
  self:next()
end

function P:if_statement(out)
  out[#out + 1] = "if B.bool(" .. self:expr() .. ", ' in if') then"
  self:block(out)
  while self:is("else") do
    self:next()
    if self:is("if") then
      self:next()
      out[#out + 1] = "elseif B.bool(" .. self:expr() .. ", ' in if') then"
      self:block(out)
    else
      out[#out + 1] = "else"
      self:block(out)
      break
    end
  end
  out[#out + 1] = "end"
end

-- `map NAME { statements }`: a function of its own root, local variables
-- and `this` (what `.apply("NAME")` is called on), kept in MAPS.
function P:map_definition(out)
  self:next()
  local name = self:next()
  if name.t ~= "id" and name.t ~= "str" then self:fail("expected the map's name", name) end
  self.maps[#self.maps + 1] = name.v
  out[#out + 1] = "MAPS[" .. lua_str(name.v) .. "] = function(M_this) local R, V = B.NOTHING, {}"
  self.ctxs[#self.ctxs + 1] = "M_this"
  self:block(out)
  self.ctxs[#self.ctxs] = nil
  out[#out + 1] = "return R end"
end

function P:end_statement()
  local t = self:peek()
  if t.t == "nl" then
    self:skip_nl()
  elseif not (t.t == "eof" or self:is("}")) then
    self:fail("expected the end of the line, got '" .. tostring(t.v) .. "'")
  end
end

-- Files of `import` and `from`: relative to the file that names them (the
-- config's directory at the top); `stack` holds the files being read, so
-- that a file importing itself, directly or not, is refused.
local function dir_of(file)
  return file and file:match("^(.*)/[^/]*$") or "."
end
-- The path without `.` and `dir/..` steps, so that one file has one name.
local function resolve(from_file, path)
  if path:sub(1, 1) ~= "/" then path = dir_of(from_file) .. "/" .. path end
  local parts = {}
  for step in path:gmatch("[^/]+") do
    if step == ".." and #parts > 0 and parts[#parts] ~= ".." then parts[#parts] = nil
    elseif step ~= "." then parts[#parts + 1] = step end
  end
  local out = table.concat(parts, "/")
  if path:sub(1, 1) == "/" then return "/" .. out end
  return out == "" and "." or out
end
local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  return text
end

-- Reads a file named by `import` or `from` at token t: its text and path.
function P:open_import(t, what)
  local path = self:next()
  if path.t ~= "str" then self:fail("expected a quoted file path after " .. what, path) end
  local full = resolve(self.file or self.config, path.v)
  for _, f in ipairs(self.stack) do
    if f == full then
      self:fail(string.format("%s cycle: %s is already being read (%s)", what, path.v,
        table.concat(self.stack, " -> ") .. " -> " .. full), t)
    end
  end
  local text, err = read_file(full)
  if not text then self:fail("cannot read " .. what .. " " .. path.v .. ": " .. tostring(err), path) end
  return text, full
end

-- The statements of a file (or the mapping itself) as {out, line} lists.
local function parse(p)
  local stmts = {}
  p:skip_nl()
  while p:peek().t ~= "eof" do
    local out = {line = p:peek().line}
    p:statement(out)
    p:end_statement()
    stmts[#stmts + 1] = out
  end
  return stmts
end

local function new_parser(src, ctxref, file, config, stack)
  local ok, toks = pcall(lexer, src)
  if not ok then
    if type(toks) == "table" then toks.file = file end
    error(toks, 0)
  end
  return setmetatable({toks = toks, pos = 1, ctxs = {"this"}, vars = {}, nvars = 0, nthis = 0,
    roots = {}, objects = {}, ctxref = ctxref, file = file, config = config, stack = stack, maps = {}, hoisted = {}}, P)
end

-- `import "file"`: the file's maps join this mapping's (its other
-- statements are checked, not run, as Benthos does); none, or a name both
-- define, is an error.
function P:import()
  local t = self:next()
  local text, full = self:open_import(t, "import")
  local stack = {unpack(self.stack)}
  stack[#stack + 1] = full
  local sub = new_parser(text, self.ctxref, full, self.config, stack)
  local stmts = parse(sub)
  if #sub.maps == 0 then self:fail("no maps to import from " .. full, t) end
  for _, name in ipairs(sub.maps) do
    for _, mine in ipairs(self.maps) do
      if mine == name then self:fail("map " .. name .. " is defined here and in " .. full, t) end
    end
    self.maps[#self.maps + 1] = name
  end
  for _, r in ipairs(sub.roots) do r.out[r.i] = r.copied end   -- a map's root never aliases the message
  -- Maps are there before the first statement runs, wherever the import is
  -- (the imported lines have no place among this mapping's).
  for _, code in ipairs(sub.hoisted) do self.hoisted[#self.hoisted + 1] = code end
  for _, st in ipairs(stmts) do
    local body = table.concat(st, " ")
    if body:find("^MAPS%[") then self.hoisted[#self.hoisted + 1] = body end
  end
end

-- mode: "mapping" (root starts empty; a mapping that never assigns root
-- keeps the message) or "mutation" (root starts as the message). config:
-- the config file the mapping is in (imports are relative to it).
function M.translate(src, mode, ctxref, config)
  local ok, res = pcall(function()
    local p = new_parser(src, ctxref, nil, config, {config or "<mapping>"})
    -- `from "file"` alone: the mapping is that file's
    p:skip_nl()
    if p:is("from") then
      local t = p:next()
      local text, full = p:open_import(t, "from")
      p:skip_nl()
      if p:peek().t ~= "eof" then p:fail("`from` must be the mapping's only statement") end
      local stack = {unpack(p.stack)}
      stack[#stack + 1] = full
      p = new_parser(text, ctxref, full, config, stack)
    end
    local stmts = parse(p)
    if mode ~= "mutation" then
      for _, r in ipairs(p.roots) do
        if p.nthis > r.n then r.out[r.i] = r.copied
        elseif r.in_place then r.out[r.i] = r.in_place end
      end
    end
    local lines = {}
    for _, out in ipairs(stmts) do
      lines[out.line] = (lines[out.line] and lines[out.line] .. " " or "") .. table.concat(out, " ")
    end
    return {lines = lines, hoisted = table.concat(p.hoisted, " ")}
  end)
  if not ok then
    if type(res) == "table" and res.line then return nil, res.line, res.col, res.msg, res.file end
    error(res, 0)
  end
  local last = 0
  for l in pairs(res.lines) do
    if l > last then last = l end
  end
  -- A mutation starts from the message when it is JSON (a mutation that
  -- only sets metadata may run on any bytes).
  local code = {}
  for l = 1, math.max(last, 1) do code[l] = res.lines[l] or "" end
  -- variables and maps are tables made per message: only when used (a
  -- literal that holds "V[" only costs the table)
  local body = table.concat(code, "\n") .. res.hoisted
  local head = "local B = __bloblang; " .. (body:find("V[", 1, true) and "local V = {}; " or "") ..
    (body:find("MAPS", 1, true) and "local MAPS = {}; " or "") .. "local R = " ..
    (mode == "mutation" and "B.mutable(function() return this end)" or "B.NOTHING") .. "; "
  code[1] = head .. res.hoisted .. (res.hoisted ~= "" and " " or "") .. code[1]
  code[#code] = code[#code] .. " return B.result(R)"
  return table.concat(code, "\n")
end

return M
