-- The `http` processor (Benthos's shape) against upstream.py and nginx
-- started here.
local h = require("spec.helpers")
local u = require("spec.upstream_helpers")

local py, ngx

setup(function()
  py = u.python()
  ngx = u.nginx()
end)

teardown(function()
  if py then py.stop() end
  if ngx then ngx.stop() end
end)

-- stdin lines through processors (YAML, indented for pipeline.processors),
-- then a catch that shows failures; returns stdout's lines decoded.
local function pipe(procs, lines)
  local yaml = "input:\n  stdin: {}\npipeline:\n  processors:\n" ..
    procs:gsub("%$UP", py.url):gsub("%$NGX", ngx.url) ..
    "    - catch:\n        - lua: 'return {failed = error_message(), status = meta.http_status_code, content = content()}'\n" ..
    "output:\n  stdout: {}\n"
  local r = h.run_config(yaml, {stdin = table.concat(lines, "\n") .. "\n", timeout = 60})
  assert.are.equal(0, r.code, r.stderr)
  local out = {}
  for k, l in ipairs(h.lines(r.stdout)) do out[k] = h.json.decode(l) end
  return out, r
end

describe("http processor", function()
  it("sends the message as the body with verb, interpolated url and headers; the answer replaces it", function()
    local out = pipe([[
    - http:
        url: '$UP/echo?id=${! this.id }'
        verb: put
        headers: {X-Id: 'id-${! this.id }', Content-Type: application/json}
    - lua: 'this.meta_status = meta.http_status_code; this.meta_multi = meta["x-multi"]'
]], {'{"id":7}'})
    assert.are.equal("PUT", out[1].method)
    assert.are.equal("/echo?id=7", out[1].path)
    assert.are.equal("id-7", out[1].headers["x-id"])
    assert.are.equal("application/json", out[1].headers["content-type"])
    assert.are.equal('{"id":7}', out[1].body)
    assert.are.equal("200", out[1].meta_status)
    assert.are.equal("a", out[1].meta_multi)
  end)

  it("retries a failure `retries` times, then flags the message and keeps its content", function()
    py.reset()
    local out = pipe([[
    - http: {url: '$UP/status?code=500', retries: 2, retry_period: 10ms}
]], {'{"keep":"me"}'})
    assert.are.equal("http: request failed with status 500", out[1].failed)
    assert.are.equal("500", out[1].status)
    assert.are.equal('{"keep":"me"}', out[1].content)
    assert.are.equal(3, py.stats().requests - 1)
  end)

  it("fails a drop_on status at once, and takes a successful_on status as success", function()
    py.reset()
    local out = pipe([[
    - http: {url: '$UP/status?code=${! this.code }', drop_on: [503], successful_on: [404], retry_period: 10ms}
]], {'{"code":503}', '{"code":404}'})
    assert.are.equal(1 + 1, py.stats().requests - 1)
    assert.are.same({error = "as asked"}, out[1])
    assert.are.equal("http: request failed with status 503", out[2].failed)
  end)

  it("retries 429 with Retry-After and gives up after the retries", function()
    py.reset()
    local out = pipe([[
    - http: {url: '$UP/retry-after', retries: 1, retry_period: 10ms}
]], {'{}'})
    assert.are.equal("429", out[1].status)
    assert.are.equal(2, py.stats().requests - 1)
  end)

  it("fails on no answer, garbage and bodies over max_response_size", function()
    local out = pipe([[
    - http: {url: '$UP/${! this.p }', retries: 0, max_response_size: 1MiB, verb: GET}
]], {'{"p":"drop"}', '{"p":"garbage"}', '{"p":"huge?mb=8"}', '{"p":"endless"}'})
    assert.are.equal(4, #out)
    assert.matches("Empty reply", out[1].failed)
    assert.matches("HTTP/0.9", out[2].failed)
    assert.matches("response body too large", out[3].failed)
    assert.matches("response body too large", out[4].failed)
  end)

  it("keeps the batch's order with parallel requests answered out of order", function()
    py.reset()
    local yaml = string.format([[
input:
  generate: {count: 20, interval: 0, batch_size: 20, mapping: 'return {n = i, ms = (20 - i) * 10}'}
pipeline:
  processors:
    - http: {url: '%s/delay?ms=${! this.ms }&n=${! this.n }', verb: GET, parallel: true}
output:
  stdout: {}
]], py.url)
    local r = h.run_config(yaml, {timeout = 30})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.lines(r.stdout)
    assert.are.equal(20, #out)
    for i = 1, 20 do assert.are.equal(tostring(i), h.json.decode(out[i]).n) end
    assert.is_true(py.stats().max_inflight >= 10)
  end)
end)
