-- for_each (Benthos's): each message of a batch goes through the child
-- processors as a batch of its own; what comes back keeps the batch's order,
-- as one batch, with failure flags left alone.
local h = require("spec.helpers")

local function run(processors, count, batch_size)
  local r = h.run_config(string.format([[
input:
  generate: {count: %d, batch_size: %d, interval: 0s, mapping: 'return {n = i}'}
pipeline:
  processors:
%s
output:
  stdout: {}
]], count, batch_size, processors))
  assert.are.equal(0, r.code, r.stderr)
  return h.decode_lines(h.lines(r.stdout))
end

describe("for_each", function()
  it("runs its processors on each message as a batch of one, and the batch goes on whole, in order", function()
    local out = run([[
    - for_each:
        - lua: 'this.inside = batch_index(); return this'
    - lua: 'this.after = batch_index(); return this']], 6, 3)
    assert.are.equal(6, #out)
    for k, m in ipairs(out) do
      assert.are.same({n = k, inside = 0, after = (k - 1) % 3}, m)
    end
  end)

  it("keeps the batch's order when its messages finish out of order, and drops what a child drops", function()
    -- pipeline.threads workers run the Lua side by side; earlier messages
    -- spin longer, so later ones come back first
    local out = run([[
    - for_each:
        - lua: |
            local x = 0
            for k = 1, (9 - this.n) * 200000 do x = x + k % 7 end
            if this.n % 4 == 1 then return deleted() end
            if this.n == 2 then error("two") end
            this.x = x > 0
            return this
    - lua: 'this.failed = errored(); this.at = batch_index(); return this']], 8, 8)
    local ns, failed, at = {}, {}, {}
    for k, m in ipairs(out) do ns[k], failed[k], at[k] = m.n, m.failed, m.at end
    assert.are.same({2, 3, 4, 6, 7, 8}, ns)
    assert.are.same({true, false, false, false, false, false}, failed)
    assert.are.same({0, 1, 2, 3, 4, 5}, at)
  end)

  it("catch too: a message failing again in a slow child, coming back last, goes on once (no crash)", function()
    -- the message coming back last released its job inside sl_msg_set_txn,
    -- which sent it on still pointing at the freed proxy
    for _ = 1, 8 do
      local out = run([[
    - lua: 'error("first")'
    - catch:
        - lua: |
            local x = 0
            for k = 1, (9 - this.n) * 200000 do x = x + k % 7 end
            if this.n == 2 then error("two") end
            return this]], 8, 8)
      local ns = {}
      for k, m in ipairs(out) do ns[k] = m.n end
      assert.are.same({1, 2, 3, 4, 5, 6, 7, 8}, ns)
    end
  end)

  it("passes messages untouched with no processors, and is written as Benthos writes it", function()
    local out = run("    - for_each: []", 3, 3)
    assert.are.same({{n = 1}, {n = 2}, {n = 3}}, out)
    local r = h.run_config("pipeline:\n  processors:\n    - for_each:\n        - bloblang: 'root = this'\n", {cmd = "lint"})
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
  end)
end)
