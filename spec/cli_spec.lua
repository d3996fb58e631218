-- The command line: version, list, doc, lint, test, flags.
local h = require("spec.helpers")
local json = h.json

local tmpdir = h.tmpdir

describe("sluice CLI", function()
  it("prints its version and usage", function()
    local r = h.sluice("version")
    assert.are.equal(0, r.code)
    assert.matches("^sluice %d+%.%d+%.%d+", r.stdout)
    r = h.sluice("help")
    assert.are.equal(0, r.code)
    assert.matches("lint FILE", r.stdout)
    r = h.sluice("frobnicate")
    assert.are.equal(2, r.code)
    assert.matches('unknown command "frobnicate"', r.stderr)
  end)

  it("lists every component, also as JSON", function()
    local r = h.sluice("list")
    assert.are.equal(0, r.code)
    for _, name in ipairs({"stdin", "file", "generate", "lua", "switch", "catch", "try", "split", "batch", "log",
      "rate_limit", "stdout", "drop", "broker", "fallback"}) do
      assert.matches("\n  " .. name:gsub("_", "%%_") .. " ", r.stdout)
    end
    r = h.sluice("list --format json")
    local d = json.decode(r.stdout)
    assert.is_true(#d.inputs >= 3 and #d.processors >= 8 and #d.outputs >= 6)
    assert.is_string(d.processors[1].summary)
  end)

  describe("list --format jsonschema", function()
    -- Checked by Python's jsonschema (Debian's python3-jsonschema), as an
    -- editor's YAML server would: what lint takes passes, what it refuses
    -- (where a schema can say it) fails at the same key.
    local dir, schema
    local PY = "/usr/bin/python3 spec/tools/schema_check.py "
    setup(function()
      dir = h.tmpdir()
      schema = dir .. "/schema.json"
      local r = h.sluice("list --format jsonschema > " .. schema)
      assert.are.equal(0, r.code)
    end)
    teardown(function() h.rmdir(dir) end)

    local function check(files)
      local code, out = h.sh(PY .. schema .. " " .. table.concat(files, " "))
      assert.are.equal(0, code, out)
      return out
    end

    it("is a draft-07 schema that every example config passes", function()
      local _, list = h.sh("ls examples/*.yaml examples/*/*.yaml | grep -v '_test.yaml$'")
      local files = h.lines(list)
      assert.is_true(#files >= 7)
      local out = check(files)
      for _, f in ipairs(files) do assert.matches(f:gsub("%p", "%%%0") .. ": ok", out) end
    end)

    it("takes the shapes lint takes: bare names, shorthands, ${ENV}, any case, named streams", function()
      local good = h.write(dir .. "/good.yaml", [[
logger: {level: WARN}
http: {address: "127.0.0.1:4195"}
streams:
  a:
    input:
      generate: {count: "${COUNT:3}", interval: 0, mapping: "return {n = i}"}
      processors: [{lua: "return nil"}]
    pipeline: {processors: [{label: x, lua: {code: "return nil"}}, {label: y, log: {message: hi}}]}
    output: drop
  b:
    input: {stdin: {}}
    output: {label: out, stdout: {codec: lines}}
]])
      local r = h.sluice("lint " .. good)
      assert.are.equal(0, r.code, r.stdout .. r.stderr)
      assert.matches("good.yaml: ok", check({good}))
    end)

    it("refuses at the key what lint refuses", function()
      local cases = {
        {"typo", "input: {generate: {mapping: 'return 1', cout: 3}}\noutput: drop\n", "input", "cout"},
        {"enum", "logger: {level: loud}\ninput: {stdin: {}}\noutput: drop\n", "logger/level", "loud"},
        {"type", "input: {generate: {mapping: 'return 1', count: many}}\noutput: drop\n", "input", "many"},
        {"bound", "input: {generate: {mapping: 'return 1', count: -1}}\noutput: drop\n", "input", "-1"},
        {"component", "input: {stdinn: {}}\noutput: drop\n", "input", "stdinn"},
        {"top", "inptu: {stdin: {}}\noutput: drop\n", "(root)", "inptu"},
        {"nested", "input: {stdin: {}}\noutput: drop\nhttp: {tls: {cert_fil: x}}\n", "http/tls", "cert_fil"},
      }
      local files = {}
      for _, c in ipairs(cases) do
        files[#files + 1] = h.write(dir .. "/" .. c[1] .. ".yaml", c[2])
        local r = h.sluice("lint " .. files[#files])
        assert.are_not.equal(0, r.code, c[1] .. " passed lint")
      end
      local out = check(files)
      for _, c in ipairs(cases) do
        local line = out:match(c[1] .. "%.yaml: ([^\n]*)")
        assert.is_not_nil(line, c[1])
        assert.matches("^invalid at " .. c[3]:gsub("%p", "%%%0"), line, nil, false)
        assert.matches(c[4], line, 1, true)
      end
    end)

    it("lists as YAML what it lists as JSON, and refuses an unknown format", function()
      local code, out = h.sh(h.bin .. " list --format yaml | /usr/bin/python3 -c 'import json,sys,yaml; " ..
        "print(json.dumps(yaml.safe_load(sys.stdin), sort_keys=True))'")
      assert.are.equal(0, code)
      local _, js = h.sh(h.bin .. " list --format json | /usr/bin/python3 -c 'import json,sys; " ..
        "print(json.dumps(json.load(sys.stdin), sort_keys=True))'")
      assert.are.equal(js, out)
      local r = h.sluice("list --format xml")
      assert.are.equal(2, r.code)
      assert.matches('unknown list format "xml"', r.stderr, 1, true)
      assert.are.equal("", r.stdout)
    end)
  end)

  describe("lua", function()
    it("maps each line of stdin in order, as a lua processor would", function()
      local lines = {}
      for i = 1, 1000 do lines[i] = json.encode({n = i}) end
      local r = h.sluice("lua -e 'this.sq = this.n * this.n; if this.n % 100 == 0 then return deleted() end'",
        {stdin = table.concat(lines, "\n") .. "\n"})
      assert.are.equal(0, r.code, r.stderr)
      local out = h.lines(r.stdout)
      assert.are.equal(990, #out)
      local want = 0
      for _, l in ipairs(out) do
        want = want + 1
        if want % 100 == 0 then want = want + 1 end
        local d = json.decode(l)
        assert.are.same({n = want, sq = want * want}, d)
      end
    end)

    it("takes --input, --meta and a request's --ctx, and prints metadata with -v", function()
      local r = h.sluice([[lua --input '{"x":"hi"}' --meta k=v --meta e=a=b -v ]] ..
        [[--ctx '{"user":"ada","method":"POST","headers":{"X-A":"1"},"jwt":{"n":3}}' ]] ..
        [[-e 'meta.out = ctx.user .. ctx.method .. ctx.headers["X-A"] .. meta.k .. meta.e .. ctx.jwt.n; this.y = 1']])
      assert.are.equal(0, r.code, r.stderr)
      local d = json.decode(r.stdout)
      assert.are.same({x = "hi", y = 1}, json.decode(d.content))
      assert.are.same({k = "v", e = "a=b", out = "adaPOST1va=b3"}, d.metadata)
    end)

    it("fails a message with its file and line, and keeps the budget", function()
      local dir = h.tmpdir()
      finally(function() h.rmdir(dir) end)
      local f = h.write(dir .. "/m.lua", "local a = 1\n\nif this.bad then error('no good') end\n")
      local r = h.sluice("lua " .. f, {stdin = '{"bad":false}\n{"bad":true}\n{"bad":false}\n'})
      assert.are.equal(1, r.code)
      assert.are.equal(2, #h.lines(r.stdout))
      assert.matches("error: " .. f:gsub("%p", "%%%0") .. ":3: no good", r.stderr)
      r = h.sluice("lua --input x -e 'while true do end'")
      assert.are.equal(1, r.code)
      assert.matches("budget", r.stderr)
    end)

    it("refuses what cannot run: syntax errors, bad --ctx, no script", function()
      local r = h.sluice("lua -e 'local x = '")
      assert.are.equal(2, r.code)
      assert.matches("-e:1:1: code: Lua", r.stderr, 1, true)
      r = h.sluice("lua --ctx '[1]' -e 'x = 1'")
      assert.are.equal(2, r.code)
      assert.matches("--ctx: expected a JSON object", r.stderr, 1, true)
      r = h.sluice("lua --ctx '{\"usr\":\"a\"}' -e 'x = 1'")
      assert.are.equal(2, r.code)
      assert.matches('unknown or mistyped member "usr"', r.stderr, 1, true)
      r = h.sluice("lua")
      assert.are.equal(2, r.code)
      assert.matches("usage: sluice lua", r.stderr, 1, true)
      r = h.sluice("lua /nonexistent.lua")
      assert.are.equal(2, r.code)
    end)
  end)

  it("documents a component from its spec, and suggests a name for a typo", function()
    local r = h.sluice("doc rate_limit")
    assert.are.equal(0, r.code)
    assert.matches("# rate_limit %(processor%)", r.stdout)
    assert.matches("| `count` | int | `1000` |", r.stdout, 1, true)
    r = h.sluice("doc genrate")
    assert.are.equal(1, r.code)
    assert.matches('did you mean "generate"', r.stderr)
    r = h.sluice("doc config")
    assert.are.equal(0, r.code)
    assert.matches("shutdown_timeout", r.stdout)
    assert.matches("max_steps", r.stdout)
  end)

  it("writes the whole reference with doc --all", function()
    local d = tmpdir()
    local r = h.sluice("doc --all --out " .. d)
    assert.are.equal(0, r.code)
    assert.matches("%[lua%]%(processors/lua%.md%)", h.read(d .. "/README.md"))
    assert.matches("# switch %(output%)", h.read(d .. "/outputs/switch.md"))
    assert.matches("## `lua:`", h.read(d .. "/config.md"))
    os.execute("rm -rf " .. d)
  end)

  it("keeps docs/components in step with the specs (run `make docs`)", function()
    local d = tmpdir()
    assert.are.equal(0, h.sluice("doc --all --out " .. d).code)
    local code, out = h.sh("diff -r " .. d .. " docs/components")
    os.execute("rm -rf " .. d)
    assert.are.equal(0, code, out)
  end)

  it("lints a good file quietly and exits 0", function()
    local r = h.run_config("input: {stdin: {}}\npipeline:\n  processors:\n    - lua: 'this.x = 1'\noutput: {stdout: {}}\n",
      {cmd = "lint"})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("", r.stdout)
  end)

  it("refuses an unknown log level and an unknown option", function()
    local r = h.run_config("input: {stdin: {}}\noutput: {stdout: {}}\n", {args = "--log-level loud"})
    assert.are.equal(2, r.code)
    assert.matches("unknown log level", r.stderr)
    r = h.run_config("input: {stdin: {}}\noutput: {stdout: {}}\n", {args = "--frob"})
    assert.are.equal(2, r.code)
  end)

  it("--log-level overrides logger.level", function()
    local yaml = "logger: {level: error}\ninput: {stdin: {}}\npipeline:\n  processors:\n    - log: {level: debug, message: seen}\noutput: {drop: {}}\n"
    local r = h.run_config(yaml, {stdin = "x\n", args = "--log-level debug"})
    assert.are.equal(0, r.code)
    assert.matches('msg=seen', r.stderr)
    r = h.run_config(yaml, {stdin = "x\n"})
    assert.is_nil(r.stderr:find("seen", 1, true))
  end)

  it("writes JSON logs with logger.format json", function()
    local r = h.run_config("logger: {format: json}\ninput: {stdin: {}}\npipeline:\n  processors:\n    - log: {message: hi}\noutput: {drop: {}}\n",
      {stdin = "x\n"})
    local line = h.lines(r.stderr)[1]
    local d = json.decode(line)
    assert.are.equal("hi", d.msg)
    assert.are.equal("main", d.stream)
  end)
end)

describe("sluice test", function()
  local d
  before_each(function()
    d = tmpdir()
    h.write(d .. "/pipe.yaml", [[
input: {stdin: {}}
pipeline:
  processors:
    - lua: |
        if this.skip then return deleted() end
        this.greeting = "hello " .. this.name
        meta.seen = env("GREETED") or "yes"
output: {stdout: {}}
]])
  end)
  after_each(function() os.execute("rm -rf " .. d) end)

  it("runs tests a config holds itself and Benthos's foo_benthos_test.yaml, with keys in any order", function()
    h.write(d .. "/inline.yaml", [[
pipeline:
  processors:
    - mapping: |
        root.b = this.a + 1
        root.a = this.a
tests:
  - name: inline
    input_batch:
      - content: '{"a":1}'
    output_batches:
      - - content_equals: '{"a":1,"b":2}'
]])
    local r = h.sluice("test " .. d .. "/inline.yaml")
    assert.are.equal(0, r.code, r.stdout)
    assert.matches("PASS .*inline.yaml: inline", r.stdout)
    -- run and lint leave tests: to sluice test; the one stream reads stdin, writes stdout
    r = h.sluice("run --log-level warn " .. d .. "/inline.yaml", {stdin = '{"a":5}\n'})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({a = 5, b = 6}, json.decode(r.stdout))
    -- key order is free, the values are not; content that is not an object compares bytes
    h.write(d .. "/bad.yaml", (h.read(d .. "/inline.yaml"):gsub('"b":2', '"b":3')))
    r = h.sluice("test " .. d .. "/bad.yaml")
    assert.are.equal(1, r.code)
    assert.matches("content_equals", r.stdout)
    h.write(d .. "/pipe_benthos_test.yaml", "tests:\n  - name: named\n    input_batch:\n" ..
      "      - content: '{\"name\":\"al\"}'\n    output_batches:\n      - - json_equals: {name: al, greeting: hello al}\n")
    r = h.sluice("test " .. d .. "/pipe_benthos_test.yaml")
    assert.are.equal(0, r.code, r.stdout)
  end)

  it("passes when the output matches", function()
    h.write(d .. "/pipe_test.yaml", [[
tests:
  - name: greets and drops
    environment: {GREETED: "by test"}
    input_batch:
      - content: '{"name":"ada"}'
        metadata: {topic: a}
      - json_content: {name: bob, skip: true}
      - json_content: {name: cy}
    output_batches:
      - - json_equals: {name: ada, greeting: hello ada}
          metadata_equals: {topic: a, seen: by test}
        - content_matches: 'hello cy'
          errored: false
]])
    local r = h.sluice("test " .. d)
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("PASS .*pipe_test%.yaml: greets and drops", r.stdout)
    assert.matches("1 passed, 0 failed", r.stdout)
  end)

  it("fails with a diff when it does not", function()
    h.write(d .. "/pipe_test.yaml", [[
tests:
  - name: wrong greeting
    input_batch:
      - content: '{"name":"ada"}'
    output_batches:
      - - json_equals: {greeting: hi}
  - name: wrong count
    input_batch:
      - content: '{"name":"ada"}'
    output_batches: []
]])
    local r = h.sluice("test " .. d .. "/pipe_test.yaml")
    assert.are.equal(1, r.code)
    assert.matches("FAIL .*wrong greeting", r.stdout)
    assert.matches('expected: {"greeting":"hi"}', r.stdout, 1, true)
    assert.matches('actual:   {"[a-z]+":"[a-z ]+","[a-z]+":"[a-z ]+"}', r.stdout)
    assert.matches('"greeting":"hello ada"', r.stdout, 1, true)
    assert.matches("expected 0 output batch%(es%), got 1", r.stdout)
    assert.matches("0 passed, 2 failed", r.stdout)
  end)

  it("reports config errors of the tested file", function()
    h.write(d .. "/broken.yaml", "input: {stdin: {}}\noutput: {stdot: {}}\n")
    h.write(d .. "/broken_test.yaml", "tests:\n  - input_batch: [{content: x}]\n    output_batches: [[{content_equals: x}]]\n")
    local r = h.sluice("test " .. d .. "/broken_test.yaml")
    assert.are.equal(1, r.code)
    assert.matches('broken%.yaml:2:10: output%.stdot: unknown output "stdot" %(did you mean "stdout"%?%)', r.stdout)
  end)

  it("runs the examples' tests", function()
    local r = h.sluice("test examples")
    assert.are.equal(0, r.code, r.stdout)
    assert.matches("[1-9]%d* passed, 0 failed", r.stdout)
  end)
end)
