-- The branch processor's metadata: what result_map sets, changes or
-- removes in `meta` is done to the original message (Benthos' branch);
-- what the branch's processors set stays in the branch.
local h = require("spec.helpers")

describe("branch processor metadata", function()
  it("copies back what result_map sets, changes or removes, and nothing the branch's processors set", function()
    local r = h.run_config([[
input:
  generate: {count: 2, interval: 0, batch_size: 2, mapping: 'meta.orig = "o"; meta.gone = "x"; meta.same = "s"; return {id = i}'}
pipeline:
  processors:
    - branch:
        request_map: 'return {id = this.id}'
        processors:
          - lua: 'meta.inner = "from-branch"; meta.status = "200"; return {name = "n" .. this.id}'
        result_map: |
          meta.name = this.name
          meta.gone = nil
          meta.orig = meta.orig .. "+"
          meta.same = "s"
          meta.code = meta.status
          if this.name == "n2" then return deleted() end
          return {name = this.name}
    - lua: 'return {content = this, meta = meta()}'
output:
  stdout: {}
]], {timeout = 30})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.decode_lines(h.lines(r.stdout))
    assert.are.same({content = {id = 1, name = "n1"},
                     meta = {orig = "o+", same = "s", name = "n1", code = "200"}}, out[1])
    -- a result result_map deletes brings nothing back, metadata included
    assert.are.same({content = {id = 2}, meta = {orig = "o", gone = "x", same = "s"}}, out[2])
  end)
end)
