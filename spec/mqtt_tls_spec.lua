-- Client certificates for the mqtt connectors: sluice builds the TLS
-- context (files or PEM text, an encrypted key's password, CAs as files or
-- text) and hands it to libmosquitto (MOSQ_OPT_SSL_CTX), against Debian's
-- Mosquitto with a TLS listener that requires a certificate its CA signed.
local h = require("spec.helpers")
local mq = require("spec.mqtt_helpers")
local tlsh = require("spec.tls_helpers")

local function ready(srv)
  local _, out = h.sh("curl -s -m 2 " .. srv.url .. "/ready")
  return out or ""
end

describe("mqtt client certificates", function()
  local B, dir, certs, tport, nport, collector

  local function tls(cert, ca_text) return certs.tls("cert.pem", cert, ca_text) end

  local function input(port) return "input:\n  mqtt:\n    urls: [ssl://127.0.0.1:" .. port .. "]\n    topics: [certs]\n" end

  setup(function()
    dir = h.tmpdir()
    certs = tlsh.in_dir(dir)
    h.self_signed(dir)    -- the server's: cert.pem, key.pem (127.0.0.1)
    h.client_certs(dir)   -- the clients' CA (ca.pem) and certificates
    certs.make_chain()    -- and one from an intermediate CA
    -- and one for another name (no address in it), for the name check
    assert(os.execute("cd " .. dir .. " && openssl req -x509 -newkey rsa:2048 -nodes -keyout elsewhere.key " ..
      "-out elsewhere.pem -days 1 -subj /CN=elsewhere.example 2>/dev/null"))
    -- started as root, mosquitto reads them as the user `mosquitto`
    os.execute("chmod 0755 " .. h.shell_quote(dir) .. " && chmod 0644 " .. h.shell_quote(dir) .. "/*")
    tport, nport = h.port(), h.port()
    B = mq.start({before_listener = "per_listener_settings true", extra = table.concat({
      "listener " .. tport .. " 127.0.0.1", "allow_anonymous true",
      "cafile " .. dir .. "/ca.pem", "certfile " .. dir .. "/cert.pem", "keyfile " .. dir .. "/key.pem",
      "require_certificate true",
      "listener " .. nport .. " 127.0.0.1", "allow_anonymous true",
      "certfile " .. dir .. "/elsewhere.pem", "keyfile " .. dir .. "/elsewhere.key"}, "\n")})
    -- what the outputs publish, read on the plain listener
    collector = h.serve("http: {address: 127.0.0.1:$PORT}\ninput:\n  mqtt:\n    urls: [" .. B.url .. "]\n" ..
      "    topics: [certs]\n    qos: 1\noutput:\n  file: {path: out.txt}\n")
    assert.truthy(h.wait_for(function() return ready(collector):find('"ready":true', 1, true) end, 30))
  end)
  teardown(function()
    if collector then h.stop_after(collector, true) end
    if B then B.stop() end
    h.rmdir(dir)
  end)

  -- One message published by an mqtt output with cert; true once the collector has it.
  local n = 0
  local function through(cert, ca_text, port, tls_yaml)
    n = n + 1
    local word = "msg-" .. n
    local r = h.run_config("input:\n  generate: {count: 1, mapping: 'return \"" .. word .. "\"'}\n" ..
      "output:\n  mqtt:\n    urls: [ssl://127.0.0.1:" .. (port or tport) .. "]\n    topic: certs\n    qos: 1\n" ..
      (tls_yaml or tls(cert, ca_text)), {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
    return h.wait_for(function() return (h.read(collector.dir .. "/out.txt") or ""):find(word, 1, true) end, 30)
  end

  it("input and output with the certificate as PEM text and an encrypted key, the CA as text", function()
    local cert = certs.inline("client.pem", "client.enc.key", "pw")
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. input(tport) .. "    qos: 1\n" .. tls(cert, true) ..
      "output:\n  file: {path: in.txt}\n")
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end, 30), ready(srv))
      assert.truthy(through(cert, true))
      assert.truthy(h.wait_for(function() return (h.read(srv.dir .. "/in.txt") or ""):find("msg-", 1, true) end, 30))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("the certificate as files, the key encrypted or not, and as text with a clear key", function()
    assert.truthy(through(certs.files("client.pem", "client.enc.key", "pw")))
    assert.truthy(through(certs.files("client.pem", "client.key")))
    assert.truthy(through(certs.inline("client.pem", "client.key")))
  end)

  it("a certificate with its intermediate's, as text and as a file: the broker knows only the root", function()
    assert.truthy(through(certs.inline("chain.pem", "leaf.key")))
    assert.truthy(through(certs.files("chain.pem", "leaf.key")))
  end)

  it("lint: a wrong password, a key that is not the certificate's, no PEM at all, at the field", function()
    certs.assert_lint(input(1), "cert.pem")
  end)

  it("refused without a certificate, or with one the broker's CA did not sign, and /ready says why", function()
    -- the alert's words, or sluice's question where the broker only closed
    for _, case in ipairs({{nil, "certificate required"}, {certs.inline("other.pem", "other.key"), "unknown ca"}}) do
      local body = tlsh.refusal(input(tport) .. tls(case[1]) .. "output:\n  drop: {}\n", "mqtt: connecting")
      assert.is_truthy(body:find(case[2], 1, true) or body:find("does the broker take the client certificate?", 1, true),
        body)
    end
  end)

  it("a server whose certificate does not carry the address dialled is refused; skip_cert_verify takes it", function()
    -- libmosquitto leaves the name check to the context sluice gives it
    local body = tlsh.refusal(input(nport) .. certs.tls("elsewhere.pem") .. "output:\n  drop: {}\n", "mqtt: connecting")
    assert.matches("certificate verify failed", body, 1, true)
    assert.truthy(through(nil, nil, nport, "    tls: {skip_cert_verify: true}\n"))
  end)
end)
