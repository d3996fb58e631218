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

describe("lazily loaded libraries", function()
  it("generate → drop starts without loading libcurl", function()
    local code, _, err = run("input: {generate: {count: 1, interval: 0, mapping: 'return 1'}}\noutput: {drop: {}}\n",
      "LD_DEBUG=libs")
    assert.are.equal(0, code, err)
    assert.matches("calling init: [^\n]*libuv", err)   -- LD_DEBUG did report the libraries loaded
    assert.is_nil(err:match("libcurl"))
  end)

  it("loads libcurl when a script first uses it, and the call works", function()
    local code, out, err = run([[
input: {generate: {count: 1, interval: 0, mapping: 'return url.encode("a b/ü")'}}
output: {stdout: {}}
]], "LD_DEBUG=libs")
    assert.are.equal(0, code, err)
    assert.are.equal("a%20b%2F%C3%BC\n", out)
    assert.matches("libcurl%.so", err)
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

describe("the embedded Lua runtime", function()
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
    assert.matches("%.yaml:7: stack overflow", err)
  end)
end)
