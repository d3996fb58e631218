-- http_client output (webhooks out) and input (polling, SSE, NDJSON)
-- against a real peer: a Python http.server (spec/tools/webhook_peer.py)
-- answering with failures, Retry-After, drops, hangs, redirects, OAuth2
-- tokens, and checking HMAC signatures with Python's hmac module.
local h = require("spec.helpers")
local json = h.json

local peer = {}

-- Every request the peer recorded for path (the path without its query).
local function got(path)
  local out = {}
  for _, l in ipairs(h.lines(h.read(peer.dir .. "/out.jsonl") or "")) do
    local r = json.decode(l)
    if r.path:gsub("%?.*", "") == path then out[#out + 1] = r end
  end
  return out
end

local uniq = 0
-- A path of the peer's that no other test uses: kind/args/unique.
local function path(kind)
  uniq = uniq + 1
  return "/" .. kind .. "/" .. uniq
end

-- Runs generate(count) -> http_client output (extra YAML under it, indented
-- 4) inside a fallback whose second output prints what failed.
local function send(count, out_yaml, mapping)
  local r = h.run_config(string.format([[
input:
  generate:
    count: %d
    interval: 0
    mapping: |
      %s
output:
  fallback:
    - http_client:
%s
    - stdout: {}
]], count, mapping or "return {n = i}", out_yaml), {timeout = 40})
  assert.are.equal(0, r.code, r.stderr)
  return r
end

local function url(p) return "http://127.0.0.1:" .. peer.port .. p end

describe("http_client", function()
  setup(function()
    peer.dir = h.tmpdir()
    os.execute(string.format("/usr/bin/python3 spec/tools/webhook_peer.py %s/port %s/out.jsonl s3cret 10 & echo $! > %s/pid",
      peer.dir, peer.dir, peer.dir))
    peer.port = h.wait_for(function() return h.read(peer.dir .. "/port") end)
    assert(peer.port, "the peer did not start")
  end)
  teardown(function()
    os.execute("kill " .. h.read(peer.dir .. "/pid"):match("%d+") .. " 2>/dev/null")
    h.rmdir(peer.dir)
  end)

  describe("output", function()
    it("posts each message, url interpolated per message, acknowledged after the 2xx", function()
      local r = send(3, "        url: '" .. url("/ok/${! this.n }") .. "'")
      assert.are.equal("", r.stdout)   -- nothing fell back
      for i = 1, 3 do
        local reqs = got("/ok/" .. i)
        assert.are.equal(1, #reqs)
        assert.are.equal("POST", reqs[1].method)
        assert.are.same({n = i}, json.decode(reqs[1].body))
        assert.are.equal("application/octet-stream", reqs[1].headers["content-type"])
      end
    end)

    it("retries 503 and honours Retry-After in seconds over a long retry_period", function()
      local p = path("fail/2/503") .. "?ra=1"
      -- Without Retry-After the retry would wait 60 s and the run would time out.
      local r = send(1, "        url: " .. url(p) .. "\n        retry_period: 60s\n        retries: 3")
      assert.are.equal("", r.stdout)
      local reqs = got(p:gsub("%?.*", ""))
      assert.are.equal(3, #reqs)
      for _, q in ipairs(reqs) do assert.are.equal('{"n":1}', q.body) end
    end)

    it("honours Retry-After as an HTTP date on 429", function()
      local p = path("fail/1/429") .. "?ra=date"
      local r = send(1, "        url: " .. url(p) .. "\n        retry_period: 60s")
      assert.are.equal("", r.stdout)
      assert.are.equal(2, #got(p:gsub("%?.*", "")))
    end)

    it("retries dropped connections with backoff", function()
      local p = path("drop/2")
      local r = send(1, "        url: " .. url(p) .. "\n        retry_period: 10ms")
      assert.are.equal("", r.stdout)
      assert.are.equal(3, #got(p))
    end)

    it("fails without retrying a 400 and a drop_on status; gives up after retries", function()
      local p400 = path("fail/9/400")
      local r = send(1, "        url: " .. url(p400) .. "\n        retry_period: 10ms")
      assert.are.equal('{"n":1}\n', r.stdout)   -- it fell back
      assert.matches("answered 400", r.stderr)
      assert.are.equal(1, #got(p400))
      local p503 = path("fail/9/503")
      r = send(1, "        url: " .. url(p503) .. "\n        retry_period: 10ms\n        drop_on: [503]")
      assert.are.equal('{"n":1}\n', r.stdout)
      assert.matches("answered 503", r.stderr)
      assert.are.equal(1, #got(p503))
      local p500 = path("fail/9/500")
      r = send(1, "        url: " .. url(p500) .. "\n        retry_period: 10ms\n        retries: 2")
      assert.are.equal('{"n":1}\n', r.stdout)   -- not acknowledged: it fell back
      assert.matches("answered 500", r.stderr)
      assert.are.equal(3, #got(p500))
    end)

    it("PUT with successful_on: a listed status counts as delivered", function()
      local p = path("fail/9/404")
      local r = send(1, "        url: " .. url(p) .. "\n        verb: PUT\n        successful_on: [404]")
      assert.are.equal("", r.stdout)
      local reqs = got(p)
      assert.are.equal(1, #reqs)
      assert.are.equal("PUT", reqs[1].method)
    end)

    it("signs bodies with HMAC-SHA256 that Python's hmac verifies, with and without a timestamp", function()
      local r = send(2, "        url: " .. url("/hmac/a") .. "\n        signature: {secret: s3cret}")
      assert.are.equal("", r.stdout)
      local reqs = got("/hmac/a")
      assert.are.equal(2, #reqs)
      for _, q in ipairs(reqs) do assert.is_true(q.sig_ok) end
      r = send(1, "        url: " .. url("/hmac_ts/a") ..
        "\n        signature: {secret: s3cret, timestamp_header: X-Timestamp}")
      assert.are.equal("", r.stdout)
      reqs = got("/hmac_ts/a")
      assert.is_true(reqs[1].sig_ok)
      assert.matches("^%d+$", reqs[1].headers["x-timestamp"])
      r = send(1, "        url: " .. url("/hmac/b") .. "\n        signature: {secret: wrong}")
      assert.are.equal('{"n":1}\n', r.stdout)
      assert.matches("answered 401", r.stderr)
      assert.is_false(got("/hmac/b")[1].sig_ok)
    end)

    it("sends metadata with include_prefixes as headers, never a value with a line break", function()
      local r = send(1, "        url: " .. url("/ok/meta") .. "\n        metadata: {include_prefixes: [x_]}" ..
        "\n        headers: {X-Static: yes, X-Per: '${! this.n }'}",
        [[meta.x_tenant = "acme"; meta.x_evil = "a\r\nX-Injected: 1"; meta.other = "no"; return {n = i}]])
      assert.are.equal("", r.stdout)
      local hd = got("/ok/meta")[1].headers
      assert.are.equal("acme", hd["x_tenant"])
      assert.is_nil(hd["x_evil"])
      assert.is_nil(hd["x-injected"])
      assert.is_nil(hd["other"])
      assert.are.equal("yes", hd["x-static"])
      assert.are.equal("1", hd["x-per"])
    end)

    it("sends metadata matching include_patterns as headers, with include_prefixes beside them", function()
      local r = send(1, "        url: " .. url("/ok/metapat") ..
        "\n        metadata: {include_patterns: ['^tenant_(id|name)$', 'trace'], include_prefixes: [x_]}",
        [[meta.tenant_id = "7"; meta.tenant_name = "acme"; meta.tenant_secret = "no"; meta.my_trace = "t1"
          meta.x_a = "b"; meta.tenant_evil = "a\r\nX-Injected: 1"; return {n = i}]])
      assert.are.equal("", r.stdout)
      local hd = got("/ok/metapat")[1].headers
      assert.are.equal("7", hd["tenant_id"])
      assert.are.equal("acme", hd["tenant_name"])
      assert.are.equal("t1", hd["my_trace"])
      assert.are.equal("b", hd["x_a"])
      assert.is_nil(hd["tenant_secret"])
      assert.is_nil(hd["x-injected"])
    end)

    it("a rate_limit resource bounds the requests the server sees", function()
      local uh = require("spec.upstream_helpers")
      local up = uh.python()
      local ok, err = pcall(function()
        local r = h.run_config(string.format([[
rate_limit_resources:
  - label: hooks
    local: {count: 2, interval: 500ms}
input:
  generate: {count: 10, interval: 0, mapping: 'return {n = i}'}
output:
  http_client: {url: '%s/tick', rate_limit: hooks, max_in_flight: 64}
]], up.url), {timeout = 60})
        assert.are.equal(0, r.code, r.stderr)
        uh.assert_limited(up.stats().ticks, 10, 2, 0.5)
      end)
      up.stop()
      assert(ok, err)
    end)

    it("lint: a bad include_patterns, an unknown rate_limit, a bad status, at line:col", function()
      local cfg = h.write(h.tmpname(".yaml"), [[
rate_limit_resources: [{label: hooks, local: {count: 1}}]
input: {stdin: {}}
output:
  http_client:
    url: 'http://x/'
    metadata: {include_patterns: ['a[']}
    rate_limit: hook
]])
      local r = h.sluice("lint " .. cfg)
      assert.are.equal(1, r.code)
      assert.matches(":6:%d+: metadata%.include_patterns: not a regular expression", r.stderr)
      h.write(cfg, [[
rate_limit_resources: [{label: hooks, local: {count: 1}}]
input: {stdin: {}}
output:
  http_client:
    url: 'http://x/'
    rate_limit: hook
]])
      r = h.sluice("lint " .. cfg)
      assert.are.equal(1, r.code)
      assert.matches(':6:%d+: rate_limit: no rate limit resource labelled "hook" %(did you mean "hooks"%?%)', r.stderr)
      h.write(cfg, [[
input: {stdin: {}}
output:
  http_client:
    url: 'http://x/'
    successful_on: [204, "2xx"]
]])
      r = h.sluice("lint " .. cfg)
      os.remove(cfg)
      assert.are.equal(1, r.code)
      assert.matches(":5:%d+: successful_on: an HTTP status", r.stderr)
    end)

    it("sends a batch as one JSON array or NDJSON body; non-JSON goes in as a string", function()
      local function batch(fmt, p)
        local r = h.run_config(string.format([[
input:
  generate: {count: 3, batch_size: 3, interval: 0, mapping: 'if i == 2 then return "plain\ntext" end return {n = i}'}
output:
  http_client: {url: %s, batch_format: %s}
]], url(p), fmt), {timeout = 30})
        assert.are.equal(0, r.code, r.stderr)
        local reqs = got(p)
        assert.are.equal(1, #reqs)
        return reqs[1]
      end
      local a = batch("array", "/ok/array")
      assert.are.same({{n = 1}, "plain\ntext", {n = 3}}, json.decode(a.body))
      assert.are.equal("application/json", a.headers["content-type"])
      local n = batch("ndjson", "/ok/ndjson")
      assert.are.equal('{"n":1}\n"plain\\ntext"\n{"n":3}\n', n.body)
      local m = batch("multipart", "/ok/multipart")
      local boundary = m.headers["content-type"]:match("^multipart/mixed; boundary=(%x+)$")
      assert.truthy(boundary)
      assert.are.equal(4, select(2, m.body:gsub("%-%-" .. boundary, "")))
    end)

    it("batching gathers messages of separate transactions into requests by count and by period", function()
      local function run(batching, p, n, format)
        local r = h.run_config(string.format([[
input:
  generate: {count: %d, interval: 0, mapping: 'return {n = i}'}
output:
  http_client: {url: %s, batch_format: %s, batching: %s}
]], n, url(p), format or "ndjson", batching), {timeout = 30})
        assert.are.equal(0, r.code, r.stderr)
        local bodies = {}
        for _, q in ipairs(got(p)) do bodies[#bodies + 1] = q.body end
        -- requests go out side by side (max_in_flight): they may arrive in any order
        table.sort(bodies, function(a, b) return tonumber(a:match("%d+")) < tonumber(b:match("%d+")) end)
        return bodies
      end
      -- count: requests of 4, the rest when the period ends
      local b = run("{count: 4, period: 200ms}", "/ok/bcount", 10)
      assert.are.same({'{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n', '{"n":5}\n{"n":6}\n{"n":7}\n{"n":8}\n',
        '{"n":9}\n{"n":10}\n'}, b)
      -- period alone: whatever came meanwhile (each message is its own transaction)
      b = run("{period: 100ms}", "/ok/bperiod", 3)
      local all = table.concat(b)
      assert.are.equal('{"n":1}\n{"n":2}\n{"n":3}\n', all)
      assert.is_true(#b < 3)
      -- byte_size: a request once 16 bytes are gathered (two 7-byte messages are not enough)
      b = run("{byte_size: 16, period: 10s}", "/ok/bbytes", 6)
      assert.are.same({'{"n":1}\n{"n":2}\n{"n":3}\n', '{"n":4}\n{"n":5}\n{"n":6}\n'}, b)
      -- individual: each message of a formed batch is a request of its own (as in Benthos)
      b = run("{count: 2}", "/ok/bindiv", 3, "individual")
      assert.are.same({'{"n":1}', '{"n":2}', '{"n":3}'}, b)
    end)

    it("OAuth2 client credentials: one token fetch, reused, fetched again after a 401", function()
      local o2 = "\n        oauth2: {enabled: true, client_key: id, client_secret: secret, token_url: " ..
        url("/token") .. "}"
      local r = send(3, "        url: " .. url("/protected") .. "\n        max_in_flight: 1" .. o2)
      assert.are.equal("", r.stdout)
      assert.are.equal(1, #got("/token"))
      assert.are.equal(3, #got("/protected"))
      -- A new run fetches its own token; revoking it makes the next request 401
      -- once, then a fresh token is fetched and the request is sent again.
      h.sh("curl -s " .. url("/revoke"))
      r = send(1, "        url: " .. url("/protected") .. o2)
      assert.are.equal("", r.stdout)
      assert.are.equal(2, #got("/token"))
      -- A token that goes stale while the output runs: the 401 makes it fetch a new one
      -- and send the same request again (not counted as a retry: retries 0).
      r = send(3, "        url: " .. url("/rotating") .. "\n        max_in_flight: 1\n        retries: 0" .. o2)
      assert.are.equal("", r.stdout)
      assert.are.equal(5, #got("/token"))
      local ok200 = 0
      for _, q in ipairs(got("/rotating")) do ok200 = ok200 + (q.headers.authorization and 1 or 0) end
      assert.are.equal(5, ok200)   -- 3 accepted, 2 refused with a stale token
    end)

    it("basic and bearer auth", function()
      send(1, "        url: " .. url("/ok/basic") .. "\n        basic_auth: {enabled: true, username: u, password: p}")
      assert.are.equal("Basic dTpw", got("/ok/basic")[1].headers.authorization)
      send(1, "        url: " .. url("/ok/bearer") .. "\n        bearer_token: t0k")
      assert.are.equal("Bearer t0k", got("/ok/bearer")[1].headers.authorization)
    end)

    it("follows a redirect, fails a redirect loop, times out a server that never answers", function()
      local r = send(1, "        url: " .. url("/redirect"))
      assert.are.equal("", r.stdout)
      assert.are.equal(1, #got("/ok"))
      r = send(1, "        url: " .. url("/loop") .. "\n        retries: 0")
      assert.are.equal('{"n":1}\n', r.stdout)
      assert.matches("redirect", r.stderr:lower())
      r = send(1, "        url: " .. url("/hang") .. "\n        timeout: 300ms\n        retries: 1\n        retry_period: 10ms")
      assert.are.equal('{"n":1}\n', r.stdout)
      assert.matches("timed? ?out", r.stderr:lower())
      assert.are.equal(2, #got("/hang"))
    end)

    it("TLS: trusts root_cas_file, refuses an unknown CA, skip_cert_verify accepts it", function()
      local d = h.tmpdir()
      h.self_signed(d)
      local rcv = h.serve([[
http:
  address: 127.0.0.1:$PORT
  tls: {cert_file: ]] .. d .. [[/cert.pem, key_file: ]] .. d .. [[/key.pem}
input:
  http_server: {path: /in}
output:
  file: {path: got.ndjson}
]], {scheme = "https", cacert = d .. "/cert.pem"})
      local ok, err = pcall(function()
        local u = "https://127.0.0.1:" .. rcv.port .. "/in"
        local r = send(1, "        url: " .. u .. "\n        tls: {root_cas_file: " .. d .. "/cert.pem}",
          'return {via = "ca"}')
        assert.are.equal("", r.stdout)
        r = send(1, "        url: " .. u .. "\n        retries: 0", 'return {via = "none"}')
        assert.are.equal('{"via":"none"}\n', r.stdout)   -- the system's CAs do not know it
        assert.matches("certificate", r.stderr)
        r = send(1, "        url: " .. u .. "\n        tls: {skip_cert_verify: true}", 'return {via = "skip"}')
        assert.are.equal("", r.stdout)
        local lines = h.wait_lines(rcv.dir .. "/got.ndjson", 2)
        assert.are.same({'{"via":"ca"}', '{"via":"skip"}'}, lines)
      end)
      h.stop_after(rcv, ok, err)
      h.rmdir(d)
    end)

    it("delivers to nginx's fixed 200, fails on its 503, reads only 64 KiB of a huge answer", function()
      local d = h.tmpdir()
      local port = h.port()
      h.write(d .. "/nginx.conf", string.format([[
worker_processes 1;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 64; }
http {
  access_log %s/access.log;
  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;
  server {
    listen 127.0.0.1:%d;
    location /ok { return 200 '{"status":"ok"}'; }
    location /busy { return 503; }
  }
}
]], d, d, d, d, d, d, d, d, port))
      os.execute(string.format("nginx -p %s -c %s/nginx.conf > /dev/null 2>&1 & echo $! > %s/mypid", d, d, d))
      local up = h.wait_for(function() return h.sh("curl -s -o /dev/null http://127.0.0.1:" .. port .. "/ok") == 0 end)
      local ok, err = pcall(function()
        assert.truthy(up, "nginx did not start")
        local base = "http://127.0.0.1:" .. port
        local r = send(3, "        url: " .. base .. "/ok")
        assert.are.equal("", r.stdout)
        local log = h.read(d .. "/access.log") or ""
        assert.are.equal(3, select(2, log:gsub('"POST /ok HTTP/1.1" 200', "")))
        r = send(1, "        url: " .. base .. "/busy\n        retries: 1\n        retry_period: 10ms")
        assert.are.equal('{"n":1}\n', r.stdout)
        assert.matches("answered 503", r.stderr)
        -- the peer answers POST /huge with 200 and 64 MiB: delivered, the rest of the body dropped
        r = send(1, "        url: " .. url("/huge"))
        assert.are.equal("", r.stdout)
      end)
      os.execute("kill " .. (h.read(d .. "/mypid") or ""):match("%d+") .. " 2>/dev/null")
      h.wait_for(function() return not h.read(d .. "/nginx.pid") end, 5)
      h.rmdir(d)
      if not ok then error(err, 0) end
    end)

    it("examples/webhooks_out.yaml: signed as GitHub signs, refused ones dead-lettered", function()
      local d = h.tmpdir()
      assert(os.execute("cp examples/webhooks_out.yaml " .. d))
      local function run(target, input)
        return h.sh(string.format("WEBHOOK_URL=%s WEBHOOK_SECRET=s3cret timeout 30 %s run %s/webhooks_out.yaml",
          url(target), h.bin, d), input)
      end
      local code, _, err = run("/hmac/example", '{"order":1}\n{"order":2}\n')
      assert.are.equal(0, code, err)
      local reqs = got("/hmac/example")
      assert.are.equal(2, #reqs)
      for _, q in ipairs(reqs) do assert.is_true(q.sig_ok) end
      assert.is_nil(h.read(d .. "/dead-letter.ndjson"))
      code, _, err = run(path("fail/9/422"), '{"order":3}\n')
      assert.are.equal(0, code, err)
      assert.are.equal('{"order":3}\n', h.read(d .. "/dead-letter.ndjson"))
      h.rmdir(d)
    end)

    it("lint refuses a bad header and two auths at once", function()
      local cfg = h.write(h.tmpname(".yaml"), [[
input: {stdin: {}}
output:
  http_client: {url: 'http://x/', bearer_token: a, basic_auth: {enabled: true}}
]])
      local r = h.sluice("lint " .. cfg)
      os.remove(cfg)
      assert.are.equal(1, r.code)
      assert.matches("exclude each other", r.stdout .. r.stderr)
      cfg = h.write(h.tmpname(".yaml"), [[
input:
  http_client: {url: 'http://x/', headers: {A: '${! this.a }'}}
output: {drop: {}}
]])
      r = h.sluice("lint " .. cfg)
      os.remove(cfg)
      assert.are.equal(1, r.code)   -- an input has no message to evaluate them with
      assert.matches("url and headers cannot name a message", r.stdout .. r.stderr)
    end)
  end)

  describe("input", function()
    it("reads SSE, resumes with Last-Event-ID after a drop, each event once and in order", function()
      local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  http_client:
    url: %s
    stream: {enabled: true}
    retry_period: 60s   # the server's retry: 100 must win, or the resume comes too late
pipeline:
  processors:
    - lua: 'return json.encode({d = content(), id = meta.sse_id, ev = meta.sse_event, st = meta.http_status_code, ct = meta["content-type"]})'
output:
  file: {path: out.ndjson}
]], url("/sse")))
      local ok, err = pcall(function()
        local lines = h.wait_lines(srv.dir .. "/out.ndjson", 11, 30)
        assert.are.equal(11, #lines)
        for i = 1, 10 do
          local v = json.decode(lines[i])
          assert.are.same({n = i}, json.decode(v.d))
          assert.are.equal(tostring(i), v.id)
          assert.are.equal("tick", v.ev)
          assert.are.equal("200", v.st)
          assert.are.equal("text/event-stream", v.ct)
        end
        -- data lines joined by a newline; the last id stays the event's
        assert.are.same({d = "first line\nsecond line", id = "10", ev = "message", st = "200",
          ct = "text/event-stream"}, json.decode(lines[11]))
        local conns = got("/sse")
        assert.are.equal(2, #conns)
        assert.is_nil(conns[1].headers["last-event-id"])
        assert.are.equal("3", conns[2].headers["last-event-id"])
      end)
      h.stop_after(srv, ok, err)
    end)

    it("reads NDJSON split across chunks, CRLF and a last line without a newline", function()
      local r = h.run_config(string.format([[
input:
  http_client: {url: %s, stream: {enabled: true, reconnect: false}}
output:
  stdout: {}
]], url("/ndjson")), {timeout = 30})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.same({'{"a":1}', '{"a":2}', '{"a":3}'}, h.lines(r.stdout))
    end)

    it("polls on an interval with status and headers as metadata", function()
      local r = h.run_config(string.format([[
input:
  http_client: {url: %s, interval: 10ms, verb: POST, payload: '{"q":1}'}
pipeline:
  processors:
    - lua: 'if this.n > 3 then return deleted() end; return meta.http_status_code .. " " .. meta["content-type"]'
output:
  stdout: {}
]], url("/poll")), {timeout = 5})
      -- polls forever: the timeout ends it
      local lines = h.lines(r.stdout)
      assert.is_true(#lines >= 3)
      assert.are.equal("200 application/json", lines[1])
      local reqs = got("/poll")
      assert.are.equal("POST", reqs[1].method)
      assert.are.equal('{"q":1}', reqs[1].body)
    end)

    it("polls no faster than a rate_limit resource allows (Benthos: no interval, polls as fast as it allows)", function()
      local uh = require("spec.upstream_helpers")
      local up = uh.python()
      local srv
      local ok, err = pcall(function()
        srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
rate_limit_resources:
  - label: polls
    local: {count: 2, interval: 500ms}
input:
  http_client: {url: '%s/tick', rate_limit: polls}
output:
  drop: {}
]], up.url))
        -- the first 10 polls the upstream saw; polling goes on while we look
        local ticks = h.wait_for(function()
          local t = up.stats().ticks
          return #t >= 10 and t
        end, 60)
        assert.truthy(ticks, "10 polls did not come")
        table.sort(ticks)
        uh.assert_limited({table.unpack(ticks, 1, 10)}, 10, 2, 0.5)
      end)
      local stopped, stop_err = true, nil
      if srv then stopped, stop_err = pcall(srv.stop) end
      up.stop()
      assert(ok, err)
      assert(stopped, stop_err)
    end)

    it("lint: an unknown rate_limit at line:col", function()
      local cfg = h.write(h.tmpname(".yaml"), [[
rate_limit_resources: [{label: polls, local: {count: 1}}]
input:
  http_client:
    url: 'http://x/'
    rate_limit: poll
output: {drop: {}}
]])
      local r = h.sluice("lint " .. cfg)
      os.remove(cfg)
      assert.are.equal(1, r.code)
      assert.matches(':5:%d+: rate_limit: no rate limit resource labelled "poll" %(did you mean "polls"%?%)', r.stderr)
    end)

    it("polls with an OAuth2 token, fetched once and again after a 401", function()
      -- polls path with oauth2 until the timeout ends the run: the statuses, and the tokens fetched
      local function poll(path)
        local before = #got("/token")
        local r = h.run_config(string.format([[
input:
  http_client:
    url: %s
    interval: 10ms
    retry_period: 10ms
    oauth2: {enabled: true, client_key: id, client_secret: secret, token_url: %s}
pipeline:
  processors:
    - lua: 'return meta.http_status_code'
output:
  stdout: {}
]], url(path), url("/token")), {timeout = 5})
        local lines = h.lines(r.stdout)
        assert.is_true(#lines >= 2, r.stderr)
        return lines, #got("/token") - before
      end
      local lines, tokens = poll("/protected")
      assert.are.equal("200", lines[1])
      assert.are.equal(1, tokens)
      -- each success makes the token stale: the next poll is refused once, then a new one is fetched
      lines, tokens = poll("/rotating")
      assert.is_true(tokens >= 2)
    end)

    it("bounds an endless line: the connection is dropped and memory stays small", function()
      local r = h.run_config(string.format([[
input:
  http_client: {url: %s, stream: {enabled: true, reconnect: false, max_buffer: 64KiB}}
output:
  stdout: {}
]], url("/huge")), {timeout = 30})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("", r.stdout)
      assert.matches("longer than stream.max_buffer", r.stderr)
    end)

    it("a poll answer over max_body is not emitted", function()
      local r = h.run_config(string.format([[
input:
  http_client: {url: %s, interval: 10ms, max_body: 1MiB}
output:
  stdout: {}
]], url("/huge")), {timeout = 4})
      assert.are.equal("", r.stdout)
      assert.matches("larger than max_body", r.stderr)
    end)

    it("parses malformed SSE the way browsers do, bytes passed through as they are", function()
      local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  http_client: {url: %s, stream: {enabled: true}}
pipeline:
  processors:
    - lua: 'return json.encode({d = content(), ev = meta.sse_event, id = meta.sse_id or ""}) '
output:
  file: {path: out.ndjson}
]], url("/malformed")))
      local ok, err = pcall(function()
        local lines = h.wait_lines(srv.dir .. "/out.ndjson", 4, 20)
        local want = {
          {d = "", ev = "message", id = ""},          -- "data" alone: an empty data line
          {d = "no space", ev = "e", id = ""},        -- unknown fields, comments, an id with NUL, a bad retry: ignored
        }
        for i, w in ipairs(want) do assert.are.same(w, json.decode(lines[i])) end
        assert.are.equal("crlf", json.decode(lines[4]).d)
        assert.are.equal("after", json.decode(lines[5] or h.wait_lines(srv.dir .. "/out.ndjson", 5, 20)[5]).d)
      end)
      h.stop_after(srv, ok, err)
      assert.truthy(h.read and true)
    end)

    it("pauses reading while the stream is full: a fast source cannot fill memory", function()
      local srv = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
max_in_flight: 1
input:
  http_client: {url: %s, stream: {enabled: true}}
output:
  http_client: {url: %s, timeout: 3s, max_in_flight: 1}
]], url("/flood"), url("/hang")))
      local ok, err = pcall(function()
        assert.truthy(h.wait_for(function() return #got("/hang") >= 1 end, 20))   -- the pipeline is stuck
        -- Reading without pausing took the whole 256 MiB in (RSS in the GBs); paused, the
        -- source is held back by TCP and sluice holds one read's worth.
        local function rss_mb()
          local st = h.read("/proc/" .. h.read(srv.dir .. "/pid.txt"):match("%d+") .. "/status") or ""
          return tonumber(st:match("VmRSS:%s*(%d+)") or 0) / 1024
        end
        local grew = h.wait_for(function() return rss_mb() > 200 end, 5)
        assert.is_false(grew, "RSS grew to " .. rss_mb() .. " MB")
        assert.is_true(tonumber(h.read(peer.dir .. "/out.jsonl.flood") or "0") < 64 * 1048576)
      end)
      h.stop_after(srv, ok, err)
    end)

    it("drops and reconnects a stream whose server never answers (idle_timeout)", function()
      local p = path("hang")
      local r = h.run_config(string.format([[
input:
  http_client: {url: %s, stream: {enabled: true, idle_timeout: 1s}, retry_period: 10ms}
output:
  stdout: {}
]], url(p)), {timeout = 6})
      assert.are.equal("", r.stdout)
      assert.matches("too slow", r.stderr)   -- libcurl's "Operation too slow", logged
      assert.is_true(#got(p) >= 2, "reconnected")
    end)

    it("passes non-UTF-8 lines through byte for byte", function()
      local r = h.run_config(string.format([[
input:
  http_client: {url: %s, stream: {enabled: true, reconnect: false}}
output:
  stdout: {}
]], url("/latin1")), {timeout = 30})
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("caf\xe9\n\xff\xfe\n", r.stdout)
    end)

    it("mediates SSE between two sluices: one's sse_path into the other's pipeline", function()
      local up = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server: {path: /in}
output:
  http_server: {sse_path: /events}
]])
      local down
      local ok, err = pcall(function()
        down = h.serve(string.format([[
http: {address: 127.0.0.1:$PORT}
input:
  http_client: {url: %s/events, stream: {enabled: true}}
output:
  file: {path: out.ndjson}
]], up.url))
        -- The subscriber is connected once a post reaches it; post until one does.
        local n = 0
        h.wait_for(function()
          n = n + 1
          h.sh(string.format("curl -s -d '{\"k\":%d}' %s/in", n, up.url))
          return #h.lines(h.read(down.dir .. "/out.ndjson") or "") > 0
        end, 20)
        for k = n + 1, n + 5 do h.sh(string.format("curl -s -d '{\"k\":%d}' %s/in", k, up.url)) end
        -- posts before the subscriber connected are not in the file, and the
        -- first post the check saw may not be n's: wait for the last one
        local last
        h.wait_for(function()
          local lines = h.lines(h.read(down.dir .. "/out.ndjson") or "")
          last = lines[#lines] and json.decode(lines[#lines])
          return last and last.k == n + 5
        end, 20)
        assert.are.equal(n + 5, last and last.k)
      end)
      if down then pcall(down.stop) end
      h.stop_after(up, ok, err)
    end)
  end)
end)

describe("http_client output with a client certificate", function()
  it("shows one given as PEM text with an encrypted key (libcurl blobs) to a server that requires it", function()
    local dir = h.tmpdir()
    h.self_signed(dir)
    assert(os.execute("cd " .. dir .. " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem " ..
      "-days 1 -subj /CN=client-ca 2>/dev/null && openssl req -newkey rsa:2048 -nodes -keyout client.key " ..
      "-out client.csr -subj /CN=hc-client 2>/dev/null && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key " ..
      "-CAcreateserial -out client.pem -days 1 2>/dev/null && openssl pkey -in client.key -aes256 -passout pass:pw " ..
      "-out client.enc.key"))
    local port = h.port()
    -- node's https server: answers 200 with the client certificate's CN, refuses a connection without one
    os.execute(string.format([[(cd %s && node -e '
const fs = require("fs");
require("https").createServer({cert: fs.readFileSync("cert.pem"), key: fs.readFileSync("key.pem"),
  ca: fs.readFileSync("ca.pem"), requestCert: true, rejectUnauthorized: true}, (req, res) => {
  fs.appendFileSync("seen.txt", req.socket.getPeerCertificate().subject.CN + "\n");
  res.end("ok");
}).listen(%d, "127.0.0.1", () => fs.writeFileSync("up", "1"));' > node.log 2>&1 & echo $! > %s/pid)]], dir, port, dir))
    local ok, err = pcall(function()
      assert(h.wait_for(function() return h.read(dir .. "/up") end, 15), h.read(dir .. "/node.log"))
      local function pem(f) return (h.read(dir .. "/" .. f):gsub("\n$", ""):gsub("\n", "\n                ")) end
      local base = "        url: https://127.0.0.1:" .. port .. "/\n        tls:\n          root_cas_file: " .. dir ..
        "/cert.pem\n"
      local r = send(2, base .. "          client_certs:\n            - cert: |\n                " .. pem("client.pem") ..
        "\n              key: |\n                " .. pem("client.enc.key") .. "\n              password: pw")
      assert.are.equal("", r.stdout)   -- nothing fell back
      assert.are.equal("hc-client\nhc-client\n", h.read(dir .. "/seen.txt"))
      -- without it the TLS handshake fails: the message falls back
      r = send(1, base .. "        retries: 0")
      assert.are_not.equal("", r.stdout)
      assert.are.equal("hc-client\nhc-client\n", h.read(dir .. "/seen.txt"))
    end)
    os.execute("kill " .. h.read(dir .. "/pid"):match("%d+") .. " 2>/dev/null")
    h.rmdir(dir)
    assert(ok, err)
  end)
end)
