-- The built-in processors other than `lua`, through the real binary.
local h = require("spec.helpers")
local json = h.json

local function run(procs, input, extra)
  local yaml = "input:\n  stdin: {}\npipeline:\n  processors:\n" .. procs .. "output:\n  stdout: {}\n" .. (extra or "")
  local r = h.run_config(yaml, {stdin = input})
  assert.are.equal(0, r.code, r.stderr)
  return h.lines(r.stdout), r
end

local decode_all = h.decode_lines

local function sorted_by_n(t)
  table.sort(t, function(a, b) return a.n < b.n end)
  return t
end

local function ms_of(cmd, input)
  local _, out = h.sh("s=$(date +%s%N); " .. cmd .. " >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))", input)
  return tonumber(out:match("(%d+)"))
end

describe("switch", function()
  local input = '{"n":1,"t":"a"}\n{"n":2,"t":"b"}\n{"n":3,"t":"c"}\n{"n":4,"t":"a"}\n'

  it("routes each message to the first matching case; unmatched pass unchanged", function()
    local out = sorted_by_n(decode_all(run([[
    - switch:
        cases:
          - check: 'this.t == "a"'
            processors:
              - lua: 'this.case = "A"'
          - check: 'this.t == "a" or this.t == "b"'
            processors:
              - lua: 'this.case = "AB"'
]], input)))
    assert.are.same({
      {n = 1, t = "a", case = "A"}, {n = 2, t = "b", case = "AB"}, {n = 3, t = "c"}, {n = 4, t = "a", case = "A"},
    }, out)
  end)

  it("falls through to the next case's processors", function()
    local out = sorted_by_n(decode_all(run([[
    - switch:
        - check: 'this.t == "a"'
          fallthrough: true
          processors:
            - lua: 'this.first = true'
        - check: 'false'
          processors:
            - lua: 'this.second = true'
]], input)))
    assert.are.same({n = 1, t = "a", first = true, second = true}, out[1])
    assert.are.same({n = 2, t = "b"}, out[2])
  end)

  it("a case without check matches everything; a failing check flags the message", function()
    local out = sorted_by_n(decode_all(run([[
    - switch:
        - check: 'this.x.y == 1'
          processors: [{lua: 'this.first = true'}]
        - processors: [{lua: 'this.all = true'}]
    - lua: 'if errored() then this.err = error_message() end'
]], '{"n":1}\n{"n":2,"x":{"y":1}}\n{"n":3,"x":{"y":2}}\n{"n":4,"x":{"y":"a"}}\n')))
    -- n=1: the check raised (no x): flagged, and no case ran
    assert.matches("attempt to index", out[1].err)
    assert.is_nil(out[1].all)
    assert.is_nil(out[1].first)
    -- n=2: the first case matched, so the catch-all did not run
    assert.are.same({n = 2, x = {y = 1}, first = true}, out[2])
    -- n=3, n=4: every message the check did not take reaches the case without one
    assert.are.same({n = 3, x = {y = 2}, all = true}, out[3])
    assert.are.same({n = 4, x = {y = "a"}, all = true}, out[4])
  end)

  it("rejects a bad check at lint", function()
    local r = h.run_config("input: {stdin: {}}\npipeline:\n  processors:\n    - switch:\n        - check: 'this.t =='\n" ..
      "output: {stdout: {}}\n", {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":5:%d+: check: Lua:", r.stderr)
  end)
end)

describe("catch and try", function()
  local FAIL = "    - lua: 'if this.bad then error(\"bad \" .. this.n) end'\n"

  it("catch runs only on failed messages, then clears the flag", function()
    local out = sorted_by_n(decode_all(run(FAIL .. [[
    - catch:
        - lua: 'this.caught = error_message()'
    - lua: 'this.still_failed = errored()'
]], '{"n":1,"bad":true}\n{"n":2}\n')))
    assert.matches("%.yaml:5: bad 1", out[1].caught)
    assert.is_false(out[1].still_failed)
    assert.is_nil(out[2].caught)
    assert.is_false(out[2].still_failed)
  end)

  it("catch without processors just clears", function()
    local out = decode_all(run(FAIL .. "    - catch: []\n    - lua: 'this.failed = errored()'\n", '{"n":1,"bad":true}\n'))
    assert.is_false(out[1].failed)
  end)

  it("try skips the remaining processors after a failure, keeping the flag", function()
    local out = sorted_by_n(decode_all(run([[
    - try:
        - lua: 'if this.bad then error("bad") end'
        - lua: 'this.second = true'
    - lua: 'this.failed = errored()'
]], '{"n":1,"bad":true}\n{"n":2}\n')))
    assert.is_nil(out[1].second)
    assert.is_true(out[1].failed)
    assert.is_true(out[2].second)
    assert.is_false(out[2].failed)
  end)
end)

describe("split and batch", function()
  -- The batch index of each message shows how batches were cut.
  local SHOW = "    - lua: 'return {n = this.n, idx = batch_index()}'\n"
  local function lines(n)
    local t = {}
    for k = 1, n do t[k] = string.format('{"n":%d}', k) end
    return table.concat(t, "\n") .. "\n"
  end
  local function indexes(out)
    local t = {}
    for k, d in ipairs(decode_all(out)) do t[k] = d.idx end
    return t
  end

  it("split cuts batches by size", function()
    local out = run("    - batch: {count: 5}\n    - split: {size: 2}\n" .. SHOW, lines(5))
    assert.are.same({0, 1, 0, 1, 0}, indexes(out))
  end)

  it("split cuts batches by byte_size", function()
    local out = run("    - batch: {count: 4}\n    - split: {size: 100, byte_size: 16}\n" .. SHOW, lines(4))
    assert.are.same({0, 1, 0, 1}, indexes(out))
  end)

  it("batch groups by count and flushes the rest at the end of input", function()
    local out = run("    - batch: {count: 3}\n" .. SHOW, lines(7))
    assert.are.same({0, 1, 2, 0, 1, 2, 0}, indexes(out))
  end)

  it("batch groups by byte_size and by check", function()
    local out = run("    - batch: {byte_size: 14}\n" .. SHOW, lines(4))
    assert.are.same({0, 1, 0, 1}, indexes(out))
    out = run("    - batch: {check: 'this.n % 2 == 0'}\n" .. SHOW, lines(5))
    assert.are.same({0, 1, 0, 1, 0}, indexes(out))
  end)

  it("batch emits on period while the input stays open", function()
    local d = h.tmpdir()
    h.write(d .. "/c.yaml", "input:\n  stdin: {}\npipeline:\n  processors:\n" ..
      "    - batch: {count: 100, period: 200ms}\n" .. SHOW .. "output:\n  stdout: {}\n")
    -- Two lines, then stdin stays open until both came out (at most 30 s):
    -- only the period can emit a batch of 2 of 100 before the end of input,
    -- which would flush it too, so "open" records that the input was still open.
    local code, _, err = h.sh(string.format([[
cd %s && : > out.txt
(printf '{"n":1}\n{"n":2}\n'
 i=0; while [ $i -lt 300 ] && [ "$(wc -l < out.txt)" -lt 2 ]; do sleep 0.1; i=$((i+1)); done
 [ "$(wc -l < out.txt)" -ge 2 ] && echo open > emitted) | %s run c.yaml >> out.txt]], h.shell_quote(d), h.shell_quote(h.abs_bin)))
    local out, emitted = h.lines(h.read(d .. "/out.txt")), h.read(d .. "/emitted")
    h.rmdir(d)
    assert.are.equal(0, code, err)
    assert.are.equal("open\n", emitted, "nothing was emitted while the input was open")
    assert.are.same({0, 1}, indexes(out))
  end)

  it("batch needs at least one limit", function()
    local r = h.run_config("input: {stdin: {}}\npipeline:\n  processors:\n    - batch: {}\noutput: {stdout: {}}\n", {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("set at least one of count", r.stderr)
  end)
end)

describe("log", function()
  it("logs the interpolated message and fields to stderr; messages pass unchanged", function()
    local out, r = run([[
    - log:
        level: warn
        message: 'got ${! this.n } from ${! meta.src }'
        fields:
          idx: '${! batch_index() }'
          kind: fixed
]], '{"n":7}\n')
    assert.are.equal('{"n":7}', out[1])
    assert.matches('level=warn stream=main component=log msg="got 7 from null" idx=0 kind=fixed', r.stderr)
  end)

  it("respects the logger level", function()
    local _, r = run("    - log: {level: debug, message: hidden}\n", "x\n")
    assert.is_nil(r.stderr:find("hidden", 1, true))
  end)
end)

describe("rate_limit", function()
  it("delays messages beyond count per interval and loses none", function()
    local cfg = h.write(h.tmpname(".yaml"), "input:\n  stdin: {}\npipeline:\n  processors:\n" ..
      "    - rate_limit: {count: 10, interval: 250ms}\noutput:\n  file: {path: /dev/null}\n")
    local input = {}
    for k = 1, 40 do input[k] = tostring(k) end
    local ms = ms_of(h.bin .. " run " .. cfg, table.concat(input, "\n") .. "\n")
    local r = h.run_config(nil, {path = cfg, keep = true, stdin = "1\n2\n3\n"})
    os.remove(cfg)
    assert.are.equal(0, r.code)
    -- 40 messages at 10 per 250 ms: at least three full windows of waiting.
    assert.is_true(ms >= 700, "took " .. ms .. " ms")
  end)

  it("delivers every message in order", function()
    local input = {}
    for k = 1, 25 do input[k] = tostring(k) end
    local out = run("    - rate_limit: {count: 10, interval: 100ms}\n", table.concat(input, "\n") .. "\n")
    assert.are.same(input, out)
  end)
end)

-- One batch of six through catch or switch: each message keeps its place
-- (before, the handled ones went last, then each case's in case order).
describe("catch and switch keep a batch's order", function()
  local function run_gen(procs)
    local yaml = "input:\n  generate: {count: 6, batch_size: 6, interval: '', mapping: 'return {n = i}'}\n" ..
      "pipeline:\n  processors:\n" .. procs .. "output:\n  stdout: {}\n"
    local r = h.run_config(yaml)
    assert.are.equal(0, r.code, r.stderr)
    return decode_all(h.lines(r.stdout))
  end

  it("catch: a handled message stays where it was", function()
    local out = run_gen([[
    - lua: 'if this.n % 2 == 0 then error("even") end'
    - catch:
        - lua: 'this.caught = true'
]])
    assert.are.same({{n = 1}, {n = 2, caught = true}, {n = 3}, {n = 4, caught = true}, {n = 5}, {n = 6, caught = true}},
      out)
  end)

  it("switch: cases, a dropped message, a fallthrough and the unmatched stay in order", function()
    local out = run_gen([[
    - switch:
        - check: 'this.n % 3 == 0'
          processors:
            - lua: 'this.c = "three"'
        - check: 'this.n == 5'
          processors:
            - lua: 'return deleted()'
        - check: 'this.n % 2 == 0'
          fallthrough: true
          processors:
            - lua: 'this.c = "even"'
        - processors:
            - lua: 'this.last = true'
]])
    assert.are.same({{n = 1, last = true}, {n = 2, c = "even", last = true}, {n = 3, c = "three"},
      {n = 4, c = "even", last = true}, {n = 6, c = "three"}}, out)
  end)
end)
