-- The Lua API's one source (lua/api.lua) and what is made from it: the
-- check against the sandbox, markdown, lua-language-server definitions, JSON.
local h = require("spec.helpers")
local json = h.json

local function api_and_doc()
  local api = assert(loadfile("lua/api.lua"))()
  local doc = assert(loadfile("lua/apidoc.lua"))(api)
  return api, doc
end

describe("sluice doc lua", function()
  it("lists exactly the globals and module functions the sandbox exposes", function()
    local r = h.sluice("doc lua --check")
    assert.are.equal("", r.stderr)
    assert.are.equal(0, r.code)
  end)

  it("the check names what is exposed but undocumented, and documented but not exposed", function()
    local api, doc = api_and_doc()
    -- what the sandbox would list if it matched: every documented name
    local names = {"this", "meta", "ctx", "i"}
    for _, b in ipairs(api.base) do names[#names + 1] = b end
    for _, n in ipairs(api.internal) do names[#names + 1] = n .. "." end
    for _, g in ipairs(api.globals) do
      if g.kind == "module" then
        names[#names + 1] = g.name .. "."
        for _, f in ipairs(g.fields) do names[#names + 1] = g.name .. "." .. f.name end
      elseif g.kind == "lua" then
        names[#names + 1] = g.name .. "."
        names[#names + 1] = g.name .. ".anything"
      elseif g.name ~= "this" and g.name ~= "meta" and g.name ~= "ctx" and g.name ~= "i" then
        names[#names + 1] = g.name
      end
    end
    assert.are.equal("", doc.check(table.concat(names, "\n")))
    local extra = table.concat(names, "\n") .. "\nnothere.\nnothere.call\nsecret_global"
    local d = doc.check(extra)
    assert.matches("exposed by the sandbox but not in lua/api.lua: nothere%., nothere%.call, secret_global", d)
    local fewer = table.concat(names, "\n"):gsub("\nhex%.decode\n", "\n")
    assert.matches("in lua/api.lua but not exposed by the sandbox: hex%.decode", doc.check(fewer))
  end)

  it("prints a markdown reference with every global and module function", function()
    local api = api_and_doc()
    local r = h.sluice("doc lua --format md")
    assert.are.equal(0, r.code)
    assert.matches("^# Lua API\n", r.stdout)
    for _, g in ipairs(api.globals) do
      assert.truthy(r.stdout:find("`" .. g.name, 1, true), g.name)
      for _, f in ipairs(g.fields or {}) do
        assert.truthy(r.stdout:find("`" .. g.name .. "." .. f.name, 1, true), g.name .. "." .. f.name)
      end
    end
    assert.truthy(r.stdout:find("- `hash.hmac(algorithm, key, s, out?) → string`", 1, true))
    -- the processor's page is followed by the API its scripts see
    local p = h.sluice("doc lua")
    assert.are.equal(0, p.code)
    assert.matches("^# lua %(processor%)", p.stdout)
    assert.truthy(p.stdout:find("\n# Lua API\n", 1, true))
    -- make docs' copy is the one the binary prints
    assert.are.equal(r.stdout, h.read("docs/components/lua-api.md"))
  end)

  it("writes lua-language-server definitions that are valid Lua and declare every type they use", function()
    local dir = h.tmpdir()
    local r = h.sluice("doc lua --format luals --out " .. dir)
    assert.are.equal(0, r.code)
    local text = h.read(dir .. "/sluice.lua")
    h.rmdir(dir)
    assert.matches("^%-%-%-@meta sluice\n", text)
    -- run, the file defines every module function of the API as a global's field
    local chunk = assert(loadstring(text, "sluice.lua"))
    local env = {}
    setfenv(chunk, env)()
    local api = api_and_doc()
    for _, g in ipairs(api.globals) do
      if g.kind == "function" then assert.is_function(env[g.name], g.name) end
      for _, f in ipairs(g.kind == "module" and g.fields or {}) do
        if f.kind == "function" then assert.is_function(env[g.name][f.name], g.name .. "." .. f.name) end
      end
    end
    local classes = {}
    for c in text:gmatch("%-%-%-@class ([%w%._]+)") do classes[c] = true end
    for ty in text:gmatch("(sluice%.[%w%._]*[%w_])") do
      if not ty:match("^sluice%.lua") then assert.truthy(classes[ty], "undeclared type " .. ty) end
    end
    -- each function's @param lines name its parameters, in order
    local n, documented = 0, {}
    for line in text:gmatch("(.-)\n") do
      local p = line:match("^%-%-%-@param ([%w_]+)") or line:match("^%-%-%-@param (%.%.%.)")
      local name, params = line:match("^function ([%w_%.:]+)%(([^)]*)%)")
      if p then documented[#documented + 1] = p
      elseif name then
        n = n + 1
        assert.are.equal((params:gsub(" ", "")), table.concat(documented, ","), name)
        documented = {}
      elseif not line:match("^%-%-%-") then documented = {} end
    end
    for _, g in ipairs({"function json.encode(v) end", "function content() end", "json.null = nil",
      "---@type sluice.meta\nmeta = nil", "function __sluice_message:set_json(v) end",
      "---@param req sluice.http.request"}) do
      assert.truthy(text:find(g, 1, true), g)
    end
    assert.is_true(n > 60)
    -- with a path that is not a directory, that file
    local f = h.tmpname(".lua")
    assert.are.equal(0, h.sluice("doc lua --format luals --out " .. f).code)
    assert.are.equal(text, h.read(f))
    os.remove(f)
  end)

  it("gives the console its completions as JSON", function()
    local r = h.sluice("doc lua --format json")
    assert.are.equal(0, r.code)
    local d = json.decode(r.stdout)
    local by = {}
    for _, c in ipairs(d.completions) do by[c.label] = c end
    assert.are.equal("function", by["re.gsub"].kind)
    assert.matches("^re%.gsub%(s, pattern, replacement", by["re.gsub"].detail)
    assert.are.equal("variable", by["this"].kind)
    assert.are.equal("namespace", by["http"].kind)
    assert.is_table(by["pcall"])
    assert.is_table(d.api.classes)
  end)

  it("refuses an unknown format", function()
    local r = h.sluice("doc lua --format yaml")
    assert.are.equal(2, r.code)
    assert.matches('unknown format "yaml"', r.stderr)
  end)
end)
