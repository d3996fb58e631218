-- End-to-end specs of the built-in inputs and outputs (connectors/*.c): every
-- documented field, run through the real binary.
local h = require("spec.helpers")
local json = h.json

local tmpdir = h.tmpdir

local rmdir = h.rmdir

-- Runs a config written into dir (so relative paths resolve there).
local function run_in(dir, yaml, opts)
  opts = opts or {}
  opts.path = h.write(dir .. "/config.yaml", yaml)
  return h.run_config(yaml, opts)
end

local function decode_lines(s)
  local t = {}
  for _, l in ipairs(h.lines(s)) do t[#t + 1] = json.decode(l) end
  return t
end

-- Milliseconds a shell command took (its output is discarded).
local function elapsed_ms(cmd)
  local code, out = h.sh(string.format(
    "s=$(date +%%s%%N); %s >/dev/null 2>&1; c=$?; e=$(date +%%s%%N); echo $c $(( (e - s) / 1000000 ))", cmd))
  assert(code == 0)
  local rc, ms = out:match("(%d+) (%d+)")
  return tonumber(ms), tonumber(rc)
end

local function assert_ok(r)
  assert.are.equal(0, r.code, "exit code " .. tostring(r.code) .. "; stderr:\n" .. (r.stderr or ""))
end

describe("stdin input", function()
  it("emits one message per line of a big redirected file, in order", function()
    local parts = {}
    for i = 1, 100000 do parts[i] = string.format('{"i":%d,"pad":"%s"}', i, string.rep("x", i % 50)) end
    local input = table.concat(parts, "\n") .. "\n"
    local r = h.run_config("input:\n  stdin: {}\noutput:\n  stdout: {}\n", {stdin = input, timeout = 60})
    assert_ok(r)
    assert.are.equal(#input, #r.stdout)
    assert.is_true(r.stdout == input, "output differs from input")
  end)

  it("strips \\r\\n, skips empty lines and keeps a last line without newline", function()
    local r = h.run_config("input:\n  stdin: { codec: lines }\noutput:\n  stdout: {}\n",
      {stdin = "a\r\n\r\nb\n\nc"})
    assert_ok(r)
    assert.are.equal("a\nb\nc\n", r.stdout)
  end)

  it("reads a real pipe", function()
    local cfg = h.write(h.tmpname(".yaml"), "input:\n  stdin: {}\noutput:\n  stdout: {}\n")
    local code, out = h.sh(string.format("seq 1 20000 | timeout 30 %s run %s", h.bin, cfg))
    os.remove(cfg)
    assert.are.equal(0, code)
    local want = {}
    for i = 1, 20000 do want[i] = tostring(i) end
    assert.are.equal(table.concat(want, "\n") .. "\n", out)
  end)

  it("codec all makes the whole input one message", function()
    local input = "line one\nline two\n\nline four\n"
    local r = h.run_config("input:\n  stdin: { codec: all }\noutput:\n  stdout: { codec: lines }\n", {stdin = input})
    assert_ok(r)
    -- one message: the whole input plus one newline from the lines codec
    assert.are.equal(input .. "\n", r.stdout)
    local big = string.rep("0123456789abcdef\n", 40000)   -- 680 KB, several reads
    r = h.run_config("input:\n  stdin: { codec: all }\noutput:\n  stdout: { codec: all }\n", {stdin = big})
    assert_ok(r)
    assert.is_true(r.stdout == big)
  end)

  it("max_buffer truncates and flags a long line, which reject_errored can route", function()
    local d = tmpdir()
    local r = run_in(d, [[
input:
  stdin: { max_buffer: 8B }
output:
  fallback:
    - reject_errored:
        file: { path: good.txt }
    - file: { path: bad.txt }
]], {stdin = "short\n0123456789ABCDEF\nok\n"})
    assert_ok(r)
    assert.are.equal("short\nok\n", h.read(d .. "/good.txt"))
    assert.are.equal("01234567\n", h.read(d .. "/bad.txt"))
    assert.matches("longer than max_buffer", r.stderr)
    rmdir(d)
  end)

  it("codec all with max_buffer keeps the first bytes, flagged", function()
    local r = h.run_config("input:\n  stdin: { codec: all, max_buffer: 4B }\noutput:\n  stdout: { codec: all }\n",
      {stdin = "abcdefgh"})
    assert_ok(r)
    assert.are.equal("abcd", r.stdout)
    assert.matches("input longer than max_buffer", r.stderr)
  end)
end)

describe("file input", function()
  local d
  before_each(function()
    d = tmpdir()
    assert(os.execute("mkdir -p " .. d .. "/in"))
    h.write(d .. "/in/a.txt", "a1\na2\n")
    h.write(d .. "/in/b.txt", "b1\r\nb2")
    h.write(d .. "/in/c.log", "c1\n")
  end)
  after_each(function() rmdir(d) end)

  it("reads glob matches in order, relative to the config, with metadata path", function()
    local r = run_in(d, [[
input:
  file:
    paths: [ 'in/*.txt' ]
pipeline:
  processors:
    - lua: 'return meta.path .. "|" .. content()'
output:
  stdout: {}
]])
    assert_ok(r)
    local lines = h.lines(r.stdout)
    assert.are.same({
      d .. "/in/a.txt|a1", d .. "/in/a.txt|a2", d .. "/in/b.txt|b1", d .. "/in/b.txt|b2",
    }, lines)
  end)

  it("takes plain paths and several patterns, and codec all reads whole files", function()
    local r = run_in(d, [[
input:
  file:
    paths: [ in/c.log, 'in/a*' ]
    codec: all
output:
  stdout: { codec: lines }
]])
    assert_ok(r)
    assert.are.equal("c1\n\na1\na2\n\n", r.stdout)
  end)

  it("codec ndjson emits one document per line", function()
    h.write(d .. "/in/x.ndjson", '{"a":1}\n{"a":2}\n')
    local r = run_in(d, "input:\n  file: { paths: in/x.ndjson, codec: ndjson }\noutput:\n  stdout: {}\n")
    assert_ok(r)
    assert.are.same({{a = 1}, {a = 2}}, decode_lines(r.stdout))
  end)

  it("reads a large file in chunks", function()
    local parts = {}
    for i = 1, 50000 do parts[i] = tostring(i) end
    local body = table.concat(parts, "\n") .. "\n"
    h.write(d .. "/in/big.txt", body)
    local r = run_in(d, "input:\n  file: { paths: [in/big.txt] }\noutput:\n  stdout: {}\n", {timeout = 60})
    assert_ok(r)
    assert.is_true(r.stdout == body)
  end)

  it("fails to start on a missing plain path and warns on an empty glob", function()
    local r = run_in(d, "input:\n  file: { paths: [in/nope.txt] }\noutput:\n  stdout: {}\n")
    assert.are_not.equal(0, r.code)
    assert.matches("nope.txt", r.stderr)
    r = run_in(d, "input:\n  file: { paths: ['in/*.none'] }\noutput:\n  stdout: {}\n")
    assert_ok(r)
    assert.matches("no file matches", r.stderr)
  end)

  it("max_buffer flags over-long lines", function()
    h.write(d .. "/in/long.txt", "abc\n" .. string.rep("z", 100) .. "\nxyz\n")
    local r = run_in(d, "input:\n  file: { paths: [in/long.txt], max_buffer: 10B }\noutput:\n  stdout: {}\n")
    assert_ok(r)
    assert.are.equal("abc\nzzzzzzzzzz\nxyz\n", r.stdout)
    assert.matches("longer than max_buffer", r.stderr)
  end)
end)

describe("generate input", function()
  it("count, interval 0 and mapping with i", function()
    local r = h.run_config([[
input:
  generate: { count: 3, interval: 0, mapping: 'return {n = i}' }
output:
  stdout: {}
]])
    assert_ok(r)
    assert.are.same({{n = 1}, {n = 2}, {n = 3}}, decode_lines(r.stdout))
  end)

  it("keeps its interval when producing a batch takes a while (ticks are due from the last tick, not its end)", function()
    -- Each mapping spins for 150 ms of wall time (not CPU time, which a loaded
    -- machine stretches); ticks due every 200 ms stay 200 ms apart: 7 intervals
    -- are 1.4 s, and 2.45 s if each waited from the end of the batch before it.
    -- The bound between the two leaves 100 ms per tick for a busy machine.
    local r = h.run_config([[
input:
  generate:
    count: 8
    interval: 200ms
    mapping: |
      local function secs() local hh, mm, ss = now():match("T(%d+):(%d+):([%d.]+)Z$"); return hh * 3600 + mm * 60 + ss end
      local t0 = secs()
      while secs() - t0 < 0.15 do end
      return {at = now()}
output:
  stdout: {}
]])
    assert_ok(r)
    local secs = {}
    for _, d in ipairs(decode_lines(r.stdout)) do
      local hh, mm, ss = d.at:match("T(%d+):(%d+):([%d.]+)Z$")
      secs[#secs + 1] = tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
    end
    assert.are.equal(8, #secs)
    local span = secs[8] - secs[1]
    assert.is_true(span > 1.35 and span < 2.1, "7 intervals took " .. span .. " s")
  end)

  it("batch_size groups messages into batches, the last one smaller", function()
    local r = h.run_config([[
input:
  generate:
    count: 5
    interval: 0
    batch_size: 2
    mapping: 'return {n = i}'
pipeline:
  processors:
    - lua: 'this.b = batch_index()'
output:
  stdout: {}
]])
    assert_ok(r)
    assert.are.same({{n = 1, b = 0}, {n = 2, b = 1}, {n = 3, b = 0}, {n = 4, b = 1}, {n = 5, b = 0}},
      decode_lines(r.stdout))
  end)

  it("i keeps counting across batches and mapping can set metadata", function()
    local r = h.run_config([[
input:
  generate:
    count: 1000
    interval: 0
    batch_size: 64
    mapping: |
      meta.kind = (i % 2 == 0) and "even" or "odd"
      return tostring(i)
pipeline:
  processors:
    - lua: 'return meta.kind .. ":" .. content()'
output:
  stdout: {}
]])
    assert_ok(r)
    local lines = h.lines(r.stdout)
    assert.are.equal(1000, #lines)
    for n = 1, 1000 do
      assert.are.equal(((n % 2 == 0) and "even" or "odd") .. ":" .. n, lines[n])
    end
  end)

  it("interval spaces batches, the first one immediately; default is 1s", function()
    local cfg = h.write(h.tmpname(".yaml"),
      "input:\n  generate: { count: 3, interval: 300ms, mapping: 'return {n = i}' }\noutput:\n  drop: {}\n")
    local ms, rc = elapsed_ms(h.bin .. " run " .. cfg)
    assert.are.equal(0, rc)
    assert.is_true(ms >= 550 and ms < 3000, "3 messages at 300ms took " .. ms .. "ms")
    h.write(cfg, "input:\n  generate: { count: 2, mapping: 'return {n = i}' }\noutput:\n  drop: {}\n")
    ms, rc = elapsed_ms(h.bin .. " run " .. cfg)
    os.remove(cfg)
    assert.are.equal(0, rc)
    assert.is_true(ms >= 950 and ms < 4000, "2 messages at the default 1s took " .. ms .. "ms")
  end)

  it("count 0 runs until SIGTERM, then drains and exits 0", function()
    local d = tmpdir()
    h.write(d .. "/c.yaml", [[
input:
  generate: { interval: 0, batch_size: 10, mapping: 'return {n = i}' }
output:
  file: { path: out.txt }
]])
    local code = h.sh(string.format("timeout -s TERM --preserve-status 1 %s run %s/c.yaml", h.bin, d))
    assert.are.equal(0, code)
    local lines = h.lines(h.read(d .. "/out.txt"))
    assert.is_true(#lines > 100)
    for n, l in ipairs(lines) do assert.are.equal(n, json.decode(l).n) end
    rmdir(d)
  end)

  it("lint rejects a negative count and a missing mapping", function()
    local r = h.run_config("input:\n  generate: { count: -1, mapping: 'return 1' }\noutput:\n  drop: {}\n",
      {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches(":2:%d+: .*count", r.stderr)
    r = h.run_config("input:\n  generate: { count: 1 }\noutput:\n  drop: {}\n", {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("mapping", r.stderr)
  end)
end)

describe("stdout output", function()
  it("codec lines adds a newline, codec all writes contents as they are", function()
    local r = h.run_config("input:\n  stdin: {}\noutput:\n  stdout: { codec: all }\n", {stdin = "a\nb\nc\n"})
    assert_ok(r)
    assert.are.equal("abc", r.stdout)
    r = h.run_config("input:\n  stdin: {}\noutput:\n  stdout: { codec: lines }\n", {stdin = "a\nb\n"})
    assert_ok(r)
    assert.are.equal("a\nb\n", r.stdout)
  end)

  it("writes to a pipe and reports a closed pipe as a failed write", function()
    local cfg = h.write(h.tmpname(".yaml"), [[
shutdown_timeout: 1s
input:
  generate: { interval: 0, mapping: 'return {n = i}' }
output:
  stdout: {}
]])
    local _, out, err = h.sh(string.format("timeout -s TERM 2 %s run %s | head -n 5", h.bin, cfg))
    os.remove(cfg)
    assert.are.same({{n = 1}, {n = 2}, {n = 3}, {n = 4}, {n = 5}}, decode_lines(out))
    assert.matches("broken pipe", err)
  end)
end)

describe("file output", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)

  it("interpolates the path per message, relative to the config", function()
    local r = run_in(d, [[
input:
  generate:
    count: 6
    interval: 0
    batch_size: 3
    mapping: |
      meta.topic = (i % 2 == 0) and "even" or "odd"
      return {n = i}
output:
  file:
    path: 'out-${! meta.topic }.txt'
]])
    assert_ok(r)
    assert.are.same({{n = 2}, {n = 4}, {n = 6}}, decode_lines(h.read(d .. "/out-even.txt")))
    assert.are.same({{n = 1}, {n = 3}, {n = 5}}, decode_lines(h.read(d .. "/out-odd.txt")))
  end)

  it("appends to existing files with codec lines; codec all writes one file per message", function()
    h.write(d .. "/log.txt", "old\n")
    local r = run_in(d, "input:\n  stdin: {}\noutput:\n  file: { path: log.txt }\n", {stdin = "x\ny\n"})
    assert_ok(r)
    assert.are.equal("old\nx\ny\n", h.read(d .. "/log.txt"))
    r = run_in(d, [[
input:
  generate: { count: 3, interval: 0, mapping: 'meta.name = "body" .. i; return "body" .. i' }
output:
  file:
    path: 'msg-${! meta.name }.bin'
    codec: all
]])
    assert_ok(r)
    for i = 1, 3 do assert.are.equal("body" .. i, h.read(d .. "/msg-body" .. i .. ".bin")) end
    r = run_in(d, [[
input:
  generate: { count: 3, interval: 0, mapping: 'return "v" .. i' }
output:
  file: { path: same.bin, codec: all }
]])
    assert_ok(r)
    assert.are.equal("v3", h.read(d .. "/same.bin"))
  end)

  it("spreads over more files than it keeps open", function()
    local r = run_in(d, [[
input:
  generate:
    count: 200
    interval: 0
    batch_size: 7
    mapping: 'meta.k = tostring(i % 40); return tostring(i)'
output:
  file: { path: 'k${! meta.k }.txt' }
]])
    assert_ok(r)
    for k = 0, 39 do
      local want = {}
      for i = 1, 200 do if i % 40 == k then want[#want + 1] = tostring(i) end end
      assert.are.same(want, h.lines(h.read(d .. "/k" .. k .. ".txt")))
    end
  end)

  it("creates missing directories", function()
    local r = run_in(d, [[
input:
  generate: { count: 2, interval: 0, mapping: 'return {n = i}' }
output:
  file: { path: 'new/${! "sub" }/out.txt' }
]])
    assert_ok(r)
    assert.are.same({{n = 1}, {n = 2}}, decode_lines(h.read(d .. "/new/sub/out.txt")))
  end)

  it("fails clearly when the file cannot be created", function()
    local r = run_in(d, [[
retry: { max_retries: 1, initial_interval: 10ms, max_interval: 10ms }
input:
  generate: { count: 1, interval: 0, mapping: 'return {n = i}' }
output:
  file: { path: /dev/null/nodir/out.txt }
]], {timeout = 20})
    assert.matches("cannot open /dev/null/nodir/out.txt: Not a directory", r.stderr)
  end)
end)

describe("drop output", function()
  it("acknowledges everything so a finite run exits 0", function()
    local r = h.run_config("input:\n  generate: { count: 500, interval: 0, mapping: 'return {n = i}' }\noutput:\n  drop: {}\n")
    assert_ok(r)
    assert.are.equal("", r.stdout)
  end)
end)

describe("broker output", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)

  it("fan_out gives every output every message", function()
    local r = run_in(d, [[
input:
  generate: { count: 10, interval: 0, batch_size: 4, mapping: 'return {n = i}' }
output:
  broker:
    pattern: fan_out
    outputs:
      - file: { path: a.txt }
      - file: { path: b.txt }
      - stdout: {}
]])
    assert_ok(r)
    local want = {}
    for i = 1, 10 do want[i] = {n = i} end
    assert.are.same(want, decode_lines(h.read(d .. "/a.txt")))
    assert.are.same(want, decode_lines(h.read(d .. "/b.txt")))
    assert.are.same(want, decode_lines(r.stdout))
  end)

  it("fan_out is the default and waits for a failing child, which is retried alone", function()
    local r = run_in(d, [[
retry: { max_retries: 2, initial_interval: 10ms, max_interval: 10ms }
input:
  generate: { count: 2, interval: 0, mapping: 'return {n = i}' }
output:
  broker:
    outputs:
      - file: { path: a.txt }
      - file: { path: /dev/null/missing/b.txt }
]], {timeout = 20})
    -- a.txt got each message once per delivery attempt of the stream, never per child retry
    local a = decode_lines(h.read(d .. "/a.txt"))
    assert.is_true(#a >= 2 and #a <= 6, "a.txt has " .. #a .. " lines")
    assert.matches("/dev/null/missing/b.txt", r.stderr)
  end)

  it("round_robin alternates batches between outputs", function()
    local r = run_in(d, [[
input:
  generate: { count: 4, interval: 0, mapping: 'return {n = i}' }
output:
  broker:
    pattern: round_robin
    outputs:
      - file: { path: a.txt }
      - file: { path: b.txt }
]])
    assert_ok(r)
    assert.are.same({{n = 1}, {n = 3}}, decode_lines(h.read(d .. "/a.txt")))
    assert.are.same({{n = 2}, {n = 4}}, decode_lines(h.read(d .. "/b.txt")))
  end)
end)

describe("switch output", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)

  it("routes each message to the first matching case; the rest are dropped", function()
    local r = run_in(d, [[
input:
  generate: { count: 9, interval: 0, batch_size: 4, mapping: 'return {n = i}' }
output:
  switch:
    cases:
      - check: this.n % 3 == 0
        output:
          file: { path: three.txt }
      - check: this.n % 2 == 0
        output:
          file: { path: two.txt }
]])
    assert_ok(r)
    assert.are.same({{n = 3}, {n = 6}, {n = 9}}, decode_lines(h.read(d .. "/three.txt")))
    assert.are.same({{n = 2}, {n = 4}, {n = 8}}, decode_lines(h.read(d .. "/two.txt")))
  end)

  it("continue lets a message match several cases; a case without check takes all", function()
    local r = run_in(d, [[
input:
  generate: { count: 4, interval: 0, mapping: 'return {n = i}' }
output:
  switch:
    - check: this.n > 2
      continue: true
      output:
        file: { path: big.txt }
    - output:
        file: { path: all.txt }
]])
    assert_ok(r)
    assert.are.same({{n = 3}, {n = 4}}, decode_lines(h.read(d .. "/big.txt")))
    assert.are.same({{n = 1}, {n = 2}, {n = 3}, {n = 4}}, decode_lines(h.read(d .. "/all.txt")))
  end)

  it("a check that raises counts as no match and is logged", function()
    local r = run_in(d, [[
input:
  generate: { count: 2, interval: 0, mapping: 'return {n = i}' }
output:
  switch:
    - check: this.n == 1 or error("boom")
      output:
        file: { path: one.txt }
    - output:
        file: { path: rest.txt }
]])
    assert_ok(r)
    assert.are.same({{n = 1}}, decode_lines(h.read(d .. "/one.txt")))
    assert.are.same({{n = 2}}, decode_lines(h.read(d .. "/rest.txt")))
    assert.matches("boom", r.stderr)
  end)
end)

describe("fallback output", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)

  it("sends what the first output fails to the second, with fallback_error", function()
    local r = run_in(d, [[
input:
  generate: { count: 3, interval: 0, batch_size: 2, mapping: 'return {n = i}' }
output:
  fallback:
    - file: { path: /dev/null/nodir/out.txt }
    - file:
        path: 'dlq-${! (meta.fallback_error or ""):find("cannot open", 1, true) and "tagged" or "untagged" }.txt'
]])
    assert_ok(r)
    assert.are.same({{n = 1}, {n = 2}, {n = 3}}, decode_lines(h.read(d .. "/dlq-tagged.txt")))
    assert.is_nil(h.read(d .. "/dlq-untagged.txt"))
  end)

  it("keeps delivering to the first output while it works", function()
    local r = run_in(d, [[
input:
  generate: { count: 3, interval: 0, mapping: 'return {n = i}' }
output:
  fallback:
    outputs:
      - file: { path: first.txt }
      - file: { path: second.txt }
]])
    assert_ok(r)
    assert.are.same({{n = 1}, {n = 2}, {n = 3}}, decode_lines(h.read(d .. "/first.txt")))
    assert.is_nil(h.read(d .. "/second.txt"))
  end)
end)

describe("reject_errored output", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)

  it("routes messages a processor failed to the dead-letter output", function()
    local r = run_in(d, [[
input:
  generate: { count: 6, interval: 0, batch_size: 3, mapping: 'return {n = i}' }
pipeline:
  processors:
    - lua: |
        if this.n % 2 == 0 then error("bad") end
output:
  fallback:
    - reject_errored:
        file: { path: good.txt }
    - switch:
        - check: (meta.fallback_error or ""):find("bad", 1, true) ~= nil
          output:
            file: { path: dead.txt }
        - output:
            file: { path: untagged.txt }
]])
    assert_ok(r)
    assert.are.same({{n = 1}, {n = 3}, {n = 5}}, decode_lines(h.read(d .. "/good.txt")))
    assert.are.same({{n = 2}, {n = 4}, {n = 6}}, decode_lines(h.read(d .. "/dead.txt")))
    assert.is_nil(h.read(d .. "/untagged.txt"))
  end)

  it("at the top of a stream refuses the batch, which the stream re-sends as the input made it", function()
    -- The stream keeps a copy of a generated batch only for outputs that
    -- answer for failures themselves (or a retry policy that gives up).
    -- (passes are counted in a cache, which every pipeline.threads worker
    -- shares: a re-sent batch may run on another worker's VM)
    local r = run_in(d, [[
cache_resources:
  - label: seen
    memory: {}
input:
  generate: { count: 4, interval: 0, batch_size: 2, mapping: 'return {n = i}' }
retry: { initial_interval: 10ms }
pipeline:
  processors:
    - lua: |
        this.pass = cache.incr("seen", this.n, 1)
        if this.n == 3 and this.pass < 3 then error("not yet") end
output:
  reject_errored:
    file: { path: out.txt }
]])
    assert_ok(r)
    assert.are.same({{n = 1, pass = 1}, {n = 2, pass = 1}, {n = 3, pass = 3}, {n = 4, pass = 3}},
                    decode_lines(h.read(d .. "/out.txt")))
    assert.are.equal(2, select(2, r.stderr:gsub("delivery failed, re%-sending", "")))
  end)

  it("passes clean batches to its output", function()
    local r = h.run_config("input:\n  stdin: {}\noutput:\n  reject_errored:\n    stdout: {}\n", {stdin = "a\nb\n"})
    assert_ok(r)
    assert.are.equal("a\nb\n", r.stdout)
  end)
end)

describe("connector docs", function()
  -- The section of `sluice doc name` for that kind ("input" or "output").
  local function doc_section(name, kind)
    local r = h.sluice("doc " .. name)
    assert.are.equal(0, r.code, name .. ": " .. r.stderr)
    for sec in (r.stdout .. "\n---\n"):gmatch("(.-)\n%-%-%-\n") do
      if sec:find("# " .. name .. " (" .. kind .. ")", 1, true) then return sec end
    end
    error("sluice doc " .. name .. " has no " .. kind .. " section:\n" .. r.stdout)
  end

  it("every connector documents its fields and an example", function()
    local list = json.decode(h.sluice("list --format json").stdout)
    local seen = 0
    for _, kind in ipairs({"input", "output"}) do
      for _, c in ipairs(list[kind .. "s"]) do
        local what = c.name .. " (" .. kind .. ")"
        assert.is_true(#c.summary > 0, what .. " has no summary")
        local sec = doc_section(c.name, kind)
        -- every field row: | `name` | type | default | description |, each cell filled
        for row in sec:gmatch("\n(| `[^\n]+)") do
          local cells = {}
          for cell in row:sub(3, -3):gmatch("(.-) | ") do cells[#cells + 1] = cell end
          cells[#cells + 1] = row:sub(3, -3):match(".* | (.*)$")
          assert.are.equal(4, #cells, what .. ": " .. row)
          for k = 2, 3 do assert.is_true(#cells[k] > 0, what .. ": empty cell in " .. row) end
          -- (an enum's values are appended to its description: not a description)
          assert.matches("%S", (cells[4]:gsub("One of:[^|]*$", "")), what .. ": no description in " .. row)
        end
        -- the example is a config that lints (with a trivial other side when it shows one side)
        local example = sec:match("## Example\n\n```yaml\n(.-)```")
        assert.is_truthy(example, what .. " has no example")
        assert.matches(c.name .. ":", example, 1, true)
        if not example:find("^input:") and not example:find("\ninput:") then
          example = example .. "input: {generate: {count: 1, interval: 0, mapping: 'return 1'}}\n"
        end
        if not example:find("^output:") and not example:find("\noutput:") then
          example = example .. "output: {drop: {}}\n"
        end
        local r = h.run_config(example, {cmd = "lint"})
        assert.are.equal(0, r.code, what .. "'s example does not lint:\n" .. example .. r.stderr)
        seen = seen + 1
      end
    end
    assert.is_true(seen >= 17, seen .. " connectors listed")
  end)
end)
