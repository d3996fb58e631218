-- Lua that tries to crash or hang the host: every route fails its own
-- message with a clear error and the host goes on with the next one.
local h = require("spec.helpers")
local json = h.json

-- Runs each stdin line through `code` (a lua processor body) and shows the
-- error of a failed message as {"err": ...}. Returns the output lines and
-- the run's result. stack: the process's C stack limit in KiB.
local function through(code, input, lua_section, stack)
  local body = code:gsub("\n", "\n        ")
  local yaml = "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: |\n        " .. body .. "\n" ..
    "    - lua: 'if errored() then return {err = error_message()} end'\n" ..
    "output:\n  stdout: {}\n" .. (lua_section and ("lua:\n" .. lua_section) or "")
  local path = h.write(h.tmpname(".yaml"), yaml)
  local code_, out, err = h.sh(string.format("ulimit -s %d; timeout -k 5 60 %s run %s", stack or 8192, h.bin, path), input)
  os.remove(path)
  return h.lines(out), {code = code_, stdout = out, stderr = err}
end

-- The attack runs on the first message ({"go":1}); the second must pass.
local function attack(code, lua_section, stack)
  local out, r = through("if this.go then\n" .. code .. "\nend", '{"go":1}\n{"ok":1}\n', lua_section, stack)
  assert.are.equal(0, r.code, r.stderr)
  assert.are.equal(2, #out, r.stdout .. r.stderr)
  assert.are.equal('{"ok":1}', out[2])
  local first = json.decode(out[1])
  return first.err or first, r
end

describe("lua scripts that nest calls through C functions", function()
  -- Each of these re-enters Lua from a C function without growing the Lua
  -- stack as fast as the C stack; LuaJIT has no C stack limit of its own.
  local routes = {
    {"string.gsub with a function", 'local function f(s) return (string.gsub(s, ".", f)) end\nf("a")'},
    {"string.gsub with a table whose __index recurses",
     'local t\nt = setmetatable({}, {__index = function(_, k) return (string.gsub("a", ".", t)) end})\nreturn (string.gsub("a", ".", t))'},
    {"coroutine.wrap", "local function f() coroutine.wrap(f)() end\nf()"},
    {"coroutine.resume", "local function f() local co = coroutine.create(f) local ok, e = coroutine.resume(co) if not ok then error(e, 0) end end\nf()"},
    {"table.sort's comparator", "local function f() table.sort({1, 2, 3}, function(a, b) f() return a < b end) end\nf()"},
    {"table.sort's __lt", "local mt = {}\nmt.__lt = function() table.sort({setmetatable({}, mt), setmetatable({}, mt)}) return true end\ntable.sort({setmetatable({}, mt), setmetatable({}, mt)})"},
    {"string.format's __tostring", 'local mt = {}\nmt.__tostring = function() return string.format("%s", setmetatable({}, mt)) end\nreturn string.format("%s", setmetatable({}, mt))'},
    {"os.time's __index", "local mt = {}\nmt.__index = function() return os.time(setmetatable({}, mt)) end\nreturn tostring(os.time(setmetatable({}, mt)))"},
    {"string.gsub inside coroutines", 'local function f(s) return coroutine.wrap(function() return (string.gsub(s, ".", f)) end)() end\nf("a")'},
  }
  -- A worker's stack may be smaller than the main thread's 8 MiB: with 1 MiB,
  -- all of these overflow the C stack long before Lua's own limit.
  for _, route in ipairs(routes) do
    it("fails the message with \"stack overflow\": " .. route[1], function()
      for _, stack in ipairs({8192, 1024}) do
        local err = attack(route[2], "  max_steps: 1000000000\n  max_time: 60s\n", stack)
        assert.matches("stack overflow", err)
      end
    end)
  end

  it("lets the script catch the overflow with pcall, as Lua's own", function()
    local out, r = through('local function f(s) return (string.gsub(s, ".", f)) end\nlocal ok, e = pcall(f, "a")\nreturn {ok = ok, e = e}',
      "x\n", "  max_steps: 1000000000\n  max_time: 60s\n")
    assert.are.equal(0, r.code, r.stderr)
    local v = json.decode(out[1])
    assert.is_false(v.ok)
    assert.matches("stack overflow", v.e)
  end)
end)

describe("lua scripts that try to run forever", function()
  local STEPS = "  max_steps: 100000\n  max_time: 60s\n"
  local NO_STEPS = "  max_steps: 1000000000000\n  max_time: 300ms\n"

  it("counts steps in chunks made by load: a tail call of a loaded chunk to itself", function()
    assert.matches("instruction budget exceeded", attack('local g = load("return (...)(...)")\ng(g)', STEPS))
  end)

  it("keeps the step function out of reach: an environment of the script's own for load", function()
    local err = attack('local e = setmetatable({}, {__index = _G})\nrawset(e, "__sl_budget_step", os.clock)\n' ..
      'local f = load("while true do end", "x", "t", e)\nf()', STEPS)
    assert.matches("instruction budget exceeded", err)
  end)

  it("fails the message although the script caught the budget's error with pcall", function()
    assert.matches("instruction budget exceeded", attack('pcall(function() while true do end end)\nreturn "swallowed"', STEPS))
    assert.matches("instruction budget exceeded", attack('while true do pcall(function() while true do end end) end', STEPS))
    assert.matches("time budget exceeded", attack('local ok = pcall(function() while true do end end)\nreturn "swallowed"', NO_STEPS))
    assert.matches("time budget exceeded",
      attack('xpcall(function() while true do end end, function() while true do end end)\nreturn "after"', NO_STEPS))
  end)

  it("fails a module's message when process returns what a caught budget error left", function()
    local d = h.tmpdir()
    -- process returning false would drop (and acknowledge) the message
    h.write(d .. "/m.lua", "function process(msg)\n  if msg:content() == 'go' then return pcall(function() while true do end end) end\n  return msg\nend\n")
    h.write(d .. "/c.yaml", "lua:\n" .. NO_STEPS .. "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: {file: m.lua}\n" ..
      "    - lua: 'if errored() then return {err = error_message()} end'\noutput:\n  stdout: {}\n")
    local code, out, err = h.sh("timeout -k 5 60 " .. h.bin .. " run " .. d .. "/c.yaml", "go\nok\n")
    h.rmdir(d)
    assert.are.equal(0, code, err)
    local lines = h.lines(out)
    assert.matches("time budget exceeded", json.decode(lines[1]).err)
    assert.are.equal("ok", lines[2])
  end)

  it("stops a compiled loop, a compiled loop of C calls and endless tail calls at lua.max_time", function()
    assert.matches("time budget exceeded", attack("while true do end", NO_STEPS))
    assert.matches("time budget exceeded", attack("local t = {} for i = 1, 1e15 do t[i % 64 + 1] = i end", NO_STEPS))
    assert.matches("time budget exceeded", attack('local s = ("x"):rep(1e6) while true do s = s:upper():lower() end', NO_STEPS))
    assert.matches("time budget exceeded", attack("local function f() return f() end f()", NO_STEPS))
    assert.matches("time budget exceeded", attack("coroutine.wrap(function() while true do end end)()", NO_STEPS))
  end)

  it("stops straight-line code (no loop, no call to a Lua function) at its next instruction", function()
    -- 10,000 statements of 10 MB of work each, run once: interpreted, no step
    assert.matches("time budget exceeded",
      attack([[local f = assert(load(("x = ('x'):rep(1e7):upper() "):rep(10000)))
return pcall(f)]], NO_STEPS))
  end)

  -- LuaJIT's matcher runs in C, where no hook fires: minutes for these (a
  -- hook fires after the C function returns, so that only one that runs
  -- longer than the spec's 60 s timeout shows the difference).
  local patterns = {
    {"string.find", 'return tostring(string.find(("a"):rep(600), ".-.-.-.-b"))'},
    {"the method form of find", 'return tostring((("a"):rep(600)):find(".-.-.-.-b"))'},
    {"string.match", 'return tostring(string.match(("a"):rep(600), "(.-)(.-)(.-)(.-)b"))'},
    {"string.gmatch", 'for m in string.gmatch(("a"):rep(600), ".-.-.-.-b") do end'},
    {"string.gsub", 'return (string.gsub(("a"):rep(600), ".-.-.-.-b", "x"))'},
    {"a quadratic %b", 'return tostring(string.find(("("):rep(1e6), "%b()"))'},
    {"pcall around the matcher", 'return pcall(string.find, ("a"):rep(600), ".-.-.-.-b")'},
  }
  for _, p in ipairs(patterns) do
    it("stops pattern matching at lua.max_time: " .. p[1], function()
      assert.matches("time budget exceeded", attack(p[2], NO_STEPS))
    end)
  end

  it("searches for a fixed string in linear time", function()
    -- LuaJIT's own search compares the whole pattern at each position
    local out, r = through('return tostring(string.find(("a"):rep(4e6), ("a"):rep(2e6) .. "b", 1, true)) .. ' ..
      'tostring(string.find(("a"):rep(4e6) .. "b", ("a"):rep(2e6) .. "b", 1, true))', "x\n", "  max_time: 5s\n")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("nil2000001", out[1])
  end)

  it("spends steps in table.sort without a comparator", function()
    -- LuaJIT's quicksort has inputs that take n^2 comparisons in C
    assert.matches("instruction budget exceeded",
      attack("local t = {} for i = 1, 5000 do t[i] = (i * 7919) % 5000 end table.sort(t)", "  max_steps: 10000\n"))
    local out = through("local t = {} for i = 1, 5000 do t[i] = (i * 7919) % 5000 end table.sort(t)\nreturn {t[1], t[2], t[5000]}",
      "x\n")
    assert.are.same({0, 1, 4999}, json.decode(out[1]))
  end)

  it("keeps the host answering /ping while a script runs, and stops it at lua.max_time", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
lua:
  max_steps: 1000000000000
  max_time: 5s
input:
  generate: {count: 1, interval: 0, mapping: 'return "go"'}
pipeline:
  processors:
    - lua: |
        log("info", "spinning")
        while true do end
    - lua: 'if errored() then return {err = error_message()} end'
output:
  stdout: {}
]])
    local started = h.wait_for(function() return srv.stderr():find("spinning", 1, true) end, 30)
    local code, body = h.sh("curl -s -m 4 " .. srv.url .. "/ping")
    -- the script was still running when /ping answered
    local failed_yet = srv.stdout() ~= ""
    -- max_time counts the script's CPU time: at load 15 an ASan build gets a
    -- tenth of a core, and 5 s of it took longer than 30 s.
    local out = h.wait_for(function() local o = srv.stdout() return o ~= "" and o end, 150)
    local rc = srv.stop()
    assert.is_truthy(started)
    assert.are.equal(0, code)
    assert.are.equal("pong", body)
    assert.is_false(failed_yet)
    assert.matches("time budget exceeded %(lua.max_time: 5000 ms%)", json.decode(out).err)
    assert.are.equal(0, rc)
  end)
end)

describe("lua.max_time", function()
  -- A script of 0.6 s of CPU whose process is stopped for 2 s mid-run (a
  -- loaded machine, a throttled container): it used 0.6 s, not 2.6 s.
  it("counts the time the script ran, not the time its thread was kept waiting", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
lua:
  max_time: 1s
input:
  generate: {count: 1, interval: 0, mapping: 'return "go"'}
pipeline:
  processors:
    - lua: |
        log("info", "working")
        local t = os.clock()
        while os.clock() - t < 0.6 do end
        return "done"
    - lua: 'if errored() then return {err = error_message()} end'
output:
  stdout: {}
]])
    local started = h.wait_for(function() return srv.stderr():find("working", 1, true) end, 30)
    local pid = h.read(srv.dir .. "/pid.txt"):match("%d+")
    os.execute("kill -STOP " .. pid)
    -- stopped while the script ran: it has not answered yet
    local in_flight = srv.stdout() == ""
    os.execute("sleep 2")
    os.execute("kill -CONT " .. pid)
    local out = h.wait_for(function() local o = srv.stdout() return o ~= "" and o end, 30)
    srv.stop()
    assert.is_truthy(started)
    assert.is_true(in_flight)
    assert.are.equal("done\n", out)
  end)
end)

describe("lua error values", function()
  -- A batch of three where the second message's error value is a table whose
  -- __tostring misbehaves: only that message fails, with a readable text.
  local cases = {
    {"errors", 'error("boom")', "its __tostring failed: .*boom"},
    {"returns no string", "return {}", "its __tostring returned a table"},
    {"recurses", "return \"x\" .. tostring(t)", "its __tostring failed: .*stack overflow.*"},
    {"yields", "coroutine.yield()", "its __tostring yielded"},
    {"spins", "while true do end", "its __tostring failed: .*budget exceeded.*"},
  }
  for _, c in ipairs(cases) do
    it("flags only the failing message when __tostring " .. c[1], function()
      local r = h.run_config([[
lua:
  max_steps: 100000000
input:
  generate: {count: 3, batch_size: 3, interval: 0, mapping: 'return {n = i}'}
pipeline:
  processors:
    - lua: |
        if this.n == 2 then error(setmetatable({}, {__tostring = function(t) ]] .. c[2] .. [[ end})) end
    - lua: 'if errored() then return {err = error_message(), n = this.n} end'
output:
  stdout: {}
]], {timeout = 60})
      assert.are.equal(0, r.code, r.stderr)
      local out = h.lines(r.stdout)
      assert.are.same({'{"n":1}', '{"n":3}'}, {out[1], out[3]})
      local second = json.decode(out[2])
      assert.are.equal(2, second.n)
      assert.matches("^error with a table value %(" .. c[3] .. "%)$", second.err)
    end)
  end

  it("gives tables with a working __tostring their text", function()
    local out = through('error(setmetatable({}, {__tostring = function() return "custom" end}))', "x\n")
    assert.are.equal("custom", json.decode(out[1]).err)
  end)
end)

describe("lua.max_memory", function()
  it("is refused at lint below what a VM needs, with the minimum", function()
    local r = h.run_config("lua:\n  max_memory: 1\ninput:\n  stdin: {}\noutput:\n  stdout: {}\n", {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":2:15: max_memory: 1 bytes cannot hold a Lua VM: the minimum is 1 MiB", r.stderr)
    r = h.run_config("lua:\n  max_memory: 1\ninput:\n  stdin: {}\noutput:\n  stdout: {}\n", {stdin = "x\n"})
    assert.are.equal(1, r.code)
    assert.not_matches("panic", r.stderr)
  end)

  it("fails the message that meets the cap, at its smallest, wherever the VM meets it", function()
    local out, r = through([[
if this.hog then local t = {} for k = 1, 1e9 do t[k] = ("x"):rep(64) .. k end end
if this.big then return ("x"):rep(4e6) end
if this.wide then local t = {} for i = 1, 1e5 do t[i] = {i} end return t end]],
      '{"hog":1}\n{"big":1}\n{"wide":1}\n{"ok":1}\n', "  max_memory: 1MiB\n")
    assert.are.equal(0, r.code, r.stderr)
    for k = 1, 3 do assert.are.equal("not enough memory", json.decode(out[k]).err) end
    assert.are.equal('{"ok":1}', out[4])
  end)

  it("turns a VM full while loading a script into a config error, not an abort", function()
    -- the script's text alone is more than the VM may hold
    local r = h.run_config("lua:\n  max_memory: 1MiB\ninput:\n  stdin: {}\npipeline:\n  processors:\n" ..
      "    - lua: |\n        return 'ok' -- " .. ("x"):rep(2e6) .. "\noutput:\n  stdout: {}\n", {stdin = "x\n"})
    assert.are.equal(1, r.code)
    assert.matches(":7:12: code: Lua: not enough memory", r.stderr)
    assert.not_matches("panic", r.stderr)
  end)
end)
