-- The config loader and validator through `sluice lint` / `sluice run`:
-- positions, every error reported, ${ENV}, YAML features, hostile input.
local h = require("spec.helpers")

local function lint(yaml, opts)
  return h.run_config(yaml, {cmd = "lint", args = opts and opts.args, timeout = 20})
end

-- file:line:col: key: message lines of stderr, with the temp file name removed.
local function errors(r)
  local t = {}
  for _, l in ipairs(h.lines(r.stderr)) do
    local pos, rest = l:match("^[^:]+:(%d+:%d+): (.*)$")
    if pos then t[#t + 1] = pos .. ": " .. rest end
  end
  return t
end

local function has(list, pattern)
  for _, l in ipairs(list) do
    if l:find(pattern) then return true end
  end
  return false
end

describe("config errors", function()
  it("reports every problem with line, column, key and did-you-mean", function()
    local r = lint([[
input:
  genrate:
    count: 3
output:
  stdout:
    codec: lines
    bogus: 1
max_in_flight: abc
shutdown_timeout: 5 seconds
logger:
  level: inof
lgger: {}
]])
    assert.are.equal(1, r.code)
    local e = errors(r)
    assert.is_true(has(e, '^2:3: input%.genrate: unknown input "genrate" %(did you mean "generate"%?%)'), r.stderr)
    assert.is_true(has(e, "^7:5: output%.stdout%.bogus: unknown field"), r.stderr)
    assert.is_true(has(e, '^8:16: max_in_flight: "abc" is not an integer'), r.stderr)
    assert.is_true(has(e, "^9:19: shutdown_timeout: .*duration"), r.stderr)
    assert.is_true(has(e, '^11:10: logger%.level: unknown value "inof" %(did you mean "info"%?%)'), r.stderr)
    assert.is_true(has(e, '^12:1: lgger: unknown top%-level key %(did you mean "logger"%?%)'), r.stderr)
    assert.are.equal(6, #e)
    assert.matches("6 errors", r.stderr)
  end)

  it("suggests field names inside components", function()
    local r = lint("input:\n  stdin:\n    codc: lines\noutput:\n  stdout: {}\n")
    assert.are.equal(1, r.code)
    assert.is_true(has(errors(r), '^3:5: input%.stdin%.codc: unknown field %(did you mean "codec"%?%)'), r.stderr)
  end)

  it("counts a swap of two neighbouring letters as one edit", function()
    local r = lint("input:\n  stdin: {}\npipeline:\n  processors:\n    - lau: 'this.x = 1'\noutput:\n  stdout: {cdoec: lines}\n")
    assert.are.equal(1, r.code)
    local e = errors(r)
    assert.is_true(has(e, '^5:7: pipeline%.processors%.0%.lau: unknown processor "lau" %(did you mean "lua"%?%)'), r.stderr)
    assert.is_true(has(e, '^7:12: output%.stdout%.cdoec: unknown field %(did you mean "codec"%?%)'), r.stderr)
  end)

  it("answers Benthos component names sluice lacks with what to write instead, in lint and run", function()
    local yaml = "input:\n  kafka_franz: {topics: [a]}\npipeline:\n  processors:\n    - jq: '.a'\n" ..
      "    - awk: {codec: text}\noutput: inproc\n"
    for _, cmd in ipairs({"lint", "run"}) do
      local r = h.run_config(yaml, {cmd = cmd, timeout = 20})
      assert.are.equal(1, r.code, cmd)
      local e = errors(r)
      assert.is_true(has(e, '^5:7: pipeline%.processors%.0%.jq: unknown processor "jq": write the transformation as ' ..
        'a `lua` processor; see docs/components/processors/lua%.md'), r.stderr)
      assert.is_true(has(e, '^6:7: pipeline%.processors%.1%.awk: unknown processor "awk": write'), r.stderr)
      assert.is_true(has(e, '^2:3: input%.kafka_franz: unknown input "kafka_franz": use `kafka`'), r.stderr)
      assert.is_true(has(e, '^7:9: output: unknown output "inproc": use `stream`'), r.stderr)
    end
  end)

  it("takes http.enabled: false as Benthos does: no server at all, and a component that serves HTTP is an error", function()
    local port = h.port()
    local yaml = "http: {enabled: false, address: 127.0.0.1:" .. port .. "}\n" ..
      "input: {generate: {count: 0, interval: 50ms, mapping: 'return {n = i}'}}\noutput: {drop: {}}\n"
    assert.are.equal(0, lint(yaml).code)
    local srv = h.run_config(yaml, {cmd = "run", timeout = 2})
    -- it ran until the timeout killed it, and nothing listened meanwhile
    assert.are.equal(124, srv.code, srv.stderr)
    assert.is_nil(srv.stderr:find("listening", 1, true), srv.stderr)
    local r = lint("http: {enabled: false}\ninput: {http_server: {path: /x}}\noutput: {stdout: {}}\n")
    assert.are.equal(1, r.code)
    assert.is_true(has(errors(r), "^2:9: http_server: serves HTTP, but http.enabled is false"), r.stderr)
  end)

  it("takes enum values in any case and an empty duration for 0, as Benthos writes them", function()
    local yaml = "logger: {level: WARN}\ninput: {generate: {count: 1, interval: '', mapping: 'return 1'}}\n" ..
      "output: {stdout: {codec: Lines}}\n"
    local r = lint(yaml)
    assert.are.equal(0, r.code, r.stderr)
    r = h.run_config(yaml)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("1\n", r.stdout)
    assert.is_nil(r.stderr:find("level=info", 1, true), r.stderr)
  end)

  it("reports missing required parts; one top-level stream reads stdin and writes stdout without them, as Benthos", function()
    local r = lint("streams:\n  a:\n    input:\n      stdin: {}\n")
    assert.are.equal(1, r.code)
    assert.is_true(has(errors(r), "streams.a.output: missing required field"), r.stderr)
    r = h.run_config("pipeline:\n  processors:\n    - lua: 'this.n = this.n + 1'\n", {stdin = '{"n":1}\n{"n":2}\n'})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal('{"n":2}\n{"n":3}\n', r.stdout)
  end)

  it("accepts a file of only http: and store: as a server of the streams API (Synap), and stops it on SIGTERM", function()
    local yaml = "http:\n  address: 127.0.0.1:$PORT\nstore:\n  data_dir: ./data\n"
    local r = lint((yaml:gsub("%$PORT", "4195")))
    assert.are.equal(0, r.code, r.stderr)
    local srv = h.serve(yaml)
    local ok, err = pcall(function()
      local _, out = h.sh("curl -s -m 10 " .. srv.url .. "/ready")
      assert.are.same({ready = true}, h.json.decode(out))
      _, out = h.sh("curl -s -m 10 -w ' %{http_code}' -X POST -d '{\"partitions\": 2}' " .. srv.url .. "/stream/orders")
      assert.matches(" 201$", out)
      _, out = h.sh("curl -s -m 10 -X POST -d '{\"data\": {\"n\": 1}}' " .. srv.url .. "/stream/orders/publish")
      _, out = h.sh("curl -s -m 10 " .. srv.url .. "/stream/list")
      assert.are.same({"orders"}, h.json.decode(out).streams)
    end)
    local rc = srv.stop()
    assert(ok, err)
    assert.are.equal(0, rc)
    -- Without a server section there is nothing to run: still an error.
    r = lint("logger: {level: info}\n")
    assert.are.equal(1, r.code)
    assert.matches("no stream defined", r.stderr)
  end)

  it("refuses a file that mixes a top-level stream and streams:", function()
    local r = lint("input: {stdin: {}}\noutput: {stdout: {}}\nstreams:\n  a: {input: {stdin: {}}, output: {stdout: {}}}\n")
    assert.are.equal(1, r.code)
    assert.matches("either one stream", r.stderr)
  end)

  it("names both places when two streams share a name across files", function()
    local a = h.write(h.tmpname(".yaml"), "streams:\n  s: {input: {stdin: {}}, output: {stdout: {}}}\n")
    local b = h.write(h.tmpname(".yaml"), "streams:\n  s: {input: {stdin: {}}, output: {drop: {}}}\n")
    local r = h.sluice("lint " .. a .. " " .. b)
    os.remove(a); os.remove(b)
    assert.are.equal(1, r.code)
    assert.matches('stream "s" is also defined at .*:2', r.stderr)
  end)

  it("runs the streams of several files side by side", function()
    local d = h.tmpdir()
    h.write(d .. "/a.yaml", "input:\n  generate: {count: 3, interval: 0, mapping: 'return {a = i}'}\noutput:\n  file: {path: a.out}\n")
    h.write(d .. "/b.yaml", "streams:\n  b:\n    input:\n      generate: {count: 2, interval: 0, mapping: 'return {b = i}'}\n" ..
      "    output:\n      file: {path: b.out}\n")
    local r = h.sluice("run " .. d .. "/a.yaml " .. d .. "/b.yaml")
    local a, b = h.read(d .. "/a.out"), h.read(d .. "/b.out")
    h.rmdir(d)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal('{"a":1}\n{"a":2}\n{"a":3}\n', a)
    assert.are.equal('{"b":1}\n{"b":2}\n', b)
  end)

  it("checks types of every kind", function()
    local r = lint([[
input:
  generate:
    count: many
    interval: soon
    mapping: 'return {}'
output:
  stdout:
    codec: [a]
]])
    assert.are.equal(1, r.code)
    local e = errors(r)
    assert.is_true(has(e, 'input%.generate%.count: "many" is not an integer'), r.stderr)
    assert.is_true(has(e, 'input%.generate%.interval: "soon" is not a duration'), r.stderr)
    assert.is_true(has(e, "output%.stdout%.codec: expected"), r.stderr)
  end)

  it("checks generate's and batch's counts against their fields' bounds, with the full key", function()
    local r = lint([[
input:
  generate: {count: -1, batch_size: 0, mapping: 'return 1'}
pipeline:
  processors:
    - batch: {count: -2}
output:
  drop: {}
]])
    assert.are.equal(1, r.code)
    local e = errors(r)
    assert.is_true(has(e, "^2:21: input%.generate%.count: %-1 is out of range: must be at least 0"), r.stderr)
    assert.is_true(has(e, "^2:37: input%.generate%.batch_size: 0 is out of range: must be between 1 and 1000000"),
      r.stderr)
    assert.is_true(has(e, "^5:22: pipeline%.processors%.0%.batch%.count: %-2 is out of range: must be at least 0"),
      r.stderr)
    assert.are.equal(3, #e, r.stderr)
  end)

  it("refuses in lint what run refuses: addresses, and values out of their field's bounds", function()
    local yaml = [[
http:
  address: 999.1.1.1:99999
store:
  partitions: 0
metrics:
  prometheus: {push_url: "http://127.0.0.1:9", push_interval: 0s}
tracer:
  otlp: {endpoint: "http://127.0.0.1:9", sample_ratio: 1.5}
streams:
  a:
    input:
      generate: {count: 1, mapping: 'return 1'}
    output:
      stream: {name: s, partitions: 5000}
    tracer:
      otlp: {endpoint: "http://127.0.0.1:9", sample_ratio: -0.5}
]]
    for _, cmd in ipairs({"lint", "run"}) do
      local r = h.run_config(yaml, {cmd = cmd, timeout = 20})
      assert.are.equal(1, r.code, cmd)
      local e = errors(r)
      assert.is_true(has(e, '^2:12: http%.address: "999%.1%.1%.1:99999" is not an address to listen on: the port must be'),
        r.stderr)
      assert.is_true(has(e, "^4:15: store%.partitions: 0 is out of range: must be between 1 and 1024"), r.stderr)
      assert.is_true(has(e, "^6:63: metrics%.prometheus%.push_interval: 0s is out of range: must be at least 1ms"), r.stderr)
      assert.is_true(has(e, "^8:56: tracer%.otlp%.sample_ratio: 1%.5 is out of range: must be between 0 and 1"), r.stderr)
      assert.is_true(has(e, "^14:37: streams%.a%.output%.stream%.partitions: 5000 is out of range"), r.stderr)
      assert.is_true(has(e, "^16:60: streams%.a%.tracer%.otlp%.sample_ratio: %-0%.5 is out of range"), r.stderr)
      assert.are.equal(6, #e, r.stderr)
    end
    -- The host is checked too, and a port that does not fit 16 bits is never cut to one that does.
    for addr, why in pairs({["1.2.3:80"] = "the host must be", ["127.0.0.1:70000"] = "the port must be",
      ["[::1]"] = "expected host:port"}) do
      local r = lint("http: {address: '" .. addr .. "'}\nstore: {}\n")
      assert.are.equal(1, r.code, addr)
      assert.is_true(has(errors(r), "^1:17: http%.address: .*" .. why), r.stderr)
    end
    for _, addr in ipairs({"127.0.0.1:0", ":4195", "localhost:4195", "[::]:4195", "0.0.0.0:65535"}) do
      local r = lint("http: {address: '" .. addr .. "'}\nstore: {}\n")
      assert.are.equal(0, r.code, addr .. ": " .. r.stderr)
    end
  end)

  it("reports YAML syntax errors with a position", function()
    local r = lint("input:\n  stdin: {\noutput: x\n")
    assert.are.equal(1, r.code)
    assert.matches(":%d+:%d+: ", r.stderr)
  end)

  it("refuses duplicate keys and several documents", function()
    local r = lint("input: {stdin: {}}\noutput: {stdout: {}}\noutput: {drop: {}}\n")
    assert.are.equal(1, r.code)
    assert.matches("3:1: output: duplicate key %(first set at line 2%)", r.stderr)
    r = lint("input: {stdin: {}}\noutput: {stdout: {}}\n---\ninput: {stdin: {}}\n")
    assert.are.equal(1, r.code)
    assert.matches("one YAML document", r.stderr)
  end)

  it("exits 1 on a file that does not exist", function()
    local r = h.sluice("lint /nonexistent/sluice.yaml")
    assert.are.equal(1, r.code)
    assert.matches("/nonexistent/sluice.yaml:0:0: cannot open", r.stderr)
  end)
end)

describe("config values", function()
  it("substitutes ${ENV} and ${ENV:default}, and refuses an unset variable without default", function()
    local yaml = "input:\n  stdin:\n    codec: ${SL_T_CODEC:lines}\noutput:\n  stdout:\n    codec: ${SL_T_OUT}\n"
    local path = h.write(h.tmpname(".yaml"), yaml)
    local code, out, err = h.sh("SL_T_OUT=lines " .. h.bin .. " run " .. path, "a\nb\n")
    assert.are.equal(0, code, err)
    assert.are.equal("a\nb\n", out)
    code, out, err = h.sh("env -u SL_T_OUT " .. h.bin .. " lint " .. path)
    os.remove(path)
    assert.are.equal(1, code)
    assert.matches("6:12: SL_T_OUT: environment variable is not set", err)
  end)

  it("keeps $${ as a literal ${", function()
    local r = h.run_config("input:\n  generate: {count: 1, interval: 0, mapping: 'return \"$${HOME}\"'}\noutput: {stdout: {}}\n")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("${HOME}\n", r.stdout)
  end)

  it("applies --set overrides, parsed as YAML", function()
    local r = h.run_config("input:\n  stdin: {}\noutput:\n  drop: {}\n",
      {args = "--set output='{stdout: {}}'", stdin = "x\n"})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("x\n", r.stdout)
    r = h.run_config("input: {stdin: {}}\noutput: {stdout: {}}\n", {cmd = "lint", args = "--set nonsense"})
    assert.are.equal(1, r.code)
    assert.matches("expected PATH=VALUE", r.stderr)
  end)

  it("expands anchors, aliases and merge keys", function()
    local r = h.run_config([[
base: &out
  stdout: {codec: lines}
input: {stdin: {}}
output: *out
]], {cmd = "lint"})
    -- `base` is not a config key: the alias works but the anchor's home is reported.
    assert.are.equal(1, r.code)
    assert.matches("base: unknown top%-level key", r.stderr)
    r = h.run_config([[
streams:
  a: &s
    input: {stdin: {}}
    output: {stdout: {}}
  b:
    <<: *s
    output: {drop: {}}
]], {cmd = "lint"})
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("accepts a bare component name", function()
    local r = h.run_config("input: stdin\noutput: stdout\n", {stdin = "q\n"})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("q\n", r.stdout)
  end)
end)

describe("hostile YAML", function()
  it("bounds alias expansion (billion laughs)", function()
    local lines = {"a0: &a0 [x, x, x, x, x, x, x, x, x, x]"}
    for i = 1, 9 do
      local refs = {}
      for _ = 1, 10 do refs[#refs + 1] = "*a" .. (i - 1) end
      lines[#lines + 1] = string.format("a%d: &a%d [%s]", i, i, table.concat(refs, ", "))
    end
    local r = lint(table.concat(lines, "\n") .. "\n")
    assert.are.equal(1, r.code)
    assert.matches("expands the document beyond", r.stderr)
  end)

  it("expands an alias of an anchored key (a use after free found by fuzz_conf)", function()
    local r = lint("&k input: {stdin: {}}\noutput: {stdout: {}}\nx:\n  *k : 1\n")
    assert.are.equal(1, r.code)
    assert.matches("x: unknown top%-level key", r.stderr)
  end)

  it("bounds nesting depth", function()
    local r = lint(string.rep("[", 5000) .. string.rep("]", 5000) .. "\n")
    assert.are.equal(1, r.code)
    assert.matches("nested too deeply", r.stderr)
  end)

  -- A CPU-time bound, not a timing: lint takes about a second here, while the
  -- duplicate-key check that compared each key with every earlier one took
  -- minutes (100k keys: 18-37 s, quadratic).
  it("lints 150k top-level keys and a map of 100k keys in linear time", function()
    local t = {"input: {stdin: {}}", "output: {drop: {}}", "logger:", "  static_fields:"}
    for i = 1, 100000 do t[#t + 1] = "    f" .. i .. ": v" end
    for i = 1, 150000 do t[#t + 1] = "key_" .. i .. ": " .. i end
    local path = h.write(h.tmpname(".yaml"), table.concat(t, "\n") .. "\n")
    local code, _, err = h.sh("ulimit -t 60; " .. h.bin .. " lint " .. path)
    os.remove(path)
    assert.are.equal(1, code)
    assert.matches("\n150000 errors\n$", err)
  end)

  -- Each inline script was put on its config line by prefixing that many
  -- newlines: compiling cost its line number, quadratic in a file of many
  -- scripts (this file: minutes of CPU; now 2 s). Comments between the
  -- streams move the scripts down without adding nodes.
  it("lints 30k streams with a Lua processor each in linear time", function()
    local t = {"streams:"}
    local pad = string.rep("#\n", 40)
    for i = 1, 30000 do
      t[#t + 1] = pad .. "  s" .. i .. ":\n    input: {stdin: {}}\n    pipeline:\n      processors:\n" ..
        "        - lua: |\n            this.n = " .. i .. "\n    output: {drop: {}}"
    end
    local path = h.write(h.tmpname(".yaml"), table.concat(t, "\n") .. "\n")
    local code, _, err = h.sh("ulimit -t 60; " .. h.bin .. " lint " .. path)
    os.remove(path)
    assert.are.equal(0, code, err:sub(1, 2000))
  end)

  -- The same kind of bound for building: each component registers metric
  -- series and a trace site, which were found by a walk through all of
  -- them (40k processors: minutes of CPU; now half a second).
  it("builds 40 streams of 1000 processors in linear time", function()
    local t = {"streams:"}
    local procs = string.rep("split, ", 999) .. "split"
    for i = 1, 40 do
      t[#t + 1] = string.format("  s%d: {input: {generate: {count: 1, interval: 0, mapping: 'return %d'}}, " ..
        "pipeline: {processors: [%s]}, output: {stdout: {}}}", i, i, procs)
    end
    local path = h.write(h.tmpname(".yaml"), table.concat(t, "\n") .. "\n")
    local code, out, err = h.sh("ulimit -t 60; " .. h.bin .. " run " .. path)
    os.remove(path)
    assert.are.equal(0, code, err)
    assert.are.equal(40, #h.lines(out))
  end)

  it("refuses a stream of more than 1024 processors, nested ones included (the chain is a depth of the C stack)", function()
    local r = lint("input: {stdin: {}}\npipeline:\n  processors:\n    - try: [" .. string.rep("split, ", 1000) ..
      "split]\n    - catch: [" .. string.rep("split, ", 30) .. "split]\noutput: {drop: {}}\n")
    assert.are.equal(1, r.code)
    assert.is_true(has(errors(r), "^5:%d+: .*pipeline%.processors%.1%.catch.*: a stream holds at most 1024 processors"),
      r.stderr)
    r = lint("input: {stdin: {}}\npipeline:\n  processors:\n    - try: [" .. string.rep("split, ", 1000) ..
      "split]\n    - catch: [" .. string.rep("split, ", 20) .. "split]\noutput: {drop: {}}\n")
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("never crashes on garbage", function()
    local seeds = {"", ":", "- - -", "{", "\0\1\2", "input: !!binary aGVsbG8=", "? [a]\n: b",
      "input: *nope", "%YAML 9.9\n---\na: b", "\239\187\191input: {}", "a: 'unterminated"}
    for _, s in ipairs(seeds) do
      local r = lint(s)
      assert.are.equal(1, r.code, s)
      assert.matches("%d+ errors?", r.stderr)
    end
  end)
end)
