-- Client certificates for the amqp_0_9 connectors: sluice builds the TLS
-- settings once (files or PEM text, an encrypted key's password, CAs as
-- files or text) and gives them to the context librabbitmq makes for each
-- connection, against Debian's rabbitmq-server with a TLS listener that
-- requires a certificate its CA signed (pika, on the plain listener, is the
-- peer).
local h = require("spec.helpers")
local amqp = require("spec.amqp_helpers")
local tlsh = require("spec.tls_helpers")

describe("amqp_0_9 client certificates", function()
  local why = amqp.unavailable()
  if why then
    pending("no RabbitMQ on this machine: " .. why)
    return
  end

  local B, dir, certs, tport

  local function tls(cert, ca_text) return certs.tls("srv.pem", cert, ca_text) end

  -- The broker's certificate names localhost (no address in it).
  local function url(host) return "amqps://guest:guest@" .. (host or "localhost") .. ":" .. tport .. "/" end

  setup(function()
    dir = h.tmpdir()
    certs = tlsh.in_dir(dir)
    h.client_certs(dir)   -- the clients' CA (ca.pem) and certificates
    certs.make_chain()    -- and one from an intermediate CA
    assert(os.execute("cd " .. dir .. " && openssl req -x509 -newkey rsa:2048 -nodes -keyout srv.key -out srv.pem " ..
      "-days 1 -subj /CN=localhost 2>/dev/null && chmod 0644 *"))
    tport = h.port()
    B = amqp.start({conf = table.concat({
      "listeners.ssl.default = 127.0.0.1:" .. tport,
      "ssl_options.cacertfile = " .. dir .. "/ca.pem",
      "ssl_options.certfile = " .. dir .. "/srv.pem",
      "ssl_options.keyfile = " .. dir .. "/srv.key",
      "ssl_options.verify = verify_peer", "ssl_options.depth = 2",
      "ssl_options.fail_if_no_peer_cert = true", ""}, "\n")})
    assert.are.equal(0, (amqp.peer(B, "declare tq")))
  end)
  teardown(function()
    if B then B.destroy() end
    h.rmdir(dir)
  end)

  -- An amqp_0_9 output with cert publishes n messages to tq (the run ends
  -- once the broker confirmed them).
  local function publish(cert, n, ca_text, host, tls_yaml)
    local r = h.run_config("input:\n  generate: {count: " .. n .. ", interval: '', mapping: 'return \"m\"'}\n" ..
      "output:\n  amqp_0_9:\n    urls: [" .. url(host) .. "]\n    exchange: ''\n    key: tq\n" ..
      (tls_yaml or tls(cert, ca_text)), {timeout = 60})
    assert.are.equal(0, r.code, r.stderr)
  end

  it("input and output with the certificate as PEM text and an encrypted key, the CA as text", function()
    local cert = certs.inline("client.pem", "client.enc.key", "pw")
    publish(cert, 3, true)
    assert.are.equal(3, amqp.count(B, "tq"))
    local out = h.tmpname(".txt")
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\ninput:\n  amqp_0_9:\n    urls: [" .. url() .. "]\n" ..
      "    queue: tq\n" .. tls(cert, true) .. "output:\n  file: {path: " .. out .. "}\n")
    local ok, err = pcall(function()
      assert.truthy(h.wait_lines(out, 3, 60))
      assert.is_truthy(amqp.wait(function() return amqp.count(B, "tq") == 0 end, 30))
    end)
    h.stop_after(srv, ok, err)
    os.remove(out)
  end)

  -- One message published with each of the certificates, all confirmed.
  local function publish_each(list)
    for _, cert in ipairs(list) do publish(cert, 1) end
    assert.are.equal(#list, amqp.count(B, "tq"))
    amqp.drain(B, "tq")
  end

  it("the certificate as files, the key encrypted or not, and as text with a clear key", function()
    publish_each({certs.files("client.pem", "client.enc.key", "pw"), certs.files("client.pem", "client.key"),
      certs.inline("client.pem", "client.key")})
  end)

  it("a certificate with its intermediate's, as text and as a file: the broker knows only the root", function()
    publish_each({certs.inline("chain.pem", "leaf.key"), certs.files("chain.pem", "leaf.key")})
  end)

  it("lint: a wrong password, a key that is not the certificate's, no PEM at all, at the field", function()
    certs.assert_lint("input:\n  amqp_0_9:\n    urls: [amqps://127.0.0.1:1/]\n    queue: q\n", "srv.pem")
  end)

  -- /ready of an input with cert (nil: none) once it tried, not ready.
  local function refusal(cert, host)
    return tlsh.refusal("input:\n  amqp_0_9:\n    urls: [" .. url(host) .. "]\n    queue: tq\n" .. tls(cert) ..
      "output:\n  drop: {}\n", "amqp: connecting")
  end

  it("refused without a certificate, or with one the broker's CA did not sign, and /ready says why", function()
    -- the alert's words, or sluice's question where a reset came before the alert was read
    for _, case in ipairs({{nil, "certificate required"}, {certs.inline("other.pem", "other.key"), "bad certificate"}}) do
      local body = refusal(case[1])
      assert.is_truthy(body:find(case[2] .. ")", 1, true) or
        body:find("after the TLS handshake: does it take the client certificate?", 1, true), body)
    end
  end)

  it("a broker whose certificate does not carry the address dialled is refused; skip_cert_verify takes it", function()
    -- librabbitmq's own name check knows no addresses: sluice's context checks the name
    assert.matches("certificate verify failed", refusal(certs.files("client.pem", "client.key"), "127.0.0.1"), 1, true)
    publish(nil, 1, nil, "127.0.0.1", "    tls:\n      skip_cert_verify: true\n      client_certs:\n" ..
      certs.files("client.pem", "client.key"))
    assert.are.equal(1, amqp.count(B, "tq"))
    amqp.drain(B, "tq")
  end)

  -- The process's end (issue 16): each link's thread destroys its
  -- connection, over TLS freeing OpenSSL's session and context, once the
  -- stream has ended. The process exited without waiting for it, so
  -- OpenSSL's exit cleanup could run under it, as it did under cnats's.
  describe("at the process's end", function()
    local function outputs(n)
      local y = "input:\n  generate: {count: 3, interval: '', mapping: 'return \"m\"'}\noutput:\n  broker:\n    outputs:\n"
      for _ = 1, n do
        y = y .. "      - amqp_0_9:\n          urls: [" .. url() .. "]\n          exchange: ''\n          key: tq\n" ..
          tls(certs.files("client.pem", "client.key")):gsub("\n(.)", "\n      %1"):gsub("^", "      ")
      end
      return y
    end

    it("waits for each link to destroy its connection (librabbitmq's close of its socket slowed down)", function()
      -- The shim delays each socket librabbitmq closes (one per connection,
      -- on the link's thread, between freeing its TLS session and its
      -- context), as a loaded machine does.
      amqp.drain(B, "tq")
      local env, releases = h.slow_release(dir, "close", "/libc.so", "/librabbitmq")
      local r = h.run_config(outputs(3), {timeout = 60, env = env})
      assert.are.equal(0, r.code, r.stderr)
      local begun, done = releases()
      -- ThreadSanitizer's own close (in the binary) comes before the shim's:
      -- nothing is slowed there, and the runs below are what it checks.
      if h.sh("nm -D --defined-only " .. h.abs_bin .. " | grep -qw close") ~= 0 then
        assert.is_true(done >= 3 and done == begun, begun .. " begun, " .. done .. " released\n" .. r.stderr)
      end
      assert.are.equal(9, amqp.count(B, "tq"))
      amqp.drain(B, "tq")
    end)

    -- Under ThreadSanitizer (build-tsan): nothing of a link's thread races
    -- OpenSSL's exit cleanup (the race seldom shows unslowed: the shim
    -- above is what fails without the wait).
    it("an amqp_0_9 TLS output run to its end exits 0, 20 times in a row", function()
      amqp.drain(B, "tq")
      for i = 1, 20 do
        local r = h.run_config(outputs(2), {timeout = 60})
        assert.are.equal(0, r.code, "run " .. i .. ": " .. r.stderr)
      end
      assert.are.equal(120, amqp.count(B, "tq"))
      amqp.drain(B, "tq")
    end)
  end)
end)
