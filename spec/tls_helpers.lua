-- Client certificates in configs, for the specs of connectors whose TLS
-- context sluice builds (spec/mqtt_tls_spec.lua, spec/amqp_tls_spec.lua):
-- the files of h.client_certs (and the server's certificate) in dir as
-- config text, the lint cases they share, and a stream's refusal reason.
--
--   local certs = require("spec.tls_helpers").in_dir(dir)
--   certs.tls("cert.pem", certs.inline("client.pem", "client.enc.key", "pw"), true)
local h = require("spec.helpers")
local assert = require("luassert")

local M = {}

local function ready(srv)
  local _, out = h.sh("curl -s -m 5 " .. srv.url .. "/ready")
  return out or ""
end

function M.in_dir(dir)
  local c = {}

  -- A YAML block scalar of file's text at indent.
  function c.block(file, indent)
    return "|\n" .. (h.read(dir .. "/" .. file):gsub("[^\n]+", string.rep(" ", indent) .. "%0"))
  end

  -- One client_certs item (at 8 spaces): the certificate and key as text, or as files.
  function c.inline(certfile, keyfile, password)
    return "        - cert: " .. c.block(certfile, 12) .. "          key: " .. c.block(keyfile, 12) ..
      (password and "          password: " .. password .. "\n" or "")
  end
  function c.files(certfile, keyfile, password)
    return "        - {cert_file: " .. dir .. "/" .. certfile .. ", key_file: " .. dir .. "/" .. keyfile ..
      (password and ", password: " .. password or "") .. "}\n"
  end

  -- A connector's `tls:` (at 4 spaces) trusting server_cert (as root_cas
  -- text with ca_text, else root_cas_file); cert: client_certs items, or nil.
  function c.tls(server_cert, cert, ca_text)
    return "    tls:\n      root_cas" ..
      (ca_text and ": " .. c.block(server_cert, 8) or "_file: " .. dir .. "/" .. server_cert .. "\n") ..
      (cert and "      client_certs:\n" .. cert or "")
  end

  -- A client certificate signed by an intermediate CA that ca.pem signed:
  -- chain.pem (the certificate, then the intermediate's) and leaf.key.
  function c.make_chain()
    assert(os.execute("cd " .. dir .. " && printf 'basicConstraints=critical,CA:true\\nkeyUsage=keyCertSign\\n' " ..
      "> inter.ext && openssl req -newkey rsa:2048 -nodes -keyout inter.key -out inter.csr -subj /CN=inter " ..
      "2>/dev/null && openssl x509 -req -in inter.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile inter.ext " ..
      "-out inter.pem -days 1 2>/dev/null && openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr " ..
      "-subj /CN=leaf 2>/dev/null && openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key " ..
      "-CAcreateserial -out leaf.pem -days 1 2>/dev/null && cat leaf.pem inter.pem > chain.pem && chmod 0644 *"))
  end

  -- `sluice lint` of head (an input's first lines, at 4 spaces) with each bad
  -- certificate: an error at its client_certs item, saying why.
  function c.assert_lint(head, server_cert)
    local cases = {
      {c.inline("client.pem", "client.enc.key", "wrong"), "bad decrypt"},
      {c.files("client.pem", "client.enc.key", "wrong"), "bad decrypt"},
      {c.inline("client.pem", "other.key"), "key values mismatch"},
      {"        - {cert: 'not PEM', key: 'nor this'}\n", "client certificate"},
    }
    for _, case in ipairs(cases) do
      local d = h.tmpdir()
      local yaml = head .. c.tls(server_cert, case[1]) .. "output:\n  drop: {}\n"
      h.write(d .. "/c.yaml", yaml)
      local line = 0
      for l in (yaml .. "\n"):gmatch("([^\n]*)\n") do
        line = line + 1
        if l:find("^        %- ") then break end
      end
      local code, out, e = h.sh(h.shell_quote(h.abs_bin) .. " lint " .. d .. "/c.yaml")
      h.rmdir(d)
      assert.are_not.equal(0, code)
      out = (out or "") .. (e or "")
      assert.matches("c%.yaml:" .. line .. ":11: tls%.client_certs: ", out)
      assert.matches(case[2], out, 1, true)
    end
  end

  return c
end

-- Serves yaml (whose input does not connect) until its /ready shows a reason
-- other than `first`; returns that /ready body, asserting it is not ready.
function M.refusal(yaml, first)
  local srv = h.serve("http: {address: 127.0.0.1:$PORT}\n" .. yaml)
  local body
  local ok, err = pcall(function()
    assert.truthy(h.wait_for(function()
      body = ready(srv)
      return body:find('"streams"', 1, true) and not body:find('"' .. first .. '"', 1, true)
    end, 60), body)
    assert.is_nil(body:find('"ready":true', 1, true))
  end)
  h.stop_after(srv, ok, err)
  return body
end

return M
