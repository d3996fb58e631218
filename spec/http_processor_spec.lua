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
    assert.are.equal("http: request failed with status 503", out[1].failed)
    assert.are.same({error = "as asked"}, out[2])
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
    assert.are.equal("http: request failed with status 500", out[2].failed)
    assert.are.equal('{"p":"status?code=500","keep":true}', out[2].content)
    assert.are.same({p = "echo?c=3", skip = true}, out[3])
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

describe("http processor: Benthos's fields for auth, TLS, headers, limits", function()
  it("sends basic_auth, bearer_token and an OAuth2 token fetched once for every message", function()
    up.py.reset()
    local out = pipe([[
    - http: {url: '$UP/echo', basic_auth: {enabled: true, username: u, password: p}}
    - lua: 'this = {basic = this.headers.authorization}'
]], {'{}'})
    assert.are.equal("Basic dTpw", out[1].basic)
    out = pipe([[
    - http: {url: '$UP/echo', bearer_token: t0k}
    - lua: 'this = {bearer = this.headers.authorization}'
]], {'{}'})
    assert.are.equal("Bearer t0k", out[1].bearer)
    up.py.reset()
    out = pipe([[
    - http:
        url: '$UP/echo'
        parallel: true
        oauth2: {enabled: true, client_key: id, client_secret: s, token_url: '$UP/token', scopes: [a, b]}
    - lua: 'this = {auth = this.headers.authorization}'
]], {'{}', '{}', '{}'})
    for i = 1, 3 do assert.are.equal("Bearer tok1", out[i].auth) end
    assert.are.equal(1, up.py.stats().tokens)
    -- a token_url that fails fails the messages, with its reason
    out = pipe([[
    - http: {url: '$UP/echo', retries: 0, oauth2: {enabled: true, token_url: '$UP/status?code=403'}}
]], {'{}'})
    assert.matches("oauth2: token_url answered 403", out[1].failed)
  end)

  it("jwt: one token signed with private_key_file, which the public key verifies, on every request", function()
    local dir = h.tmpdir()
    assert.are.equal(0, h.sh(string.format("openssl genrsa -out %s/k.pem 2048 2>/dev/null && " ..
      "openssl rsa -in %s/k.pem -pubout -out %s/pub.pem 2>/dev/null", dir, dir, dir)))
    local out = pipe(string.format([[
    - http:
        url: '$UP/echo'
        parallel: true
        jwt: {enabled: true, private_key_file: '%s/k.pem', signing_method: RS256, claims: {sub: svc, n: 7}, headers: {kid: k1}}
    - lua: 'this = {auth = this.headers.authorization}'
]], dir), {'{}', '{}'})
    assert.are.equal(out[1].auth, out[2].auth)
    local tok = out[1].auth:match("^Bearer ([%w_%-]+%.[%w_%-]+%.[%w_%-]+)$")
    assert.is_truthy(tok, out[1].auth)
    local hd, pl, sig = tok:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    local function b64url(x)
      x = x:gsub("-", "+"):gsub("_", "/")
      return x .. string.rep("=", (4 - #x % 4) % 4)
    end
    h.write(dir .. "/data", hd .. "." .. pl)
    h.write(dir .. "/sig.b64", b64url(sig) .. "\n")
    h.write(dir .. "/pl.b64", b64url(pl) .. "\n")
    h.write(dir .. "/hd.b64", b64url(hd) .. "\n")
    local verified = h.sh(string.format("openssl base64 -d -A -in %s/sig.b64 -out %s/sig && " ..
      "openssl dgst -sha256 -verify %s/pub.pem -signature %s/sig %s/data", dir, dir, dir, dir, dir))
    local _, claims = h.sh(string.format("openssl base64 -d -A -in %s/pl.b64", dir))
    local _, header = h.sh(string.format("openssl base64 -d -A -in %s/hd.b64", dir))
    h.rmdir(dir)
    assert.are.equal(0, verified)
    assert.are.same({sub = "svc", n = 7}, h.json.decode(claims))
    local jh = h.json.decode(header)
    assert.are.equal("RS256", jh.alg)
    assert.are.equal("k1", jh.kid)
  end)

  it("verifies TLS against root_cas_file (its OAuth2 token_url too), refuses an unknown CA, and skip_cert_verify skips", function()
    local ngx = u.nginx({tls = true})
    local ok, err = pcall(function()
      local out = pipe(string.format([[
    - http: {url: '%s/json', verb: GET, retries: 0, tls: {root_cas_file: '%s/c.pem'}}
]], ngx.url, ngx.dir), {'{}'})
      assert.are.same({region = "eu-west", tier = "gold"}, out[1])
      out = pipe(string.format([[
    - http: {url: '%s/json', verb: GET, retries: 0}
]], ngx.url), {'{}'})
      assert.matches("certificate", out[1].failed)
      out = pipe(string.format([[
    - http: {url: '%s/json', verb: GET, retries: 0, tls: {skip_cert_verify: true}}
]], ngx.url), {'{}'})
      assert.are.same({region = "eu-west", tier = "gold"}, out[1])
      -- the OAuth2 token comes from the same server, trusted the same way
      out = pipe(string.format([[
    - http: {url: '%s/json', verb: GET, retries: 0, tls: {root_cas_file: '%s/c.pem'}, oauth2: {enabled: true, token_url: '%s/token'}}
]], ngx.url, ngx.dir, ngx.url), {'{}'})
      assert.are.same({region = "eu-west", tier = "gold"}, out[1])
    end)
    ngx.stop()
    assert(ok, err)
  end)

  it("interpolates verb per message and fails a message whose verb is no method", function()
    local out = pipe([[
    - http: {url: '$UP/echo', verb: '${! this.m }', retries: 0}
    - lua: 'this = {method = this.method}'
]], {'{"m":"delete"}', '{"m":"PATCH"}', '{"m":"GET /x HTTP/1.1\\r\\nX-Evil: 1\\r\\n"}'})
    assert.are.equal("DELETE", out[1].method)
    assert.are.equal("PATCH", out[2].method)
    assert.matches("verb is not an HTTP method", out[3].failed)
  end)

  it("extract_headers keeps only the response headers it includes", function()
    local out = pipe([[
    - http: {url: '$UP/echo', extract_headers: {include_patterns: ['^x-'], include_prefixes: [content-t]}}
    - lua: 'this = {multi = meta["x-multi"], ctype = meta["content-type"], clen = meta["content-length"] or "none", status = meta.http_status_code}'
]], {'{}'})
    assert.are.same({multi = "a", ctype = "application/json", clen = "none", status = "200"}, out[1])
  end)

  it("waits as long as a Retry-After date asks, over a longer retry_period", function()
    up.py.reset()
    -- without the date form the wait would be retry_period (100 s) and the run would time out
    local out = pipe([[
    - http: {url: '$UP/once429?key=${! this.k }', retry_period: 100s, max_retry_backoff: 100s}
    - lua: 'this = {path = this.path, status = meta.http_status_code}'
]], {'{"k":"date-1"}'})
    assert.are.equal("200", out[1].status)
    assert.matches("^/once429%?key=", out[1].path)
    local st = up.py.stats()
    assert.are.equal(2, st.requests - 1)
    -- the date is 2 s ahead (whole seconds): the retry waited for it
    assert.is_true(st.ticks[2] - st.ticks[1] >= 1, "retried after " .. (st.ticks[2] - st.ticks[1]) .. " s")
  end)

  it("a rate_limit resource bounds the requests the upstream sees, shared by every user", function()
    up.py.reset()
    local yaml = string.format([[
rate_limit_resources:
  - label: slow
    local: {count: 2, interval: 500ms}
input:
  generate: {count: 6, interval: 0, batch_size: 6, mapping: 'return {n = i}'}
pipeline:
  processors:
    - http: {url: '%s/tick', verb: GET, parallel: true, rate_limit: slow}
    - http: {url: '%s/tick', verb: GET, parallel: true, rate_limit: slow}
output:
  drop: {}
]], up.py.url, up.py.url)
    local r = h.run_config(yaml, {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    -- both processors count against the same 2 per 500 ms
    u.assert_limited(up.py.stats().ticks, 12, 2, 0.5)
  end)

  it("attacks: huge response headers, a line break from metadata, bytes that are not UTF-8", function()
    up.py.reset()
    local out = pipe([[
    - lua: 'meta.evil = "a\r\nX-Injected: 1"; meta.fine = "ok"'
    - http: {url: '$UP/echo', headers: {X-Evil: '${! meta.evil }', X-Fine: '${! meta.fine }'}}
    - lua: 'this = {evil = this.headers["x-evil"] or "absent", injected = this.headers["x-injected"] or "absent", fine = this.headers["x-fine"]}'
]], {'{}'})
    assert.are.same({evil = "absent", injected = "absent", fine = "ok"}, out[1])
    out = pipe([[
    - http: {url: '$UP/bigheaders', verb: GET, retries: 0}
]], {'{}'})
    assert.matches("response headers too large", out[1].failed)
    out = pipe([[
    - http: {url: '$UP/bytes', verb: GET}
    - lua: 'this = {body = hex.encode(content()), header = hex.encode(meta["x-bin"])}'
]], {'{}'})
    assert.are.same({body = "ff00fec3", header = "fffe"}, out[1])
  end)

  it("lint: each bad value of the new fields at line:col", function()
    local dir = h.tmpdir()
    h.write(dir .. "/c.yaml", [[
rate_limit_resources:
  - label: slow
    local: {count: 5, interval: 1s}
input: {stdin: {}}
pipeline:
  processors:
    - http:
        url: http://x/
        rate_limit: slwo
        extract_headers: {include_patterns: ['(']}
        headers: {"a b": x}
        backoff_on: [abc]
        verb: '${! this.m ++ }'
    - http: {url: 'http://x/', jwt: {enabled: true, private_key_file: /nonexistent/k.pem}}
    - http: {url: 'http://x/', jwt: {enabled: true, private_key_file: c.yaml, signing_method: RS257}}
    - http: {url: 'http://x/', jwt: {enabled: true, private_key_file: c.yaml}}
output: {drop: {}}
]])
    local r = h.sluice("lint " .. dir .. "/c.yaml")
    assert.are.equal(1, r.code)
    assert.matches('c%.yaml:9:%d+: rate_limit: no rate limit resource labelled "slwo" %(did you mean "slow"%?%)', r.stderr)
    assert.matches("c%.yaml:10:%d+: extract_headers%.include_patterns: not a regular expression", r.stderr)
    assert.matches('c%.yaml:11:%d+: headers: "a b" is not a header name', r.stderr)
    assert.matches("c%.yaml:12:%d+: backoff_on: an HTTP status", r.stderr)
    assert.matches("c%.yaml:14:%d+: jwt%.private_key_file: cannot read /nonexistent/k%.pem", r.stderr)
    assert.matches('c%.yaml:15:%d+: jwt%.signing_method: unknown signing method "RS257"', r.stderr)
    assert.matches("c%.yaml:16:%d+: jwt%.private_key_file: cannot sign a RS256 token with [^\n]*c%.yaml", r.stderr)
    h.write(dir .. "/d.yaml", [[
rate_limit_resources:
  - label: slow
    local: {count: 0}
  - label: slow
    local: {count: 1}
input: {stdin: {}}
output: {drop: {}}
]])
    r = h.sluice("lint " .. dir .. "/d.yaml")
    assert.are.equal(1, r.code)
    assert.matches("d%.yaml:3:%d+: rate_limit_resources%.0%.local%.count: 0 is out of range", r.stderr)
    h.write(dir .. "/d.yaml", [[
rate_limit_resources:
  - label: slow
    local: {count: 1}
  - label: slow
    local: {count: 1}
input: {stdin: {}}
output: {drop: {}}
]])
    r = h.sluice("lint " .. dir .. "/d.yaml")
    h.rmdir(dir)
    assert.are.equal(1, r.code)
    assert.matches('d%.yaml:4:%d+: rate_limit_resources%.1%.label: a second resource labelled "slow"', r.stderr)
  end)
end)

describe("rate_limit_resources across reloads", function()
  it("a reload gives a kept label its new count at once, its window kept", function()
    up.py.reset()
    local function config(count)
      return string.format([[
http: {address: 127.0.0.1:$PORT}
rate_limit_resources:
  - label: rl
    local: {count: %d, interval: 1h}
input: {http_server: {path: /c}}
pipeline:
  processors:
    - http: {url: '%s/tick', verb: GET, rate_limit: rl}
output: {sync_response: {}}
]], count, up.py.url)
    end
    local srv = h.serve(config(1))
    local ok, err = pcall(function()
      local function post()
        local _, out = h.sh(string.format("curl -s -m 20 -d x %s/c", srv.url))
        return out
      end
      assert.are.equal('{"tick":true}', post())
      -- the hour's one access is used: a second request would wait an hour,
      -- until the reload raises the count to 3 (two more in this window)
      h.write(srv.dir .. "/config.yaml", (config(3):gsub("%$PORT", tostring(srv.port))))
      local _, reply = h.sh("curl -s -m 30 -X POST " .. srv.url .. "/admin/reload")
      assert.is_nil(reply:find('"restart_required":%[[^%]]*rate_limit_resources'), reply)
      assert.are.equal('{"tick":true}', post())
      assert.are.equal('{"tick":true}', post())
      assert.are.equal(3, #up.py.stats().ticks)
    end)
    h.stop_after(srv, ok, err)
  end)
end)
