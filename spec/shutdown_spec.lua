-- Graceful shutdown: SIGTERM in the middle of a file → lua → file run drains
-- what was read, writes each line exactly once, and exits 0.
local h = require("spec.helpers")

local tmpdir = h.tmpdir

-- Starts sluice in the background, signals it after `after` seconds, waits.
-- Returns the exit code and stderr.
local function run_and_signal(dir, signal, after, second)
  local script = string.format([[
cd %s
%s run config.yaml 2> err.txt &
pid=$!
sleep %s
kill -%s $pid
%s
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
wait $pid
echo $?
]], h.shell_quote(dir), h.shell_quote(h.abs_bin),
    after, signal, second and ("sleep 0.2; kill -" .. signal .. " $pid") or "")
  local _, out = h.sh(script)
  return tonumber(out:match("(%d+)%s*$")), h.read(dir .. "/err.txt")
end

-- A directory whose config.yaml generates forever into an output that can
-- never deliver, so that a drain cannot finish before shutdown_timeout.
local function undeliverable(shutdown_timeout)
  local dir = tmpdir()
  h.write(dir .. "/config.yaml", "shutdown_timeout: " .. shutdown_timeout .. [[

input:
  generate: {count: 0, interval: 10ms, mapping: 'return "x"'}
output:
  file:
    path: /dev/null/cannot/out.txt
]])
  return dir
end

describe("graceful shutdown", function()
  local N = 200000

  local function setup(extra)
    local dir = tmpdir()
    local lines = {}
    for i = 1, N do lines[i] = string.format('{"n":%d}', i) end
    h.write(dir .. "/in.ndjson", table.concat(lines, "\n") .. "\n")
    h.write(dir .. "/config.yaml", [[
input:
  file:
    paths: [in.ndjson]
pipeline:
  processors:
    - rate_limit: {count: 2000, interval: 100ms}
    - lua: |
        this.seen = true
output:
  file:
    path: out.ndjson
]] .. (extra or ""))
    return dir
  end

  it("drains on SIGTERM: every line read is written exactly once, in order", function()
    local dir = setup()
    local code, err = run_and_signal(dir, "TERM", 1.0)
    local out = h.lines(h.read(dir .. "/out.ndjson") or "")
    os.execute("rm -rf " .. h.shell_quote(dir))
    assert.are.equal(0, code, err)
    assert.matches("SIGTERM received: draining", err)
    assert.is_true(#out > 0 and #out < N, "stopped mid-run: " .. #out)
    for i, l in ipairs(out) do
      local doc = h.json.decode(l)
      assert.are.equal(i, doc.n, "line " .. i .. " is " .. l)
      assert.is_true(doc.seen)
    end
  end)

  it("exits 1 without waiting on a second signal", function()
    -- An output that never delivers keeps the drain going for the hour of
    -- shutdown_timeout; the second SIGINT is sent once the log says the
    -- drain began and the process is still there, so only that signal can
    -- end it within the 30 s this waits. (The engine takes a signal within
    -- 200 ms of the first for the same one, sent twice by timeout(1) or a
    -- shell: the 0.3 s pause keeps clear of that window.)
    local dir = undeliverable("1h")
    local _, out = h.sh(string.format([[
cd %s
%s run config.yaml 2> err.txt &
pid=$!
until_log() { i=0; until grep -q "$1" err.txt || [ $i -ge 300 ]; do sleep 0.1; i=$((i+1)); done; }
until_log "write failed"
kill -INT $pid
until_log "SIGINT received: draining"
sleep 0.3
kill -0 $pid 2>/dev/null && echo "draining" && kill -INT $pid
i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
kill -0 $pid 2>/dev/null && echo "still running" && kill -KILL $pid
wait $pid
echo "exit $?"
]], h.shell_quote(dir), h.shell_quote(h.abs_bin)))
    local err = (h.read(dir .. "/err.txt") or ""):gsub("[^\n]*write failed[^\n]*\n", "")
    os.execute("rm -rf " .. h.shell_quote(dir))
    assert.are.equal("draining\nexit 1\n", out, err)
    assert.matches("second SIGINT: exiting without draining", err, 1, true)
  end)

  it("gives up after shutdown_timeout when an output cannot deliver", function()
    local dir = undeliverable("300ms")
    local code, err = run_and_signal(dir, "TERM", 0.5)
    os.execute("rm -rf " .. h.shell_quote(dir))
    assert.are.equal(1, code, err)
    assert.matches("shutdown_timeout reached", err)
    assert.matches("shutdown_timeout: still %d+ transaction%(s%) open", err)   -- what was abandoned
  end)
end)
