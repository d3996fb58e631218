-- TLS to Redis (clients/redis_tls.c: sluice's own TLS session, hiredis on a
-- private Unix socket) against Debian's redis-server with --tls-port, the
-- certificates made here by openssl: redis.call and a redis_list output
-- over TLS, a certificate from another CA refused with the reason in
-- /ready, skip_cert_verify, and a server that asks for client certificates.
local h = require("spec.helpers")
local redis = require("spec.redis_helpers")

local D, R, RA   -- certificates; a TLS Redis; one requiring client certificates

setup(function()
  D = redis.tls_certs()
  h.self_signed(D)   -- cert.pem: a certificate of another "CA"
  R = redis.start({tls = D})
  RA = redis.start({tls = D, tls_auth = "yes"})
end)

teardown(function()
  if R then R.stop() end
  if RA then RA.stop() end
  if D then h.rmdir(D) end
end)

local function tls(extra) return "{enabled: true, root_cas_file: " .. D .. "/ca.pem" .. (extra or "") .. "}" end

-- Runs the lines through a lua processor with code (redis.call to r, a
-- cache resource with tls t) and the output yaml.
local function run(r, t, code, output, lines)
  local yaml = string.format([[
cache_resources:
  - label: r
    redis: {url: '%s', tls: %s}
input:
  stdin: {}
pipeline:
  processors:
    - lua:
        code: |
%s
output:
  %s
]], r.tls_url, t, code:gsub("[^\n]+", "          %0"), output)
  return h.run_config(yaml, {stdin = lines, timeout = 120})
end

-- Three messages through redis.call (SET, GET) and a redis_list output
-- (RPUSH), both over TLS with the tls settings t, against r.
local function through(r, t, key)
  return run(r, t, string.format('assert(redis.call("r", "SET", "%s-" .. this.n, "v" .. this.n) == "OK")\n' ..
    'this.got = redis.call("r", "GET", "%s-" .. this.n)', key, key),
    string.format("redis_list: {url: '%s', key: %s, tls: %s}", r.tls_url, key, t), '{"n":1}\n{"n":2}\n{"n":3}\n')
end

-- /ready of a sluice whose redis_list output uses t against r, once it says 503 with a reason past "connecting".
local function refusal(r, t)
  local srv = h.serve(string.format(
    "http: { address: 127.0.0.1:$PORT }\ninput: {generate: {count: 0, interval: 1s, mapping: 'root = 1'}}\n" ..
    "output:\n  redis_list: {url: '%s', key: never, tls: %s}\n", r.tls_url, t))
  local code, body
  local ok, err = pcall(function()
    h.wait_for(function()
      code, body = h.ready(srv)
      return code == 503 and body and not body:find("connecting", 1, true)
    end, 30)
  end)
  h.stop_after(srv, ok, err)
  return code, body
end

describe("redis tls", function()
  it("redis.call and a redis_list output work over TLS, verified against root_cas_file", function()
    local r = through(R, tls(), "a")
    assert.are.equal(0, r.code, r.stderr)
    local got = {}
    for _, m in ipairs(h.decode_lines(h.lines(R.cli("LRANGE a 0 -1")))) do got[m.n] = m.got end
    assert.are.same({"v1", "v2", "v3"}, got)   -- read back by redis.call, then pushed by the output
    assert.are.equal("v2", R.cli("GET a-2"):match("[^\n]+"))
  end)

  it("root_cas as PEM text verifies the same", function()
    local pem = h.read(D .. "/ca.pem"):gsub("\n", "\\n")
    local r = through(R, '{enabled: true, root_cas: "' .. pem .. '"}', "b")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(3, R.num("LLEN b"))
  end)

  it("a server certificate from another CA is refused, and /ready says why", function()
    local code, body = refusal(R, "{enabled: true, root_cas_file: " .. D .. "/cert.pem}")
    assert.are.equal(503, code)
    assert.matches("TLS: certificate verify failed", body, 1, true)
  end)

  it("a name the certificate does not carry is refused; a plain Redis (no handshake) times out saying so", function()
    local code, body = refusal({tls_url = "redis://localhost:" .. R.tls_url:match("%d+$")}, tls())
    assert.are.equal(503, code)
    assert.matches("TLS: certificate verify failed: hostname mismatch", body, 1, true)
    code, body = refusal({tls_url = R.url}, tls())   -- the plain port
    assert.are.equal(503, code)
    assert.matches("redis 127.0.0.1:%d+: connect or TLS handshake timed out", body)
  end)

  it("carries a 32 MiB value and binary bytes both ways over the tunnel", function()
    local r = run(R, tls(), [[
local huge = string.rep("0123456789abcdef", 2 * 1024 * 1024) .. "\0\255"
assert(redis.call("r", "SET", "huge", huge) == "OK")
local back = redis.call("r", "GET", "huge")
this.same = back == huge]], "stdout: {}", "{}\n")
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(h.json.decode(r.stdout).same)
    assert.are.equal(32 * 1024 * 1024 + 2, R.num("STRLEN huge"))
  end)

  it("hiredis's socket is gone once connected; a Redis restart drops the connection and the next comes back", function()
    local tmp = h.tmpdir()
    local srv = h.serve(string.format(
      "http: { address: 127.0.0.1:$PORT }\ninput: {generate: {count: 0, interval: 1s, mapping: 'root = 1'}}\n" ..
      "output:\n  redis_list: {url: '%s', key: never, tls: %s, reconnect_max_backoff: 200ms}\n", R.tls_url, tls()),
      {env = "TMPDIR=" .. tmp})
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return h.ready(srv) == 200 end, 30))
      local _, socks = h.sh("ss -xaH")
      assert.truthy(socks:find(tmp .. "/sluice-redis-", 1, true), socks)   -- hiredis came through the socket...
      local _, left = h.sh("ls -A " .. tmp)
      assert.are.equal("", left)                                          -- ...whose file and directory are gone
      R.halt()
      local _, body
      assert.truthy(h.wait_for(function()
        local code
        code, body = h.ready(srv)
        return code == 503
      end, 30))
      R.launch()
      assert.truthy(h.wait_for(function() return h.ready(srv) == 200 end, 30))
    end)
    h.stop_after(srv, ok, err)
    h.rmdir(tmp)
  end)

  it("skip_cert_verify accepts the certificate of another CA", function()
    local r = through(R, "{enabled: true, root_cas_file: " .. D .. "/cert.pem, skip_cert_verify: true}", "c")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(3, R.num("LLEN c"))
  end)

  it("a server asking for client certificates refuses none, with the reason in /ready, and takes client_certs", function()
    local code, body = refusal(RA, tls())
    assert.are.equal(503, code)
    assert.matches("TLS: [^\n]*certificate required", body)
    local r = through(RA, tls(", client_certs: [{cert_file: " .. D .. "/client.pem, key_file: " .. D .. "/client.key}]"), "d")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(3, RA.num("LLEN d"))
    r = through(RA, tls(", client_certs: [{cert_file: " .. D .. "/client.pem, key_file: " .. D .. "/client.enc.key, " ..
      "password: pw}]"), "e")   -- an encrypted key
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(3, RA.num("LLEN e"))
  end)
end)
