-- Hot reload of `lua: {file: ...}` modules: a changed file (or a file it
-- requires) is loaded in a fresh environment and takes over between batches;
-- a version that fails to load leaves the running one in place.
local h = require("spec.helpers")

-- A module tagging each message "i tag" with its version's tag. stall: its
-- top level spins 0-25 ms (by where its VM allocates a table), so that the
-- workers' VMs take turns unevenly around a reload.
local function good(tag, stall)
  return string.format([[
local M = {}
local TAG = %q
%s
function M.process(msg)
  msg:set_content(msg:content() .. " " .. TAG)
  return msg
end
return M
]], tag, stall and "local t0, a = time.now(), tonumber(tostring({}):match('%x+$'), 16)\n"
    .. "while time.now() - t0 < math.floor(a / 64) % 26 / 1000 do end" or "")
end

-- Versions that must fail to load, with the line their error names.
local BAD = {
  syntax = {"local M = {}\nlocal x = = 1\nreturn M\n", 2},
  raise = {"local M = {}\n\nerror('refusing to start')\nreturn M\n", 3},
  no_process = {"return {name = 'no process here'}\n", nil},
}

local function wait_for(f, what) return h.wait_for(f, 20) or error("timed out waiting for " .. what, 2) end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

-- Complete lines of the output file as {i, tag} pairs.
local function output(dir)
  local t = {}
  for i, tag in (h.read(dir .. "/out.txt") or ""):gmatch("(%d+) (%S+)\n") do t[#t + 1] = {tonumber(i), tag} end
  return t
end

local function has_tag(dir, tag)
  for _, r in ipairs(output(dir)) do
    if r[2] == tag then return true end
  end
end

-- Replaces the module the way editors and deploy scripts do: in place, or
-- written beside it and renamed over it.
local function rewrite(dir, src, by_rename)
  if by_rename then
    h.write(dir .. "/mod.lua.tmp", src)
    assert(os.rename(dir .. "/mod.lua.tmp", dir .. "/mod.lua"))
  else
    h.write(dir .. "/mod.lua", src)
  end
end

local function metric(srv, name)
  local _, text = h.sh("curl -s -m 5 " .. srv.url .. "/metrics")
  return tonumber(text:match(name .. '{file="[^"]*mod%.lua"} (%d+)'))
end

local function serve(input, opts)
  opts = opts or {}
  return h.serve([[
http:
  address: 127.0.0.1:$PORT
]] .. (opts.head or "") .. [[
input:
  generate: ]] .. input .. [[

pipeline:
]] .. (opts.threads and ("  threads: " .. opts.threads .. "\n") or "") .. [[
  processors:
    - lua: {file: mod.lua}
output:
  file: {path: out.txt}
]], {before = function(dir)
    h.write(dir .. "/mod.lua", good("1"))
    if opts.before then opts.before(dir) end
  end})
end

describe("lua module reload", function()
  it("reload under load: every input exactly once, tagged by one version, tags in order", function()
    local N = 5000
    -- two pool workers: a new version takes over at one batch for both
    -- (every batch handed out after the switch runs it, none before)
    local srv = serve("{count: " .. N .. ", interval: 2ms, mapping: 'return tostring(i)'}", {threads = 2})
    local dir = srv.dir
    -- 20 rewrites: 13 good versions (tags 2..14), 7 that fail to load.
    local plan = {"good", "syntax", "good", "raise", "rename", "good", "no_process", "good", "rename", "raise",
                  "good", "good", "syntax", "good", "good", "raise", "good", "good", "syntax", "good"}
    local tag, failures = 1, 0
    wait_for(function() return has_tag(dir, "1") end, "version 1 output")
    for _, step in ipairs(plan) do
      if step == "good" or step == "rename" then
        tag = tag + 1
        rewrite(dir, good(tostring(tag), true), step == "rename")
        wait_for(function() return has_tag(dir, tostring(tag)) end, "output of version " .. tag)
      else
        rewrite(dir, BAD[step][1])
        failures = failures + 1
        wait_for(function() return count(srv.stderr(), "reload of [^\n]*failed") == failures end,
          "failure " .. failures .. " (" .. step .. ")")
        if BAD[step][2] then
          local lines = {}
          for l in srv.stderr():gmatch("[^\n]*reload of [^\n]*failed[^\n]*") do lines[#lines + 1] = l end
          assert.matches("mod%.lua:" .. BAD[step][2] .. ":", lines[#lines])
        end
      end
    end
    local reloads, errors = metric(srv, "sluice_lua_reloads_total"), metric(srv, "sluice_lua_reload_errors_total")
    local got = wait_for(function()
      local o = output(dir)
      return #o >= N and o
    end, "all " .. N .. " messages")
    local err = srv.stderr()
    assert.are.equal(0, srv.stop())
    assert.are.equal(13, reloads)
    assert.are.equal(7, errors)
    assert.are.equal(N, #got)
    local seen, byi = {}, {}
    for _, r in ipairs(got) do
      assert.is_nil(byi[r[1]], "message " .. r[1] .. " written twice")
      byi[r[1]] = tonumber(r[2])
      seen[r[2]] = true
    end
    for i = 1, N do
      assert.is_not_nil(byi[i], "message " .. i .. " missing")
      if i > 1 then assert.is_true(byi[i] >= byi[i - 1], "tags go back at message " .. i) end
    end
    -- in file order too: a batch is processed by exactly one version
    for k = 2, #got do assert.is_true(tonumber(got[k][2]) >= tonumber(got[k - 1][2])) end
    for t = 1, 14 do assert.is_true(seen[tostring(t)], "version " .. t .. " processed nothing") end
    assert.are.equal(13, count(err, "reloaded [^\n]*mod%.lua: version %d+"))
  end)

  it("keeps the old version after a failed load, counts it, and reloads the next good one", function()
    local srv = serve("{interval: 5ms, mapping: 'return tostring(i)'}")
    local dir = srv.dir
    wait_for(function() return has_tag(dir, "1") end, "version 1 output")
    rewrite(dir, BAD.raise[1])
    wait_for(function() return srv.stderr():find("failed", 1, true) end, "the failure")
    local n = #output(dir)
    wait_for(function() return #output(dir) > n + 20 end, "output after the failure")
    local errors = metric(srv, "sluice_lua_reload_errors_total")
    rewrite(dir, good("2"))
    wait_for(function() return has_tag(dir, "2") end, "version 2 output")
    local reloads = metric(srv, "sluice_lua_reloads_total")
    local err, out = srv.stderr(), output(dir)
    assert.are.equal(0, srv.stop())
    assert.matches('level=error component=lua msg="reload of %./mod%.lua failed, version 1 keeps running: '
      .. '%./mod%.lua:3: refusing to start"', err)
    assert.is_true(#out > n + 20)
    for k = 1, n + 20 do assert.are.equal("1", out[k][2]) end
    assert.are.equal(1, errors)
    assert.are.equal(1, reloads)
  end)

  it("keeps the old version when the file is deleted, and reloads it when it comes back", function()
    local srv = serve("{interval: 5ms, mapping: 'return tostring(i)'}")
    local dir = srv.dir
    wait_for(function() return has_tag(dir, "1") end, "version 1 output")
    os.remove(dir .. "/mod.lua")
    wait_for(function() return srv.stderr():find("failed", 1, true) end, "the deletion logged")
    local n = #output(dir)
    wait_for(function() return #output(dir) > n + 20 end, "output after the deletion")
    rewrite(dir, good("2"))
    wait_for(function() return has_tag(dir, "2") end, "version 2 output")
    local err, out = srv.stderr(), output(dir)
    assert.are.equal(0, srv.stop())
    assert.matches("reload of %./mod%.lua failed, version 1 keeps running: %./mod%.lua: No such file", err)
    assert.is_true(#out > n + 20)
    for k = 1, n + 20 do assert.are.equal("1", out[k][2]) end
  end)

  it("reloads when a module it requires from lua_path changes (at load or later), with fresh state", function()
    -- one VM: with pipeline.threads each worker's instance has its own "first"
    local srv = serve("{interval: 5ms, mapping: 'return tostring(i)'}", {
      threads = 1,
      head = "lua:\n  lua_path: [lib]\n",
      before = function(dir)
        os.execute("mkdir -p " .. dir .. "/lib")
        h.write(dir .. "/lib/tagger.lua", "return {tag = 'a'}\n")
        h.write(dir .. "/lib/late.lua", "return {n = 1}\n")
        -- the top level loops (under the step budget) and keeps state;
        -- `late` is required only once messages flow
        h.write(dir .. "/mod.lua", [[
local tagger = require("tagger")
local seen = 0
for _ = 1, 100 do seen = seen + 0 end
return {process = function(msg)
  seen = seen + 1
  local tag = tagger.tag .. require("late").n .. (seen == 1 and "-first" or "")
  msg:set_content(msg:content() .. " " .. tag)
  return msg
end}
]])
      end})
    local dir = srv.dir
    wait_for(function() return has_tag(dir, "a1") end, "output tagged a1")
    h.write(dir .. "/lib/tagger.lua", "return {tag = 'b'}\n")
    wait_for(function() return has_tag(dir, "b1") end, "output tagged b1")
    h.write(dir .. "/lib/late.lua", "return {n = 2}\n")
    wait_for(function() return has_tag(dir, "b2") end, "output tagged b2")
    local err, out = srv.stderr(), output(dir)
    assert.are.equal(0, srv.stop())
    assert.matches("reloaded %./mod%.lua: version 3", err)
    local firsts = {}
    for _, r in ipairs(out) do
      if r[2]:find("-first", 1, true) then firsts[#firsts + 1] = r[2] end
    end
    assert.are.same({"a1-first", "b1-first", "b2-first"}, firsts)
  end)
end)
