-- Every example config lints, runs and does what its comment says.
local h = require("spec.helpers")
local json = h.json

describe("examples", function()
  it("lint clean", function()
    local _, list = h.sh("ls examples/*.yaml | grep -v '_test.yaml$'")
    local files = h.lines(list)
    assert.is_true(#files >= 2)
    for _, f in ipairs(files) do
      local r = h.sluice("lint " .. f)
      assert.are.equal(0, r.code, f .. ": " .. r.stderr)
    end
  end)

  it("pass their config tests", function()
    local r = h.sluice("test examples")
    assert.are.equal(0, r.code, r.stdout)
  end)

  it("quickstart prints enriched orders and stops cleanly on SIGINT", function()
    local code, out, err = h.sh("timeout -s INT --preserve-status 2.5 " .. h.bin .. " run examples/quickstart.yaml")
    assert.are.equal(0, code, err)
    local lines = h.lines(out)
    assert.is_true(#lines >= 2, out)
    for k, l in ipairs(lines) do
      local d = json.decode(l)
      assert.are.equal(k, d.order)
      assert.are.equal(d.qty * d.price, d.total)
      assert.matches("^%x+%-", d.id)
    end
  end)

  it("orders routes by status and dead-letters the invalid order", function()
    local d = h.tmpdir()
    assert(os.execute("cp examples/orders.yaml examples/orders.ndjson " .. d))
    local r = h.sluice("run " .. d .. "/orders.yaml")
    local ok, review, dead = h.read(d .. "/out/orders-ok.ndjson"), h.read(d .. "/out/orders-review.ndjson"),
      h.read(d .. "/out/dead-letter.ndjson")
    h.rmdir(d)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({id = 1, qty = 2, price = 5, total = 10}, json.decode(ok))
    assert.are.same({id = 3, qty = 20, price = 9.5, total = 190}, json.decode(review))
    assert.are.equal('{"id":2,"qty":"two","price":5}\n', dead)
  end)
end)
