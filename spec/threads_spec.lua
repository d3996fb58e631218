-- pipeline.threads (core/pool.c): processors on N pool workers, each with its
-- own loop and Lua VM, while the input, transactions, the output and acks
-- stay on the stream's loop. Each Lua VM names itself (a global set once per
-- VM), so the specs see that both workers ran; `now()` (microseconds, RFC
-- 3339, so it sorts as text) shows which message finished first.
local h = require("spec.helpers")
local json = h.json

local function run(yaml, opts)
  local r = h.run_config(yaml, opts or {timeout = 120})
  assert.are.equal(0, r.code, r.stderr)
  return h.decode_lines(h.lines(r.stdout)), r
end

-- Message 1 works longest, the others a random while: with two workers the
-- second message is done long before the first.
local function busy_config(threads, ordered, count)
  return string.format([[
lua: {max_steps: 2000000000, max_time: 60s}
input:
  generate: {count: %d, interval: 0, batch_size: 1, mapping: 'return {n = i}'}
pipeline:
  threads: %d
  ordered: %s
  processors:
    - lua: |
        vm_id = vm_id or uuid_v4()
        local x = 0
        for k = 1, (this.n == 1 and 30000000 or math.random(1, 300000)) do x = x + k %% 3 end
        this.vm = vm_id
        this.at = now()
output:
  stdout: {}
]], count, threads, ordered and "true" or "false")
end

local function vms(out)
  local seen, n = {}, 0
  for _, m in ipairs(out) do
    if m.vm and not seen[m.vm] then seen[m.vm], n = true, n + 1 end
  end
  return n
end

-- Some message finished before an earlier one (by the clock).
local function passed(out)
  for i = 2, #out do
    if out[i].at < out[i - 1].at then return true end
  end
end

describe("pipeline.threads", function()
  it("keeps the input's order with two workers though later messages finish first", function()
    local out = run(busy_config(2, true, 300))
    assert.are.equal(300, #out)
    for i = 1, 300 do assert.are.equal(i, out[i].n) end
    assert.are.equal(2, vms(out))
    assert.is_true(passed(out), "no message finished before an earlier one: the order was never at stake")
  end)

  it("lets batches pass each other with ordered: false", function()
    local out
    -- bounded: message 1 takes a hundred times the others' longest
    for _ = 1, 5 do
      out = run(busy_config(2, false, 300))
      if out[1].n ~= 1 then break end
    end
    assert.are.equal(300, #out)
    assert.are_not.equal(1, out[1].n, "message 1 came first in 5 runs")
    local seen = {}
    for _, m in ipairs(out) do
      assert.is_nil(seen[m.n], "twice: " .. m.n)
      seen[m.n] = true
    end
    for i = 1, 300 do assert.is_true(seen[i], "missing " .. i) end
    assert.are.equal(2, vms(out))
  end)

  it("changes nothing with threads: 1 (one VM, the stream's)", function()
    local out = run(busy_config(1, true, 50))
    assert.are.equal(50, #out)
    for i = 1, 50 do assert.are.equal(i, out[i].n) end
    assert.are.equal(1, vms(out))
  end)

  it("flags only the message whose script failed, on either worker", function()
    local out = run([[
input:
  generate: {count: 200, interval: 0, batch_size: 4, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - lua: |
        vm_id = vm_id or uuid_v4()
        this.vm = vm_id
        if this.n % 10 == 0 then error("boom " .. this.n) end
    - lua: |
        if errored() then return {n = this.n, failed = error_message()} end
output:
  stdout: {}
]])
    assert.are.equal(200, #out)
    for i, m in ipairs(out) do
      assert.are.equal(i, m.n)
      if i % 10 == 0 then
        assert.matches("boom " .. i, m.failed)
      else
        assert.is_nil(m.failed)
      end
    end
    assert.are.equal(2, vms(out))
  end)

  it("runs a big batch whole on one worker, and each worker's Lua state is its own", function()
    local out = run([[
input:
  generate: {count: 20000, interval: 0, batch_size: 5000, mapping: 'return {n = i}'}
pipeline:
  threads: 2
  processors:
    - lua: |
        seen = seen or {}
        seen[#seen + 1] = this.n
        this.mine = #seen
output:
  stdout: {}
]])
    assert.are.equal(20000, #out)
    local per = 0
    for i, m in ipairs(out) do
      assert.are.equal(i, m.n)
      if m.mine == 5000 then per = per + 1 end
    end
    assert.is_true(per >= 2, "both VMs counted their own batches")
  end)
end)
