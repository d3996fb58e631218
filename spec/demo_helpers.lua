-- Checks shared by the specs of Tyk's Streams demo: the quickstart on the
-- embedded store (quickstart_spec) and on Kafka (kafka_pipeline_spec).
local h = require("spec.helpers")
local json = h.json
local assert = require("luassert")

local M = {}

-- sse_out: what alice's SSE connection received; ws_out: the lines of
-- spec/tools/ws_client.py as bob, who expects exactly two results.
function M.assert_alice_and_bob(sse_out, ws_out)
  local alice = {}
  for d in sse_out:gmatch("data: ([^\n]+)") do alice[#alice + 1] = json.decode(d) end
  assert.is_true(#alice >= 1, sse_out)
  for _, r in ipairs(alice) do
    assert.are.equal("alice", r.user_id)
    assert.are.equal("bar", r.result)
  end
  local bob = {}
  for _, l in ipairs(h.lines(ws_out)) do
    local m = json.decode(l)
    if m.text then bob[#bob + 1] = json.decode(m.text) end
  end
  assert.are.equal(2, #bob, ws_out)
  for _, r in ipairs(bob) do assert.are.equal("bob", r.user_id) end
end

return M
