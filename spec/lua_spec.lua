-- The `lua` processor and the Lua host through the real binary: mapping
-- semantics, errors with YAML line numbers, modules, sandbox, budget, memory.
local h = require("spec.helpers")
local json = h.json

local tmpdir = h.tmpdir

-- Runs stdin lines through the given processors (YAML list items, indented
-- by 4) and returns the output lines and the result.
local function through(procs, input, extra)
  local yaml = "input:\n  stdin: {}\npipeline:\n  processors:\n" .. procs .. "output:\n  stdout: {}\n" .. (extra or "")
  local r = h.run_config(yaml, {stdin = input})
  return h.lines(r.stdout), r
end

-- Appends the error (if any) to each message as {"err": ...} so tests can see it.
local SHOW_ERRORS = "    - lua: 'if errored() then return {err = error_message(), was = content()} end'\n"

describe("lua inline scripts", function()
  it("maps JSON: reads this, adds fields, keeps the rest", function()
    local out, r = through("    - lua: |\n        this.total = this.qty * this.price\n        this.tag = 'x'\n",
      '{"qty":2,"price":1.5,"name":"tea"}\n')
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({qty = 2, price = 1.5, name = "tea", total = 3, tag = "x"}, json.decode(out[1]))
  end)

  it("keeps the exact bytes when this is only read", function()
    local input = '{ "b" : 1,   "a" : [1, 2] }\n'
    local out = through("    - lua: 'if this.b ~= 1 then error(\"no\") end'\n", input)
    assert.are.equal(input, out[1] .. "\n")
  end)

  it("keeps the original bytes and appends when only new keys are added", function()
    local out = through("    - lua: 'this.c = {d = 1}; this.e = \"x\"'\n", '{ "b" : [1, 2] }\n{}\n')
    assert.are.equal('{ "b" : [1, 2] ', out[1]:sub(1, 15))
    assert.are.same({b = {1, 2}, c = {d = 1}, e = "x"}, json.decode(out[1]))
    assert.are.same({c = {d = 1}, e = "x"}, json.decode(out[2]))
    -- changing an existing key, or reading a nested table, re-encodes
    out = through("    - lua: 'this.b = 3; this.c = 4'\n    - lua: 'this.b2 = #this.arr; this.arr[1] = 9'\n",
      '{"b":1,"arr":[1]}\n')
    assert.are.same({b = 3, c = 4, b2 = 1, arr = {9}}, json.decode(out[1]))
  end)

  it("re-encodes when a nested value changes", function()
    local out = through("    - lua: 'this.user.name = \"bob\"'\n", '{"user":{"name":"ada"},"n":1}\n')
    assert.are.same({user = {name = "bob"}, n = 1}, json.decode(out[1]))
  end)

  it("replaces the content with a returned table or string, and with an assigned this", function()
    local out = through("    - lua: 'return {wrapped = content()}'\n    - lua: 'return this.wrapped .. \"!\"'\n",
      "hello\n")
    assert.are.equal("hello!", out[1])
    out = through("    - lua: 'this = {replaced = true}'\n", '{"a":1}\n')
    assert.are.same({replaced = true}, json.decode(out[1]))
  end)

  it("drops with deleted() and the run still ends with everything else delivered", function()
    local out, r = through("    - lua: 'if this.n % 2 == 0 then return deleted() end'\n",
      '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n')
    assert.are.equal(0, r.code)
    assert.are.same({'{"n":1}', '{"n":3}'}, out)
  end)

  it("reads and writes metadata; meta() copies it", function()
    local out = through([[
    - lua: |
        meta.a = "1"
        meta.b = 2
        meta.b = nil
        meta.c = {x = 1}
    - lua: |
        local m = meta()
        local keys = {}
        for k in pairs(m) do keys[#keys + 1] = k end
        table.sort(keys)
        return {a = meta.a, b = meta.b, c = meta.c, keys = table.concat(keys, ",")}
]], "x\n")
    assert.are.same({a = "1", c = '{"x":1}', keys = "a,c"}, json.decode(out[1]))
  end)

  it("flags error() with the message and the YAML line, and the host goes on", function()
    local out, r = through("    - lua: |\n        local x = 1\n        if this.bad then error('broken: ' .. this.bad) end\n" ..
      SHOW_ERRORS, '{"bad":"yes"}\n{"ok":1}\n')
    assert.are.equal(0, r.code, r.stderr)
    local first = json.decode(out[1])
    assert.matches("%.yaml:7: broken: yes", first.err)
    assert.are.equal('{"bad":"yes"}', first.was)
    assert.are.equal('{"ok":1}', out[2])
  end)

  it("flags a message that is not JSON when this is read", function()
    local out = through("    - lua: 'this.x = 1'\n" .. SHOW_ERRORS, "not json\n")
    assert.matches("this: message is not JSON", json.decode(out[1]).err)
  end)

  it("provides uuid_v4, now, json, env, batch_index", function()
    local yaml = [[
input:
  stdin: {}
pipeline:
  processors:
    - lua: |
        return {
          id = uuid_v4(), at = now(), idx = batch_index(),
          rt = json.decode(json.encode({a = {1, 2}})).a[2],
          home = env("SL_SPEC_VAR"), missing = env("SL_SPEC_NOPE") == nil,
        }
output:
  stdout: {}
]]
    local path = h.write(h.tmpname(".yaml"), yaml)
    local code, out = h.sh("SL_SPEC_VAR=here " .. h.bin .. " run " .. path, "a\nb\nc\n")
    os.remove(path)
    assert.are.equal(0, code)
    local lines = h.lines(out)
    local ids = {}
    for k, l in ipairs(lines) do
      local d = json.decode(l)
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", d.id)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z$", d.at)
      assert.are.equal(k - 1, d.idx)
      assert.are.equal(2, d.rt)
      assert.are.equal("here", d.home)
      assert.is_true(d.missing)
      assert.is_nil(ids[d.id])
      ids[d.id] = true
    end
    assert.are.equal(3, #lines)
  end)

  it("has an empty, read-only ctx for inputs without a request", function()
    local out = through([[
    - lua: |
        local n = 0
        for _ in pairs(ctx.query) do n = n + 1 end
        for _ in pairs(ctx.headers) do n = n + 1 end
        local ok = pcall(function() ctx.user = "x" end)
        return {method = ctx.method, user = ctx.user, entries = n, writable = ok}
]], "x\n")
    assert.are.same({entries = 0, writable = false}, json.decode(out[1]))
  end)

  it("gives generate's mapping i, counting from 1", function()
    local r = h.run_config("input:\n  generate: {count: 3, interval: 0, mapping: 'return {n = i}'}\noutput:\n  stdout: {}\n")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal('{"n":1}\n{"n":2}\n{"n":3}\n', r.stdout)
  end)

  it("reports Lua syntax errors at lint with file:line:col", function()
    local r = h.run_config("input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: |\n        local x = \n        this.y = (\noutput:\n  stdout: {}\n",
      {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("%.yaml:5:%d+: code: Lua: .*%.yaml:7:", r.stderr)
  end)

  -- Scripts are compiled as chunks of their own (lines from 1) and every
  -- position is relined to the config file's: check each way one surfaces.
  local function line_of(text, marker)
    local n = 1
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do
      if l:find(marker, 1, true) then return n end
      n = n + 1
    end
    error("no " .. marker)
  end
  local PAD = string.rep("# a comment that moves the scripts down\n", 40)

  it("gives every error the config file's line, however it surfaces", function()
    local yaml = PAD .. [[
input:
  stdin: {}
pipeline:
  processors:
    - label: deep
      lua: |
        local k = this.k
        if k == "error" then error("raised") end -- @error
        if k == "runtime" then local t = nil; return t.x end -- @runtime
        if k == "pcall" then
          local _, e = pcall(function() error("caught") end) -- @pcall
          return {e = e}
        end
        if k == "xpcall" then
          return {e = select(2, xpcall(function() error("handled") end, function(e) return e end))} -- @xpcall
        end
        if k == "coroutine" then
          return {e = select(2, coroutine.resume(coroutine.create(function() error("in co") end)))} -- @coroutine
        end
        if k == "pattern" then return (string.find("a", "(")) end -- @pattern
        if k == "steps" then while true do end end -- @steps
    - switch:
        - check: 'this.k == "check" and this.x.y' # @check
          processors: []
    - lua: 'if errored() then return {err = error_message()} end'
output:
  stdout: {}
lua:
  max_steps: 100000
]]
    local kinds = {"error", "runtime", "pcall", "xpcall", "coroutine", "pattern", "steps", "check"}
    local input = {}
    for _, k in ipairs(kinds) do input[#input + 1] = json.encode({k = k}) end
    local r = h.run_config(yaml, {stdin = table.concat(input, "\n") .. "\n"})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.lines(r.stdout)
    assert.are.equal(#kinds, #out, r.stdout)
    for n, k in ipairs(kinds) do
      local v = json.decode(out[n])
      local text = v.err or v.e
      assert.matches("%.yaml:" .. line_of(yaml, "@" .. k) .. ": ", text, 1)
      assert.is_nil(text:find(":+", 1, true), text)
    end
    -- the failure log line too (the first five are logged at once)
    assert.matches('component=deep msg="script failed a message" error="[^"]*%.yaml:' .. line_of(yaml, "@error") ..
      ": raised", r.stderr)
  end)

  it("gives a syntax error the config file's lines, those it names in its text too", function()
    local yaml = PAD .. "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: |\n        local x = 1\n" ..
      "        local t = { -- @open\n          a = 1,\n        this.y = 2 -- @near\noutput:\n  stdout: {}\n"
    local r = h.run_config(yaml, {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("%.yaml:" .. line_of(yaml, "@near") .. ": '}' expected %(to close '{' at line " ..
      line_of(yaml, "@open") .. "%) near '='", r.stderr)
  end)
end)

describe("lua modules", function()
  it("runs process(msg, ctx) from a file, with require from lua_path", function()
    local d = tmpdir()
    os.execute("mkdir -p " .. d .. "/lib")
    h.write(d .. "/lib/util.lua", "return {twice = function(x) return x * 2 end}\n")
    h.write(d .. "/mod.lua", [[
local util = require("util")
return {
  process = function(msg, ctx)
    local t = msg:json()
    if t.skip then return nil end
    t.doubled = util.twice(t.n)
    msg.meta.seen = "1"
    return t
  end,
}
]])
    h.write(d .. "/c.yaml", [[
lua:
  lua_path: [lib]
input:
  stdin: {}
pipeline:
  processors:
    - lua: {file: mod.lua}
    - lua: 'this.seen = meta.seen'
output:
  stdout: {}
]])
    local code, out, err = h.sh(h.bin .. " run " .. d .. "/c.yaml", '{"n":2}\n{"skip":true}\n{"n":5}\n')
    os.execute("rm -rf " .. d)
    assert.are.equal(0, code, err)
    local lines = h.lines(out)
    assert.are.equal(2, #lines)
    assert.are.same({n = 2, doubled = 4, seen = "1"}, json.decode(lines[1]))
    assert.are.same({n = 5, doubled = 10, seen = "1"}, json.decode(lines[2]))
  end)

  it("keeps the returned message, drops on false, splits on a list", function()
    local d = tmpdir()
    h.write(d .. "/m.lua", [[
local M = {}
function M.process(msg)
  local s = msg:bytes()
  if s == "drop" then return false end
  if s == "split" then
    local a, b = msg:copy(), msg:copy()
    a:set_content("part-1"); b:set_content("part-2")
    return {a, b}
  end
  msg.meta.len = #s
  return msg
end
return M
]])
    h.write(d .. "/c.yaml", "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: {file: m.lua}\n" ..
      "    - lua: 'return content() .. \":\" .. (meta.len or \"-\")'\noutput:\n  stdout: {}\n")
    local code, out = h.sh(h.bin .. " run " .. d .. "/c.yaml", "keep\ndrop\nsplit\n")
    h.rmdir(d)
    assert.are.equal(0, code)
    assert.are.same({"keep:4", "part-1:-", "part-2:-"}, h.lines(out))
  end)

  it("runs process_batch(batch, ctx): drop, reorder and split with copy()", function()
    local d = tmpdir()
    h.write(d .. "/b.lua", [[
function process_batch(batch)
  local out = {}
  for k = #batch, 1, -1 do
    local m = batch[k]
    if m:content() ~= "drop" then
      out[#out + 1] = m
      local c = m:copy()
      c:set_content(m:content() .. "-copy")
      out[#out + 1] = c
    end
  end
  out[#out + 1] = new_message({made = true})
  return out
end
]])
    h.write(d .. "/c.yaml", "input:\n  stdin: {codec: all}\npipeline:\n  processors:\n" ..
      "    - lua: 'return nil'\n    - lua: {file: b.lua}\noutput:\n  stdout: {}\n")
    local code, out = h.sh(h.bin .. " run " .. d .. "/c.yaml", "x")
    os.execute("rm -rf " .. d)
    assert.are.equal(0, code)
    assert.are.same({"x", "x-copy", '{"made":true}'}, h.lines(out))
  end)

  it("refuses a module without process functions, and a missing file", function()
    local d = tmpdir()
    h.write(d .. "/bad.lua", "return {}\n")
    h.write(d .. "/c.yaml", "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: {file: bad.lua}\n    - lua: {file: nope.lua}\noutput:\n  stdout: {}\n")
    local code, _, err = h.sh(h.bin .. " lint " .. d .. "/c.yaml")
    os.execute("rm -rf " .. d)
    assert.are.equal(1, code)
    assert.matches("must define process", err)
    assert.matches("nope%.lua", err)
  end)
end)

describe("lua sandbox", function()
  local escapes = {
    {"io", "return tostring(io)"},
    {"os.execute", "return tostring(os.execute)"},
    {"os.exit", "return tostring(os.exit)"},
    {"os.getenv", "return tostring(os.getenv)"},
    {"debug", "return tostring(debug)"},
    {"ffi via require", "return tostring(require('ffi'))"},
    {"jit", "return tostring(jit)"},
    {"getfenv", "return tostring(getfenv)"},
    {"dofile", "return tostring(dofile)"},
    {"package", "return tostring(package)"},
    {"binary mode", "return tostring(load('return 1', 'x', 'b'))"},
    {"string.dump", "return tostring(string.dump)"},
    {"string metatable", "return tostring(getmetatable(''))"},
    {"env metatable", "return tostring(getmetatable(meta))"},
  }
  for _, e in ipairs(escapes) do
    it("refuses " .. e[1], function()
      local out = through("    - lua: \"" .. e[2] .. "\"\n" .. SHOW_ERRORS, "x\n")
      local v = out[1]
      local ok, d = pcall(json.decode, v)
      if ok and type(d) == "table" then
        assert.is_not_nil(d.err, v)
      else
        assert.is_true(v == "nil" or v == "false", v)
      end
    end)
  end

  -- Real bytecode (LuaJIT's own, which plain LuaJIT loads), as a message.
  it("refuses bytecode through load, loadstring, binary mode and modules", function()
    local bc = string.dump(function() return 42 end)
    assert.are.equal(42, assert(loadstring(bc))())
    local r = h.run_config([[
input:
  stdin: {codec: all}
pipeline:
  processors:
    - lua: |
        local results = {}
        for _, f in ipairs({
          function() return load(content()) end,
          function() return loadstring(content()) end,
          function() return load(content(), "x", "b") end,
          function() return load(content(), "x", "bt") end,
        }) do
          local fn, err = f()
          results[#results + 1] = fn == nil and err or "loaded"
        end
        return results
output:
  stdout: {}
]], {stdin = bc})
    assert.are.equal(0, r.code, r.stderr)
    local v = json.decode(h.lines(r.stdout)[1])
    assert.are.equal(4, #v)
    assert.matches("bytecode is not allowed", v[1])
    assert.matches("bytecode is not allowed", v[2])
    assert.matches("only text mode", v[3])
    assert.matches("only text mode", v[4])
    local d = tmpdir()
    os.execute("mkdir -p " .. d .. "/lib")
    h.write(d .. "/bc.lua", string.dump(assert(loadstring("return {process = function(m) return m end}"))))
    h.write(d .. "/lib/bcmod.lua", bc)
    h.write(d .. "/c.yaml", "lua:\n  lua_path: [lib]\ninput:\n  stdin: {}\npipeline:\n  processors:\n    - lua: {file: bc.lua}\n" ..
      "    - lua: \"return tostring(select(2, pcall(require, 'bcmod')))\"\noutput:\n  stdout: {}\n")
    local code, _, err = h.sh(h.bin .. " lint " .. d .. "/c.yaml")
    h.write(d .. "/c.yaml", "lua:\n  lua_path: [lib]\ninput:\n  stdin: {}\npipeline:\n  processors:\n" ..
      "    - lua: \"return tostring(select(2, pcall(require, 'bcmod')))\"\noutput:\n  stdout: {}\n")
    local rcode, rout = h.sh(h.bin .. " run " .. d .. "/c.yaml", "x\n")
    h.rmdir(d)
    assert.are.equal(1, code)
    assert.matches("bc%.lua", err)
    assert.are.equal(0, rcode)
    assert.matches("bytecode is not allowed", rout)
  end)

  it("refuses the host's reserved names at load", function()
    local r = h.run_config("input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: 'return __sl_budget_step'\noutput:\n  stdout: {}\n",
      {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":5:%d+: code: Lua: .*names starting with __sl_ are reserved", r.stderr)
  end)

  it("keeps scripts from changing each other's string library", function()
    local out = through("    - lua: 'string.upper = nil; string.format = nil'\n    - lua: 'return (\"ok\"):upper() .. string.format(\"%d\", 1)'\n", "x\n")
    assert.are.equal("OK1", out[1])
  end)

  it("keeps a script that sets a library to nil from changing the one later environments copy", function()
    local out = through("    - lua: 'string = nil; string.upper = nil; return content()'\n" ..
      "    - lua: 'return load(\"return string.upper(...)\")(content())'\n", "x\n")
    assert.are.equal("X", out[1])
  end)

  it("keeps shared host objects out of rawset's reach", function()
    local out = through("    - lua: |\n        pcall(rawset, meta, 'x', 'planted')\n        pcall(rawset, ctx, 'user', 'mallory')\n" ..
      "        return tostring(pcall(function() return ('').dump end))\n" ..
      "    - lua: 'return content() .. \":\" .. tostring(meta.x) .. \":\" .. tostring(ctx.user)'\n", "a\n")
    assert.are.equal("true:nil:nil", out[1])
  end)

  it("refuses a message kept past its call, and message access at a module's top level", function()
    local d = tmpdir()
    h.write(d .. "/keep.lua", "local kept\nfunction process(msg)\n" ..
      "  if kept then local ok, e = pcall(function() return kept:content() end); msg:set_content(tostring(e)) end\n" ..
      "  kept = msg\n  return msg\nend\n")
    h.write(d .. "/top.lua", "content()\nfunction process(msg) return msg end\n")
    h.write(d .. "/c.yaml", "input:\n  generate: {count: 2, interval: 20ms, mapping: 'return i == 1 and \"one\" or \"two\"'}\n" ..
      -- one VM keeps the message (each pipeline.threads worker has its own)
      "pipeline:\n  threads: 1\n  processors:\n    - lua: {file: keep.lua}\noutput:\n  stdout: {}\n")
    h.write(d .. "/t.yaml", "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: {file: top.lua}\noutput:\n  stdout: {}\n")
    local code, out = h.sh(h.bin .. " run " .. d .. "/c.yaml")
    local _, _, err = h.sh(h.bin .. " lint " .. d .. "/t.yaml")
    h.rmdir(d)
    assert.are.equal(0, code)
    local lines = h.lines(out)
    assert.are.equal("one", lines[1])
    assert.matches("msg is no longer valid", lines[2])
    assert.matches("no message here", err)
  end)

  it("stops a runaway loop with the step budget and keeps serving", function()
    local out, r = through("    - lua: 'if this.spin then while true do end end'\n" .. SHOW_ERRORS,
      '{"spin":1}\n{"n":2}\n', "lua:\n  max_steps: 100000\n")
    assert.are.equal(0, r.code)
    assert.matches("instruction budget exceeded", json.decode(out[1]).err)
    assert.are.equal('{"n":2}', out[2])
  end)

  it("stops runaway recursion (at the budget, or at LuaJIT's stack limit) and goto loops", function()
    local script = "    - lua: |\n        local function f() return 1 + f() end\n        if this.r then f() end\n        if this.g then ::top:: goto top end\n" ..
      SHOW_ERRORS
    local out = through(script, '{"r":1}\n{"g":1}\n{"ok":1}\n', "lua:\n  max_steps: 1000\n")
    assert.matches("%.yaml:6: instruction budget exceeded", json.decode(out[1]).err)
    assert.matches("%.yaml:8: instruction budget exceeded", json.decode(out[2]).err)
    assert.are.equal('{"ok":1}', out[3])
    -- with a budget deeper than Lua's stack, LuaJIT's own limit stops it
    out = through(script, '{"r":1}\n{"ok":1}\n', "lua:\n  max_steps: 100000000\n")
    assert.matches("%.yaml:6: stack overflow$", json.decode(out[1]).err)
    assert.are.equal('{"ok":1}', out[2])
  end)

  -- Where LuaJIT's stack limit is met (entering the recursing function, its
  -- step function or a C function it calls) depends on how the frames fall:
  -- some shapes lost the position. Each names the config file now.
  it("places a stack overflow in the config file, however the frames fall", function()
    local shapes = {"local function f() return 1 + f() end", "local function f() return f() + 1 end",
      "local function f(a) return 1 + f(a) end", "local function f(a, b, c) return 1 + f(a, b, c) end",
      "local function f() local x, y = 1, 2 return x + y + f() end", "local function f() return (f()) .. 'x' end",
      "local function f(t) t[1] = 1 return 1 + f(t) end"}
    for _, shape in ipairs(shapes) do
      local out = through("    - lua: |\n        local start = 1\n        " .. shape .. "\n        f({})\n" .. SHOW_ERRORS,
        "{}\n", "lua:\n  max_steps: 100000000\n")
      local err = json.decode(out[1]).err
      -- the script's first line (6) or the function's (7)
      assert.matches("%.yaml:[67]: stack overflow$", err, 1, shape)
    end
  end)

  it("caps a VM's memory: the hog is flagged, the host survives", function()
    local out, r = through("    - lua: |\n        if this.hog then local t = {} for k = 1, 1e9 do t[k] = string.rep('x', 64) .. k end end\n" ..
      SHOW_ERRORS, '{"hog":1}\n{"ok":1}\n', "lua:\n  max_memory: 64MiB\n  max_time: 60s\n")
    assert.are.equal(0, r.code)
    assert.matches("not enough memory", json.decode(out[1]).err)
    assert.are.equal('{"ok":1}', out[2])
  end)

  -- LuaJIT collects only when its heap doubles from the last cycle's live
  -- data and never before failing an allocation, so the host collects in
  -- full when needed. It did so after every run once the heap passed half
  -- the cap: a pipeline whose live data sits there paid a full collection
  -- per batch. Now one each time the heap grows by half the room left.
  it("does not collect in full at every run when the live data sits above half the cap", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
lua: {max_memory: 8MiB}
input:
  generate: {interval: 0, batch_size: 1, mapping: 'return "{}"'}
pipeline:
  processors:
    - lua: |
        if not held then held = {} for k = 1, 100000 do held[k] = "entry " .. k end end
        this.held = #held
output:
  drop: {}
]])
    local prom = require("spec.prom")
    local ok, err = pcall(function()
      local s
      -- each message is a run of the mapping and one of the processor
      h.wait_for(function()
        s = prom.samples(srv.url .. "/metrics")
        return (prom.value(s, "output_sent_total", {stream = "main"}) or 0) >= 5000
      end, 60)
      local sent = prom.value(s, "output_sent_total", {stream = "main"})
      local full = prom.value(s, "sluice_lua_gc_full_total", {})
      local heap = prom.value(s, "sluice_lua_memory_bytes", {})
      assert.is_true(sent >= 5000, tostring(sent))
      assert.is_true(heap > 4 * 1048576, "heap " .. tostring(heap))
      assert.is_true(full < sent / 50, string.format("%s full collections for %s messages", tostring(full), tostring(sent)))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("refuses require outside lua_path", function()
    local out = through("    - lua: \"return require('os')\"\n" .. SHOW_ERRORS, "x\n")
    assert.matches("not found in lua_path", json.decode(out[1]).err)
  end)
end)

-- Failure lines in a run's log: those written, and those counted as left out.
local function failure_lines(stderr)
  local logged, left_out = 0, 0
  for l in stderr:gmatch("[^\n]+") do
    if l:find('msg="script failed a message"', 1, true) then logged = logged + 1 end
    local n = l:match("not_logged=(%d+)")
    if n then left_out = left_out + tonumber(n) end
  end
  return logged, left_out
end

describe("lua failures in the log", function()
  it("logs a failed message with its stream, label and file:line", function()
    local r = h.run_config([[
input:
  stdin: {}
pipeline:
  processors:
    - label: enrich
      lua: |
        if this.bad then error("broken: " .. this.bad) end
output:
  stdout: {}
]], {stdin = '{"bad":"yes"}\n{"ok":1}\n'})
    assert.are.equal(0, r.code, r.stderr)
    assert.matches('level=warn stream=main component=enrich msg="script failed a message" error="[^"]*%.yaml:7: broken: yes"\n',
      r.stderr)
    local n = 0
    for _ in r.stderr:gmatch("script failed") do n = n + 1 end
    assert.are.equal(1, n)
  end)

  it("logs a flood of failures in a bounded number of lines, counting those left out", function()
    local r = h.run_config([[
input:
  generate: {count: 20000, batch_size: 100, interval: 0, mapping: 'return {n = i}'}
pipeline:
  processors:
    - lua: 'error("no " .. this.n)'
output:
  drop: {}
]], {timeout = 120})
    assert.are.equal(0, r.code, r.stderr)
    local logged, left_out = failure_lines(r.stderr)
    -- 5 at once, then one a second: a run of a few seconds logs a few lines
    assert.is_true(logged >= 5 and logged <= 40, r.stderr)
    assert.are.equal(20000, logged + left_out)
  end)
end)

describe("generate mapping failures in the log", function()
  it("logs them as a processor's are: with stream, label and file:line, rate-limited", function()
    local r = h.run_config([[
input:
  label: numbers
  generate:
    count: 20000
    batch_size: 100
    interval: 0
    mapping: |
      if i % 2 == 0 then error("no " .. i) end
      return {n = i}
output:
  drop: {}
]], {timeout = 120})
    assert.are.equal(0, r.code, r.stderr)
    assert.matches('level=warn stream=main component=numbers msg="script failed a message" error="[^"]*%.yaml:8: no 2"\n',
      r.stderr)
    local logged, left_out = failure_lines(r.stderr)
    assert.is_true(logged >= 5 and logged <= 40, r.stderr)
    assert.are.equal(10000, logged + left_out)
  end)
end)

describe("${ENV} in Lua", function()
  it("refuses a variable's text pasted into code, pointing at env()", function()
    local path = h.write(h.tmpname(".yaml"), [[
input:
  generate: {count: 1, interval: 0, mapping: 'return "${SL_SPEC_X}"'}
pipeline:
  processors:
    - lua: 'this = {a = ${SL_SPEC_X:1}}'
    - switch:
        - check: 'this.a == "${SL_SPEC_X}"'
          processors: []
    - log: {message: 'a ${! "${SL_SPEC_X}" }'}
output:
  stdout: {}
]])
    local code, _, err = h.sh("SL_SPEC_X='\" .. os.exit(3) .. \"' " .. h.bin .. " lint " .. path)
    os.remove(path)
    assert.are.equal(1, code)
    assert.matches(':2:46: mapping: ${SL_SPEC_X} in Lua code would paste the variable\'s text into the code; read it with env%("SL_SPEC_X"%)', err)
    assert.matches(":5:12: code: ${SL_SPEC_X} in Lua code", err)
    assert.matches(":7:18: check: ${SL_SPEC_X} in Lua code", err)
    assert.matches(":9:22: message: ${SL_SPEC_X} inside ${! } would paste", err)
    assert.matches("4 errors", err)
  end)

  it("refuses a variable whose value would add Lua to a template", function()
    local path = h.write(h.tmpname(".yaml"), "input:\n  stdin: {}\noutput:\n  file: {path: '${SL_SPEC_DIR}/${! this.a }.txt'}\n")
    local code, _, err = h.sh("SL_SPEC_DIR='${! os.exit(3) }' " .. h.bin .. " lint " .. path)
    os.remove(path)
    assert.are.equal(1, code)
    assert.matches(':4:16: path: an environment variable\'s value in this string holds "${!"', err)
  end)

  it("substitutes variables in a template's text, and env() reads them in code", function()
    local d = tmpdir()
    local path = h.write(d .. "/c.yaml", "input:\n  generate: {count: 1, interval: 0, mapping: 'return {v = env(\"SL_SPEC_X\"), l = \"$${SL_SPEC_X}\"}'}\n" ..
      "output:\n  file: {path: '${SL_SPEC_DIR}/${! this.v }.txt'}\n")
    local code, _, err = h.sh("SL_SPEC_X='a\"b' SL_SPEC_DIR=" .. d .. " " .. h.bin .. " run " .. path)
    local written = h.read(d .. '/a"b.txt')
    h.rmdir(d)
    assert.are.equal(0, code, err)
    assert.are.same({v = 'a"b', l = "${SL_SPEC_X}"}, json.decode(written))
  end)
end)

describe("interpolation", function()
  it("evaluates ${! } per message in an output path", function()
    local d = tmpdir()
    h.write(d .. "/c.yaml", [[
input:
  stdin: {}
output:
  file:
    path: 'out-${! this.kind }-${! meta.nope }.txt'
]])
    local code = h.sh(h.bin .. " run " .. d .. "/c.yaml", '{"kind":"a"}\n{"kind":"b"}\n{"kind":"a"}\n')
    local a, b = h.read(d .. "/out-a-null.txt"), h.read(d .. "/out-b-null.txt")
    os.execute("rm -rf " .. d)
    assert.are.equal(0, code)
    assert.are.equal('{"kind":"a"}\n{"kind":"a"}\n', a)
    assert.are.equal('{"kind":"b"}\n', b)
  end)
end)
