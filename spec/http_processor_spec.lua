-- The `http` processor (Benthos's shape) against upstream.py and nginx
-- started here.
local h = require("spec.helpers")
local u = require("spec.upstream_helpers")

local up = u.servers()
setup(up.start)
teardown(up.stop)

-- stdin lines through processors (YAML, indented for pipeline.processors),
-- then a catch that shows failures; returns stdout's lines decoded.
local function pipe(procs, lines)
  local yaml = "input:\n  stdin: {}\npipeline:\n  processors:\n" ..
    procs:gsub("%$UP", up.py.url):gsub("%$NGX", up.ngx.url) ..
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
    up.py.reset()
    local out = pipe([[
    - http: {url: '$UP/status?code=500', retries: 2, retry_period: 10ms}
]], {'{"keep":"me"}'})
    assert.are.equal("http: request failed with status 500", out[1].failed)
    assert.are.equal("500", out[1].status)
    assert.are.equal('{"keep":"me"}', out[1].content)
    assert.are.equal(3, up.py.stats().requests - 1)
  end)

  it("fails a drop_on status at once, and takes a successful_on status as success", function()
    up.py.reset()
    local out = pipe([[
    - http: {url: '$UP/status?code=${! this.code }', drop_on: [503], successful_on: [404], retry_period: 10ms}
]], {'{"code":503}', '{"code":404}'})
    assert.are.equal(1 + 1, up.py.stats().requests - 1)
    assert.are.same({error = "as asked"}, out[1])
    assert.are.equal("http: request failed with status 503", out[2].failed)
  end)

  it("retries 429 with Retry-After and gives up after the retries", function()
    up.py.reset()
    local out = pipe([[
    - http: {url: '$UP/retry-after', retries: 1, retry_period: 10ms}
]], {'{}'})
    assert.are.equal("429", out[1].status)
    assert.are.equal(2, up.py.stats().requests - 1)
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
    up.py.reset()
    local yaml = string.format([[
input:
  generate: {count: 20, interval: 0, batch_size: 20, mapping: 'return {n = i, ms = (20 - i) * 10}'}
pipeline:
  processors:
    - http: {url: '%s/delay?ms=${! this.ms }&n=${! this.n }', verb: GET, parallel: true}
output:
  stdout: {}
]], up.py.url)
    local r = h.run_config(yaml, {timeout = 30})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.lines(r.stdout)
    assert.are.equal(20, #out)
    for i = 1, 20 do assert.are.equal(tostring(i), h.json.decode(out[i]).n) end
    assert.is_true(up.py.stats().max_inflight >= 10)
  end)
end)

describe("branch processor", function()
  it("enriches in one block and keeps the original message and its metadata", function()
    local out = pipe([[
    - lua: 'meta.kept = "yes"'
    - branch:
        request_map: 'return {id = this.user}'
        processors:
          - http: {url: '$NGX/json', verb: GET}
        result_map: 'return {profile = this}'
    - lua: 'this.kept = meta.kept; this.status = meta.http_status_code'
]], {'{"user":"ada","n":1}', '{"user":"bob","n":2}'})
    assert.are.same({user = "ada", n = 1, profile = {region = "eu-west", tier = "gold"}, kept = "yes"}, out[1])
    assert.are.same({user = "bob", n = 2, profile = {region = "eu-west", tier = "gold"}, kept = "yes"}, out[2])
  end)

  it("leaves a message request_map deletes, flags one whose branch failed, and discards results without result_map", function()
    up.py.reset()
    local out = pipe([[
    - branch:
        request_map: |
          if this.skip then return deleted() end
        processors:
          - http: {url: '$UP/${! this.p }', retries: 0, verb: GET}
        result_map: 'return {got = this.path}'
    - branch:
        processors:
          - http: {url: '$UP/echo?side=effect', verb: POST}
]], {'{"p":"echo?a=1"}', '{"p":"status?code=500","keep":true}', '{"p":"echo?c=3","skip":true}'})
    assert.are.same({p = "echo?a=1", got = "/echo?a=1"}, out[1])
    assert.are.same({p = "echo?c=3", skip = true}, out[2])
    assert.are.equal("http: request failed with status 500", out[3].failed)
    assert.are.equal('{"p":"status?code=500","keep":true}', out[3].content)
    -- 2 calls of the first branch, and the side-effect branch's for all three
    -- (a failure is a flag: processors still run on the message, as in Benthos)
    assert.are.equal(2 + 3, up.py.stats().requests - 1)
  end)

  it("keeps order across batches answered out of order, and request_map may call out itself", function()
    up.py.reset()
    local yaml = string.format([[
input:
  generate: {count: 30, interval: 0, mapping: 'return {n = i}'}
pipeline:
  processors:
    - branch:
        request_map: |
          local r = http.get("%s/json")
          return {n = this.n, region = json.decode(r.body).region}
        processors:
          - http: {url: '%s/delay?ms=${! (30 - this.n) * 5 }&n=${! this.n }', verb: GET}
        result_map: 'return {echo = this.n}'
output:
  stdout: {}
]], up.ngx.url, up.py.url)
    local r = h.run_config(yaml, {timeout = 30})
    assert.are.equal(0, r.code, r.stderr)
    local out = h.lines(r.stdout)
    assert.are.equal(30, #out)
    for i = 1, 30 do assert.are.same({n = i, echo = tostring(i)}, h.json.decode(out[i])) end
    assert.is_true(up.py.stats().max_inflight >= 2, "the branches did not overlap")
  end)
end)

describe("http and branch under lint", function()
  it("check their fields with file:line:col, and start nothing", function()
    local dir = h.tmpdir()
    h.write(dir .. "/c.yaml", [[
input:
  stdin: {}
pipeline:
  processors:
    - branch:
        request_map: 'return {id = this.id'
        processors:
          - http:
              url: 'http://x/${! this.id ++ }'
              drop_on: [700]
        result_map: 'return {user = this}'
output:
  stdout: {}
]])
    local r = h.sluice("lint " .. dir .. "/c.yaml")
    h.rmdir(dir)
    assert.are.equal(1, r.code)
    assert.matches("c%.yaml:6:%d+: request_map: Lua: ", r.stderr)
    assert.matches("c%.yaml:9:%d+: [^\n]*url", r.stderr)
    assert.matches("c%.yaml:10:%d+: [^\n]*drop_on: an HTTP status", r.stderr)
  end)
end)
