-- Checks shared by the specs of Tyk's Streams demo: the quickstart on the
-- embedded store (quickstart_spec) and on Kafka (kafka_pipeline_spec).
local h = require("spec.helpers")
local json = h.json
local assert = require("luassert")

local M = {}

-- alice's results (decoded) are hers and enriched; bob got exactly his two.
function M.assert_results(alice, bob, alice_raw, bob_raw)
  assert.is_true(#alice >= 1, alice_raw)
  for _, r in ipairs(alice) do
    assert.are.equal("alice", r.user_id)
    assert.are.equal("bar", r.result)
  end
  assert.are.equal(2, #bob, bob_raw)
  for _, r in ipairs(bob) do
    assert.are.equal("bob", r.user_id)
    assert.are.equal("bar", r.result)
  end
end

-- bob's results from spec/tools/ws_client.py's lines
function M.ws_texts(ws_out)
  local out = {}
  for _, l in ipairs(h.lines(ws_out)) do
    local m = json.decode(l)
    if m.text then out[#out + 1] = json.decode(m.text) end
  end
  return out
end

-- sse_out: what alice's SSE connection received; ws_out: the lines of
-- spec/tools/ws_client.py as bob, who expects exactly two results.
function M.assert_alice_and_bob(sse_out, ws_out)
  local alice = {}
  for d in sse_out:gmatch("data: ([^\n]+)") do alice[#alice + 1] = json.decode(d) end
  M.assert_results(alice, M.ws_texts(ws_out), sse_out, ws_out)
end

return M
