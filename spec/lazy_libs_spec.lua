-- What a start costs: heavy libraries load when a config uses them, not at
-- every start: libcurl (and the 24 libraries it brings) only for HTTP
-- clients, Lua's http and url codecs, metrics push and trace export; and the
-- embedded Lua runtime is bytecode compiled at build time, not source that
-- every start parses.
local h = require("spec.helpers")

local function run(yaml, env)
  local path = h.write(h.tmpname(".yaml"), yaml)
  local code, out, err = h.sh(string.format("%s timeout -k 5 30 %s run --log-level warn %s", env or "", h.bin, path))
  os.remove(path)
  return code, out, err
end

-- Each library loaded on first use (core/lazylibs.txt), an output that uses
-- it (its peer need not be there: creating the client loads the library),
-- and the Debian package named when it cannot be loaded.
local libs = {
  {"libcurl", "libcurl4", "http_client: {url: 'http://127.0.0.1:1/'}"},
  {"librdkafka", "librdkafka1", "kafka: {addresses: ['127.0.0.1:1'], topic: t}"},
  {"libhiredis", "libhiredis0.14", "redis_list: {url: 'redis://127.0.0.1:1', key: k}"},
  {"libnats", "libnats3.4", "nats: {urls: ['nats://127.0.0.1:1'], subject: s}"},
  {"libmosquitto", "libmosquitto1", "mqtt: {urls: ['tcp://127.0.0.1:1'], topic: t}"},
  {"librabbitmq", "librabbitmq4", "amqp_0_9: {urls: ['amqp://guest:guest@127.0.0.1:1/'], exchange: e}"},
  {"libcrypto", "libssl3", "drop: {}", "return hash.sha256('x')"},
  {"libpcre2-8", "libpcre2-8-0", "drop: {}", "return re.match('x', 'x')[0]"},
}
-- a library's name as a Lua pattern ("libpcre2-8"), and its SLUICE_ variable
local function lit(name) return (name:gsub("%p", "%%%0")) end
local function env_of(name) return "SLUICE_" .. name:upper():gsub("%W", "_") end
-- loaded only by what uses them: TLS, JWT auth, WebSocket, the csv and
-- decompress scanners, the streams API's publish, Lua's xxhash and crc32
local unlisted = {"libssl", "libjwt", "libwslay", "libcsv", "libyajl", "libxxhash", "libz%."}

local function config(l)
  return "input: {generate: {count: 1, interval: 0, mapping: \"" .. (l[4] or "return 1") .. "\"}}\noutput: {" .. l[3] .. "}\n"
end

-- Starts sluice on yaml with LD_DEBUG=libs until its stderr reports lib's
-- initialisation (or 30 s), stops it; returns that stderr.
local function loads(yaml, lib)
  local path = h.write(h.tmpname(".yaml"), yaml)
  local errf = h.tmpname(".err")
  local _, out = h.sh(string.format("LD_DEBUG=libs %s run --log-level error %s 2>%s >/dev/null & echo $!", h.bin, path, errf))
  local pid = assert(tonumber(out))
  h.wait_for(function() return (h.read(errf) or ""):find("calling init: [^\n]*" .. lit(lib)) end, 30)
  h.sh("kill -9 " .. pid .. " 2>/dev/null")
  local err = h.read(errf) or ""
  os.remove(path)
  os.remove(errf)
  return err
end

describe("lazily loaded libraries", function()
  it("generate → drop starts without loading any of them", function()
    local code, _, err = run("input: {generate: {count: 1, interval: 0, mapping: 'return 1'}}\noutput: {drop: {}}\n",
      "LD_DEBUG=libs")
    assert.are.equal(0, code, err)
    assert.matches("calling init: [^\n]*libc%.so", err)   -- LD_DEBUG did report the libraries loaded
    for _, l in ipairs(libs) do assert.is_nil(err:find(l[1], 1, true), l[1]) end
    for _, l in ipairs(unlisted) do assert.is_nil(err:match(l), l) end
    -- every start's own libraries are linked in from their static archives
    for _, l in ipairs({"libluajit", "libuv", "libyaml", "libjansson"}) do assert.is_nil(err:find(l, 1, true), l) end
  end)

  it("reports the config's sha256, computed when asked, not at every start", function()
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\ninput: {generate: {interval: 1s, mapping: 'return 1'}}\noutput: {drop: {}}\n")
    local ok, err = pcall(function()
      local _, status = h.sh("curl -s " .. srv.url .. "/admin/status")
      local _, sum = h.sh("sha256sum " .. srv.dir .. "/config.yaml")
      assert.are.equal(sum:match("^%x+"), status:match('"hash":%s*"(%x+)"'))
    end)
    h.stop_after(srv, ok, err)
  end)

  for _, l in ipairs(libs) do
    it("a config with " .. (l[4] and "a script" or "an output") .. " over " .. l[1] .. " loads it, and none of the others", function()
      local err = loads(config(l), l[1])
      assert.matches("calling init: [^\n]*" .. lit(l[1]) .. "%.so", err)
      for _, o in ipairs(libs) do
        -- (some of them link libcurl or OpenSSL themselves)
        if o ~= l and o[1] ~= "libcurl" and o[1] ~= "libcrypto" then assert.is_nil(err:find(o[1], 1, true), o[1]) end
      end
    end)

    it("ends with what to install when a config needs " .. l[1] .. " and it cannot be loaded", function()
      local env = env_of(l[1]) .. "=/nonexistent/" .. l[1] .. ".so"
      local code, out, err = run(config(l), env)
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      assert.matches("this config needs " .. l[1], err, 1, true)
      assert.matches("/nonexistent/" .. l[1] .. ".so", err, 1, true)
      assert.matches("Debian package " .. l[2], err, 1, true)
    end)
  end

  it("loads libcurl when a script first uses it, and the call works", function()
    local code, out, err = run([[
input: {generate: {count: 1, interval: 0, mapping: 'return url.encode("a b/ü")'}}
output: {stdout: {}}
]], "LD_DEBUG=libs")
    assert.are.equal(0, code, err)
    assert.are.equal("a%20b%2F%C3%BC\n", out)
    assert.matches("libcurl%.so", err)
  end)

  it("loads PCRE2 when a script first uses re, in the main VM and in the workers' VMs, and the matches work", function()
    local code, out, err = run([[
input: {generate: {count: 4, interval: 0, mapping: 'return (re.gsub("a1b22", "[0-9]+", "#"))'}}
pipeline:
  threads: 2
  processors:
    - lua: 'return content() .. re.match(content(), "(?<l>[a-z])#$").l'
output: {stdout: {}}
]], "LD_DEBUG=libs")
    assert.are.equal(0, code, err)
    assert.are.equal(string.rep("a#b#b\n", 4), out)
    assert.matches("calling init: [^\n]*libpcre2%-8%.so", err)
  end)

  it("loads PCRE2 for the re_match scanner, which splits as before, and names the package when it cannot", function()
    local path = h.write(h.tmpname(".yaml"), [[
input: {stdin: {scanner: {re_match: {pattern: '(?m)^\d:'}}}}
pipeline:
  processors: [{lua: 'return (content():gsub("\n", "|"))'}]
output: {stdout: {}}
]])
    local cmd = "timeout -k 5 30 " .. h.bin .. " run --log-level warn " .. path
    local code, out, err = h.sh("LD_DEBUG=libs " .. cmd, "1: a\n2: b\nc\n3: d")
    assert.are.equal(0, code, err)
    assert.are.same({"1: a|", "2: b|c|", "3: d"}, h.lines(out))
    assert.matches("calling init: [^\n]*libpcre2%-8%.so", err)
    code, out, err = h.sh("SLUICE_LIBPCRE2_8=/nonexistent/libpcre2-8.so.0 " .. cmd, "1: a\n")
    os.remove(path)
    assert.are.equal(1, code, err)
    assert.are.equal("", out)
    assert.matches("this config needs libpcre2-8 (Lua's re", err, 1, true)
    assert.matches("Debian package libpcre2-8-0", err, 1, true)
  end)

  it("runs a script's http.request to an http:// URL without libcurl (sluice's own HTTP/1.1 client)", function()
    local code, out, err = run([[
input: {generate: {count: 1, interval: 0, mapping: 'return 1'}}
pipeline:
  processors:
    - lua: |
        local r, e = http.get("http://127.0.0.1:1/")
        return {err = e}
output: {stdout: {}}
]], "SLUICE_LIBCURL=/nonexistent/libcurl.so.4")
    assert.are.equal(0, code, err)
    assert.matches("Couldn't connect to server", out, 1, true)
  end)

  it("ends with what to install when a config needs libcurl and it cannot be loaded", function()
    local code, out, err = run([[
input: {generate: {count: 1, interval: 0, mapping: 'return url.encode("x")'}}
output: {stdout: {}}
]], "SLUICE_LIBCURL=/nonexistent/libcurl.so.4")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("this config needs libcurl", err)
    assert.matches("/nonexistent/libcurl.so.4", err, 1, true)
    assert.matches("libcurl4", err, 1, true)
  end)
end)

describe("a start", function()
  it("does not read /proc/self/maps (the main thread's stack is found from its rlimit and AT_EXECFN)", function()
    -- ASan's runtime reads it itself, and LeakSanitizer refuses to run under strace
    if h.bin:find("asan", 1, true) then return end
    local code, _, err = run("input: {generate: {count: 1, interval: 0, mapping: 'return 1'}}\noutput: {drop: {}}\n",
      "strace -f -e trace=openat")
    assert.are.equal(0, code, err)
    assert.matches("openat%([^\n]*cjson", err)   -- strace did report the files opened
    assert.is_nil(err:find("/proc/self/maps", 1, true))
  end)
end)

describe("the embedded Lua runtime", function()
  -- The fullest worker VM's bytes once two messages went through a script.
  local function vm_bytes(processor)
    local srv = h.serve("http: {address: 127.0.0.1:$PORT}\ninput: {generate: {interval: 50ms, mapping: 'return \"{}\"'}}\n" ..
      "pipeline:\n  processors: [" .. processor .. "]\noutput: {drop: {}}\n")
    local bytes
    local ok, err = pcall(function()
      bytes = h.wait_for(function()
        local _, m = h.sh("curl -s " .. srv.url .. "/metrics")
        local sent = tonumber(m:match('\noutput_sent{[^}]*} (%d+)') or 0)
        return sent >= 2 and tonumber(m:match("\nsluice_lua_memory_bytes (%d+)"))
      end, 30)
      assert.truthy(bytes, "no message went through")
    end)
    h.stop_after(srv, ok, err)
    return bytes
  end

  it("holds Bloblang's runtime only in a VM whose scripts use Bloblang (it was a ninth of every start)", function()
    local plain, bloblang = vm_bytes("{lua: 'return content()'}"), vm_bytes("{mapping: 'root = this'}")
    -- 220 kB and 298 kB here; both 306 kB when every VM loaded it
    assert.is_true(bloblang - plain > 40000, plain .. " and " .. bloblang .. " bytes")
  end)

  it("is bytecode: the binary holds none of its source, and its errors still name its lines", function()
    local bin = assert(h.read(h.bin))
    local src = assert(h.read("lua/runtime.lua"))
    -- a comment line of the runtime's source is in a source embed, never in bytecode
    local line = assert(src:match("\n(%-%- [^\n]*per%-message state[^\n]*)\n"))
    assert.is_nil(bin:find(line, 1, true))
    assert.truthy(bin:find("\27LJ", 1, true))
    -- the budget's chunk name and line survive: a runaway loop is placed at the script's line
    local code, out, err = run([[
input: {generate: {count: 1, interval: 0, mapping: 'return 1'}}
pipeline:
  processors:
    - lua:
        code: |

          local function f(n) return f(n + 1) + 1 end
          return f(1)
output: {stdout: {}}
]])
    assert.are.equal(0, code, err)
    -- line 7 (the recursion); a loaded fresh-clone run once gave the chunk's
    -- first line (6), likely the overflow raised inside the watchdog's hook
    -- (lua/guard.c) that a slow run trips: either is a line of this script
    local line = tonumber(err:match("%.yaml:(%d+): stack overflow"))
    assert.is_true(line == 7 or line == 6, err)
  end)
end)
