-- An output that cannot deliver retries every write, a thousand times a
-- second here: the retry warnings are rate-limited per stream (5 at once,
-- then one a second), and what they leave out is counted on the next line.
local h = require("spec.helpers")

describe("retry warnings", function()
  it("cost a bounded number of lines while an output is down, with a count of the rest", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
retry: {initial_interval: 1ms, max_interval: 1ms}
input:
  generate: {count: 0, interval: 1ms, mapping: 'return "x"'}
output:
  file: {path: /dev/null/cannot/out.txt}
]])
    -- Done once the lines have counted 2,000 retries they left out: proof
    -- that the flood happened while the limit was in force (or once 500
    -- lines show there is no limit).
    local function tally()
      local logged, left_out = 0, 0
      for l in srv.stderr():gmatch("[^\n]+") do
        if l:find("write failed (attempt", 1, true) then logged = logged + 1 end
        left_out = left_out + tonumber(l:match("not_logged=(%d+)") or 0)
      end
      return logged, left_out
    end
    local ok = h.wait_for(function()
      local logged, left_out = tally()
      return left_out >= 2000 or logged > 500
    end, 60)
    srv.kill()
    local logged, left_out = tally()
    assert.truthy(ok, "no count of retries left out:\n" .. srv.stderr():sub(1, 3000))
    assert.truthy(logged >= 5, srv.stderr():sub(1, 2000))
    -- a line per second at most after the first five; 2,000 retries at 1 ms
    -- take seconds, so the lines are a small part of the retries
    assert.truthy(logged * 20 < logged + left_out,
      string.format("%d lines for %d retries", logged, logged + left_out))
  end)
end)
