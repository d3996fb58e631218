-- Client certificates for the NATS connectors and the nats_kv cache
-- (clients/nats_link.c): files, or PEM text in the config with an encrypted
-- key's password, against Debian's nats-server requiring a certificate its
-- CA signed (`--tlsverify`, the flag form of `tls { verify: true }`).
local h = require("spec.helpers")
local nats = require("spec.nats_helpers")

local why = nats.unavailable()
if why then
  describe("nats client certificates", function() pending(why) end)
  return
end

local S, dir

setup(function()
  dir = h.tmpdir()
  h.self_signed(dir)
  h.client_certs(dir)
  S = nats.start({args = string.format("--tls --tlscert %s/cert.pem --tlskey %s/key.pem --tlsverify --tlscacert %s/ca.pem",
    dir, dir, dir)})
end)
teardown(function()
  if S then S.stop() end
  h.rmdir(dir)
end)

-- A YAML block scalar of file's text at indent.
local function block(file, indent)
  return "|\n" .. (h.read(dir .. "/" .. file):gsub("[^\n]+", string.rep(" ", indent) .. "%0"))
end

-- The `tls:` of a config (at 4 spaces), trusting the server's certificate;
-- cert: the certificate's lines (at 8 spaces).
local function tls(cert)
  return "    tls:\n      root_cas_file: " .. dir .. "/cert.pem\n      client_certs:\n" .. cert
end

local function inline(certfile, keyfile, password)
  return "        - cert: " .. block(certfile, 12) .. "          key: " .. block(keyfile, 12) ..
    (password and "          password: " .. password .. "\n" or "")
end

-- Runs one message through a lua processor calling a nats_kv cache with
-- cert (env: variables for sluice); returns the message.
local function kv_call(cert, env)
  local url = S.url:gsub("^nats:", "tls:")
  local yaml = "cache_resources:\n  - label: kv\n    nats_kv:\n      urls: [" .. url .. "]\n      bucket: kv\n" ..
    "      timeout: 3s\n" .. tls(cert):gsub("\n    ", "\n      "):gsub("^    ", "      ") .. [[
input:
  generate: { count: 1, mapping: 'return {}' }
pipeline:
  processors:
    - lua: |
        local ok, err = cache.set("kv", "k", "v")
        return {ok = ok, err = err, back = cache.get("kv", "k")}
output:
  stdout: {}
]]
  local r = h.run_config(yaml, {timeout = 60, env = env})
  assert.are.equal(0, r.code, r.stderr)
  return h.decode_lines(h.lines(r.stdout))[1], r.stderr
end

describe("nats client certificates", function()
  setup(function()
    -- the bucket, made through JetStream's API by a nats output (nats-py here has no client certificate)
    local url = S.url:gsub("^nats:", "tls:")
    local cfg = '{"name":"KV_kv","subjects":["$KV.kv.>"],"max_msgs_per_subject":1,"discard":"new",' ..
      '"allow_rollup_hdrs":true,"deny_delete":true,"allow_direct":true,"storage":"file","num_replicas":1}'
    local r = h.run_config("input:\n  generate: { count: 1, mapping: 'return [[" .. cfg .. "]]' }\noutput:\n  nats:\n    urls: [" .. url .. "]\n    subject: '$JS.API.STREAM.CREATE.KV_kv'\n" ..
      tls("        - {cert_file: " .. dir .. "/client.pem, key_file: " .. dir .. "/client.key}\n"), {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
  end)

  it("nats output to nats input, both with the certificate as PEM text and an encrypted key", function()
    local cert = inline("client.pem", "client.enc.key", "pw")
    local url = S.url:gsub("^nats:", "tls:")
    local srv = h.serve("http: { address: 127.0.0.1:$PORT }\ninput:\n  nats:\n    urls: [" .. url .. "]\n" ..
      "    subject: tls.in\n" .. tls(cert) .. "output:\n  stdout: {}\n")
    local ok, err = pcall(function()
      assert.is_true(h.wait_for(function()
        return h.sh("curl -s -f -m 2 -o /dev/null " .. srv.url .. "/ready") == 0
      end, 30), srv.stderr())
      local r = h.run_config("input:\n  generate: { count: 5, interval: 0, mapping: 'return {n = i}' }\n" ..
        "output:\n  nats:\n    urls: [" .. url .. "]\n    subject: tls.in\n" .. tls(cert), {timeout = 60})
      assert.are.equal(0, r.code, r.stderr)
      assert.is_true(h.wait_for(function() return #h.lines(srv.stdout()) >= 5 end, 30), srv.stderr())
      local out = h.decode_lines(h.lines(srv.stdout()))
      for i = 1, 5 do assert.are.equal(i, out[i].n) end
    end)
    h.stop_after(srv, ok, err)
  end)

  -- A TLS link runs on cnats's threads: the PubAcks come through the link's
  -- queue, not on the loop.
  it("nats_jetstream output over TLS: every batch acknowledged by its PubAcks", function()
    local url = S.url:gsub("^nats:", "tls:")
    local cert = "        - {cert_file: " .. dir .. "/client.pem, key_file: " .. dir .. "/client.key}\n"
    local r = h.run_config("input:\n  generate: { count: 30, interval: 0, batch_size: 10, mapping: 'return \"v\" .. i' }\n" ..
      "output:\n  nats_jetstream:\n    urls: [" .. url .. "]\n    subject: '$KV.kv.tlsjs'\n    ack_timeout: 10s\n" ..
      tls(cert), {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    assert.is_nil(r.stderr:find("failed", 1, true), r.stderr)
    -- the key holds the last one stored
    local kv = "cache_resources:\n  - label: kv\n    nats_kv:\n      urls: [" .. url .. "]\n      bucket: kv\n" ..
      tls(cert):gsub("\n    ", "\n      "):gsub("^    ", "      ") ..
      "input:\n  generate: { count: 1, mapping: 'return {}' }\npipeline:\n  processors:\n" ..
      "    - lua: 'return {back = cache.get(\"kv\", \"tlsjs\")}'\noutput:\n  stdout: {}\n"
    r = h.run_config(kv, {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.same({back = "v30"}, h.decode_lines(h.lines(r.stdout))[1])
  end)

  it("nats_kv with the certificate as PEM text, and as files with an encrypted key", function()
    local m = kv_call(inline("client.pem", "client.enc.key", "pw"))
    assert.are.same({ok = true, back = "v"}, m)
    m = kv_call("        - {cert_file: " .. dir .. "/client.pem, key_file: " .. dir .. "/client.enc.key, password: pw}\n")
    assert.are.same({ok = true, back = "v"}, m)
  end)

  it("a certificate the server's CA did not sign is refused, and the error says why", function()
    local m = kv_call(inline("other.pem", "other.key"))
    assert.is_nil(m.ok)
    assert.matches("nats_kv: ", m.err)
    local url = S.url:gsub("^nats:", "tls:")
    local srv = h.serve("http: { address: 127.0.0.1:$PORT }\ninput:\n  nats:\n    urls: [" .. url .. "]\n" ..
      "    subject: tls.in\n" .. tls(inline("other.pem", "other.key")) .. "output:\n  stdout: {}\n")
    local ok, err = pcall(function()
      local body
      assert.is_true(h.wait_for(function()
        local _, o = h.sh("curl -s -m 2 " .. srv.url .. "/ready")
        body = o
        return o and o:find("nats: ", 1, true) and not o:find("connecting", 1, true)
      end, 30), body)
      assert.matches("certificate", body)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("lint: a wrong password, a key that is not the certificate's, and no PEM at all, at the field", function()
    local cases = {
      {inline("client.pem", "client.enc.key", "wrong"), "bad decrypt"},
      {inline("client.pem", "other.key"), "key values mismatch"},
      {"        - {cert: 'not PEM', key: 'nor this'}\n", "client certificate"},
    }
    for _, c in ipairs(cases) do
      local d = h.tmpdir()
      h.write(d .. "/c.yaml", "input:\n  nats:\n    urls: [tls://127.0.0.1:4222]\n    subject: s\n" .. tls(c[1]) ..
        "output:\n  drop: {}\n")
      local code, out, e = h.sh(h.shell_quote(h.abs_bin) .. " lint " .. d .. "/c.yaml")
      h.rmdir(d)
      assert.are_not.equal(0, code)
      out = (out or "") .. (e or "")
      assert.matches("c%.yaml:8:11: tls%.client_certs: ", out)
      assert.matches(c[2], out, 1, true)
    end
  end)
end)

-- The process's end with TLS connections (issue 16): cnats drops a
-- connection's last reference on its callback thread, after the closed
-- callback, and frees its TLS session and context there. The process exited
-- without waiting for that, so OpenSSL's exit cleanup could run under it (a
-- SEGV at exit under ASan, about one run in six of this spec's setup).
describe("nats at the process's end", function()
  local function output_yaml(n, subject)
    local url = S.url:gsub("^nats:", "tls:")
    local y = "input:\n  generate: { count: 3, interval: 0, mapping: 'return {n = i}' }\noutput:\n  broker:\n    outputs:\n"
    for i = 1, n do
      y = y .. "      - nats:\n          urls: [" .. url .. "]\n          subject: " .. subject .. "." .. i .. "\n" ..
        "          tls:\n            root_cas_file: " .. dir .. "/cert.pem\n            client_certs:\n" ..
        "              - {cert_file: " .. dir .. "/client.pem, key_file: " .. dir .. "/client.key}\n"
    end
    return y
  end

  it("waits for cnats to release every connection (its callback thread slowed down)", function()
    -- The shim delays each release of a callback's reference on cnats's
    -- thread, two per connection (disconnected, closed), as a loaded machine
    -- does; without the wait the process exits in the middle of them.
    local env, releases = h.slow_release(dir, "natsAsyncCb_Destroy", "/libnats.so")
    local r = h.run_config(output_yaml(3, "exit.slow"), {timeout = 60, env = env})
    assert.are.equal(0, r.code, r.stderr)
    local begun, done = releases()
    assert.is_true(done >= 6 and done == begun, begun .. " begun, " .. done .. " released\n" .. r.stderr)
    -- and a nats_kv cache's connections (one per worker loop that used it)
    local m, stderr = kv_call("        - {cert_file: " .. dir .. "/client.pem, key_file: " .. dir .. "/client.key}\n", env)
    assert.are.same({ok = true, back = "v"}, m)
    begun, done = releases()
    assert.is_true(done >= 2 and done == begun, begun .. " begun, " .. done .. " released\n" .. stderr)
  end)

  -- Under ThreadSanitizer (build-tsan) this fails at once without the wait:
  -- OpenSSL's exit cleanup frees a lock that cnats's thread, freeing the
  -- connection's certificates, takes (the race behind the ASan SEGV).
  it("a nats output run to its end exits 0, 30 times in a row", function()
    for i = 1, 30 do
      local r = h.run_config(output_yaml(2, "exit.loop"), {timeout = 60})
      assert.are.equal(0, r.code, "run " .. i .. ": " .. r.stderr)
    end
  end)
end)
