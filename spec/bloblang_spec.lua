-- Bloblang translated to Lua (processors/mapping.c, processors/bloblang.lua):
-- the documented cases of spec/bloblang_cases.lua through `sluice lua
-- --bloblang`, the seed's demo document, refusals at their line and column.
-- bench/bloblang_vs_benthos.sh runs the same cases through Benthos's blobl.
local h = require("spec.helpers")
local json = h.json
local cases = dofile("spec/bloblang_cases.lua")

-- Runs one case; returns code, decoded -v object (or nil), stdout, stderr.
local function run(c)
  local args = {"lua --bloblang -v -e", h.shell_quote(c[1]), "--input", h.shell_quote(c[2])}
  for k, v in pairs(c.input_meta or {}) do args[#args + 1] = "--meta " .. h.shell_quote(k .. "=" .. v) end
  local r = h.sluice(table.concat(args, " "))
  local out = r.stdout ~= "" and json.decode(r.stdout) or nil
  return r.code, out, r.stdout, r.stderr
end

local function same_json(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same_json(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

describe("Bloblang translated to Lua", function()
  it("gives the documented result for each of " .. #cases .. " cases", function()
    local failures, ran = {}, 0
    for i, c in ipairs(cases) do
      ran = ran + 1
      local code, out, stdout, stderr = run(c)
      local want, ok, why = c[3], true, nil
      if type(want) == "string" then
        ok = code == 0 and out and not out.error and same_json(json.decode(out.content), json.decode(want))
        -- decoded, [] and {} are the same empty table: the bytes tell them apart
        if ok and want:find("[]", 1, true) then ok = out.content:find("[]", 1, true) ~= nil end
      elseif want.drop then
        ok = code == 0 and stdout == ""
      elseif want.same then
        ok = code == 0 and out and out.content == c[2]
      elseif want.raw then
        ok = code == 0 and out and out.content == want.raw
      elseif want.err then
        ok = code == 1 and out and out.error and out.error:find(want.err, 1, true) ~= nil
      elseif want.json_check then
        ok = code == 0 and out and want.json_check(json.decode(out.content))
      end
      for k, v in pairs(c.meta or {}) do
        if ok and (out.metadata[k] or false) ~= v then ok, why = false, "metadata " .. k end
      end
      if not ok then
        failures[#failures + 1] = string.format("case %d: %s\n  input %s\n  want %s\n  got exit %d %s %s%s", i,
          c[1]:gsub("\n", "\\n"), c[2], type(want) == "string" and want or next(want), code, stdout, stderr,
          why and ("  (" .. why .. ")") or "")
      end
    end
    assert.is_true(ran >= 150, "only " .. ran .. " cases")
    assert.are.equal(0, #failures, table.concat(failures, "\n"))
  end)

  it("refuses what it does not translate at its line and column, naming the construct", function()
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    local f = h.write(dir .. "/c.yaml", [[
input: {stdin: {}}
pipeline:
  processors:
    - mapping: |
        root = this
        root.h = this.body.compress("gzip")
    - mapping: 'root = this.a.bogus_fn()'
    - bloblang: 'root = unknown_fn()'
    - mapping: |
        import "./things.blobl"
        root = this
        root.x = 1
    - mapping: 'root = "unterminated'
    - mapping: 'root = this.s.replace_all(old: "a", "b")'
    - mapping: 'root = this.s.slice(high: 2)'
    - mapping: |
        match this.s {
          "a" => root = 1
        }
output: {drop: {}}
]])
    local r = h.sluice("lint " .. f)
    assert.are.equal(1, r.code)
    local text = r.stdout .. r.stderr
    assert.matches("c.yaml:6:%d+: mapping: Bloblang: the Bloblang method compress%(%) is " ..
      "not translated", text)
    assert.matches("c.yaml:7:31: mapping: Bloblang: the Bloblang method bogus_fn%(%)", text)
    assert.matches("c.yaml:8:25: mapping: Bloblang: the Bloblang function unknown_fn%(%)",
      text)
    assert.matches("c.yaml:10:8: mapping: Bloblang: cannot read import ./things.blobl: ", text)
    assert.matches("c.yaml:13:24: mapping: Bloblang: unterminated string", text)
    assert.matches("c.yaml:14:53: mapping: Bloblang: cannot mix named and unnamed arguments", text)
    assert.matches("c.yaml:15:45: mapping: Bloblang: missing parameter low of slice%(%)", text)
    assert.matches("c.yaml:17:1: mapping: Bloblang: match is a value, not a statement %(Benthos refuses it too%)", text)
  end)

  it("imports maps from files relative to the config, takes a whole mapping with from, refuses cycles at file:line:col", function()
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    os.execute("mkdir -p " .. dir .. "/lib/deep")
    h.write(dir .. "/lib/maps.blobl", 'import "./deep/twice.blobl"\nmap shout {\n  root = this.uppercase()\n}\n')
    h.write(dir .. "/lib/deep/twice.blobl", 'map twice {\n  root = this + this\n}\n')
    h.write(dir .. "/lib/whole.blobl", 'import "./maps.blobl"\nroot.s = this.s.apply("shout")\n')
    h.write(dir .. "/lib/a.blobl", 'map a {\n  root = 1\n}\nimport "./b.blobl"\n')
    h.write(dir .. "/lib/b.blobl", 'map b {\n  root = 2\n}\n  import "./a.blobl"\n')
    h.write(dir .. "/lib/bad.blobl", 'map bad {\n  root = this.nope_fn()\n}\n')
    h.write(dir .. "/lib/nomaps.blobl", 'root = 1\n')
    local f = h.write(dir .. "/c.yaml", [[
input: {stdin: {}}
pipeline:
  processors:
    - mapping: |
        import "lib/maps.blobl"
        root.s = this.s.apply("shout")
        root.n = this.n.apply("twice")
    - mutation: 'from "./lib/whole.blobl"'
output: {stdout: {}}
]])
    local r = h.sluice("run " .. f, {stdin = '{"s":"ab","n":2}\n'})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({s = "AB", n = 4}, json.decode(r.stdout))
    -- a cycle, an error inside an imported file, a file without maps: each at its own file, line and column
    f = h.write(dir .. "/bad.yaml", [[
input: {stdin: {}}
pipeline:
  processors:
    - mapping: 'import "lib/a.blobl"'
    - mapping: |
        root = 1
        import "lib/bad.blobl"
    - mapping: 'import "lib/nomaps.blobl"'
    - mapping: |
        root = 1
        from "lib/whole.blobl"
output: {stdout: {}}
]])
    r = h.sluice("lint " .. f)
    assert.are.equal(1, r.code)
    local text = r.stdout .. r.stderr
    assert.matches("lib/b.blobl:4:3: mapping: Bloblang: import cycle: ./a.blobl is already being read", text, 1, true)
    assert.matches("lib/bad.blobl:2:15: mapping: Bloblang: the Bloblang method nope_fn() is not translated", text, 1, true)
    assert.matches("bad.yaml:8:17: mapping: Bloblang: no maps to import from ", text, 1, true)
    assert.matches("bad.yaml:11:1: mapping: Bloblang: `from` must be the mapping's only statement", text, 1, true)
  end)

  it("names the mapping's own line when a translated mapping fails a message", function()
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    local f = h.write(dir .. "/c.yaml", [[
input: {stdin: {}}
pipeline:
  processors:
    - mapping: |
        root = this

        root.sum = this.a + this.b
output: {stdout: {}}
]])
    local r = h.sluice("run --log-level warn " .. f, {stdin = '{"a":1,"b":2}\n{"a":"x","b":2}\n'})
    assert.are.equal(0, r.code)
    assert.are.same({a = 1, b = 2, sum = 3}, json.decode(h.lines(r.stdout)[1]))
    assert.matches("c.yaml:7: cannot add types string", r.stderr, 1, true)
    assert.matches("component=mapping", r.stderr, 1, true)
  end)

  it("runs a mutation in place; one that only sets metadata runs on bytes that are not JSON", function()
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    local f = h.write(dir .. "/c.yaml", "input: {stdin: {}}\npipeline:\n  processors:\n    - mutation: |\n" ..
      "        meta m = \"1\"\n        root.seen = this.a != null\noutput: {stdout: {}}\n")
    local r = h.sluice("run --log-level warn " .. f, {stdin = '{"a":1,"b":[1,2]}\n'})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({a = 1, b = {1, 2}, seen = true}, json.decode(h.lines(r.stdout)[1]))
    for _, case in ipairs({{"meta m = \"1\"", 0, "not json"}, {"root.seen = this.a", 1, "not JSON"}}) do
      local code, out = run({case[1], "not json"})
      out = out or {}
      assert.are.equal(case[2], code)
      if code == 0 then assert.are.equal(case[3], out.content) else assert.matches(case[3], out.error, 1, true) end
    end
  end)

  it("merges an object literal into the message key by key, without building it, keeping the bytes", function()
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    local function config(mapping)
      return h.write(dir .. "/c.yaml", "input: {stdin: {}}\npipeline:\n  processors:\n    - mapping: '" .. mapping ..
        "'\noutput: {stdout: {}}\n")
    end
    -- the seed's Worker: one look-up of `result`, no table made for the literal
    local f = config('root = this.merge({ "result": "bar", "n": 1 })')
    local r = h.sluice("migrate " .. f)
    assert.are.equal(0, r.code, r.stderr)
    assert.matches('R = B.merge_fields(this, "result", "bar", "n", 1)', r.stdout, 1, true)
    assert.is_nil(r.stdout:find("B.object", 1, true))
    r = h.sluice("run --log-level warn " .. f, {stdin = '{ "message" : "hi" }\n{"n":0}\n[]\n'})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.lines(r.stdout)
    assert.are.equal(3, #out)
    assert.are.equal('{ "message" : "hi" ,"result":"bar","n":1}', out[1])
    assert.are.same({n = {0, 1}, result = "bar"}, json.decode(out[2]))
    assert.are.same({{result = "bar", n = 1}}, json.decode(out[3]))   -- an empty array took 100% CPU forever
    -- a key given twice: the literal is built (its last value wins), then merged
    r = h.sluice("migrate " .. config('root = this.merge({"a": 1, "a": 2})'))
    assert.matches("B.merge_into(this, B.object(", r.stdout, 1, true)
  end)

  it("migrate prints the config with each mapping as the lua it runs as, ${NAME} as written", function()
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    local f = h.write(dir .. "/c.yaml", [[
input: {stdin: {}}
pipeline:
  processors:
    - label: enrich
      mapping: |
        root = this
        root.env = env("STAGE")
        root.n = this.n * 2
    - mutation: 'root.seen = true'
      label: ${LABEL:seen}
    - switch:
        - check: 'this.n > 2'
          processors:
            - bloblang: 'root = deleted()'
output: {stdout: {}}
]])
    local r = h.sluice("migrate " .. f)
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stdout:find("mapping:", 1, true))
    assert.matches("${LABEL:seen}", r.stdout, 1, true)
    assert.matches("label: enrich", r.stdout, 1, true)
    local m = h.write(dir .. "/m.yaml", r.stdout)
    local input = '{"n":1}\n{"n":2}\n{"n":3}\n'
    local a = h.sluice("run --log-level warn " .. f, {stdin = input})
    local b = h.sluice("run --log-level warn " .. m, {stdin = input})
    assert.are.equal(0, a.code, a.stderr)
    assert.are.equal(0, b.code, b.stderr)
    local la, lb = h.lines(a.stdout), h.lines(b.stdout)
    assert.are.equal(1, #la)
    assert.are.same(json.decode(la[1]), json.decode(lb[1]))
    assert.matches('"env":null', la[1], 1, true)
    assert.matches('"seen":true', la[1], 1, true)
    assert.matches('"n":2', la[1], 1, true)
    -- what is not translated stays Bloblang, named on stderr, exit 1
    f = h.write(dir .. "/k.yaml", "input: {stdin: {}}\npipeline:\n  processors:\n    - mapping: |\n        root = this\n" ..
      "        root.h = this.s.compress(\"gzip\")\noutput: {stdout: {}}\n")
    r = h.sluice("migrate " .. f)
    assert.are.equal(1, r.code)
    assert.matches("k.yaml:6: mapping kept as Bloblang: the Bloblang method compress()", r.stderr, 1, true)
    assert.matches("mapping: |", r.stdout, 1, true)
    f = h.write(dir .. "/e.yaml", "input: {stdin: {}}\npipeline:\n  processors:\n    - mapping: 'root.k = \"${KEY:x}\"'\n" ..
      "output: {stdout: {}}\n")
    r = h.sluice("migrate " .. f)
    assert.are.equal(1, r.code)
    assert.matches("e.yaml:4: mapping kept as Bloblang: it holds ${NAME}", r.stderr, 1, true)
    assert.matches("${KEY:x}", r.stdout, 1, true)
  end)
end)
