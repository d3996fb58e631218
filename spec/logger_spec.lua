-- `logger:` (level, logfmt | json, static_fields) and logging from a
-- pipeline: the `log` processor's fields and fields_mapping, and Lua's
-- log(level, message, fields). Every stderr line must parse in its format.
local h = require("spec.helpers")
local json = h.json

-- logfmt: key=value pairs, values bare or double-quoted with \" \\ \n escapes.
local function logfmt(line)
  local t, i, n = {}, 1, #line
  while i <= n do
    while line:sub(i, i) == " " do i = i + 1 end
    if i > n then break end
    local key = line:match("^[^ =\"]+", i)
    assert(key and line:sub(i + #key, i + #key) == "=", "not logfmt at " .. i .. ": " .. line)
    i = i + #key + 1
    local v = {}
    if line:sub(i, i) == '"' then
      i = i + 1
      while true do
        local c = line:sub(i, i)
        assert(c ~= "", "unterminated quote: " .. line)
        if c == "\\" then
          local e = line:sub(i + 1, i + 1)
          v[#v + 1] = e == "n" and "\n" or e
          i = i + 2
        elseif c == '"' then
          i = i + 1
          break
        else
          v[#v + 1] = c
          i = i + 1
        end
      end
      assert(i > n or line:sub(i, i) == " ", "junk after a quoted value: " .. line)
    else
      local bare = line:match("^[^ ]*", i)
      v[1] = bare
      i = i + #bare
    end
    t[key] = table.concat(v)
  end
  return t
end

local CONFIG = [[
logger:
  level: info
  format: FORMAT
  static_fields: {service: orders, env: "prod eu"}
input:
  generate: {count: 3, interval: 0, mapping: 'return {n = i, user = "u" .. i}'}
pipeline:
  processors:
    - label: audit
      log:
        message: 'order ${! this.n }'
        fields: {who: '${! this.user }'}
        fields_mapping: |
          return {size = #content(), tags = {"a", "b"}, quote = 'say "hi"'}
    - lua: |
        log("warn", "from lua", {n = this.n, note = "two words"})
    - log:
        level: debug
        message: hidden
output: {drop: {}}
]]

local function run(format, parse)
  local r = h.run_config((CONFIG:gsub("FORMAT", format)))
  assert.are.equal(0, r.code, r.stderr)
  local lines = {}
  for _, l in ipairs(h.lines(r.stderr)) do lines[#lines + 1] = parse(l) end
  return lines
end

local function check(lines)
  local audit, fromlua = {}, {}
  for _, l in ipairs(lines) do
    assert.are.equal("orders", l.service)
    assert.are.equal("prod eu", l.env)
    assert.is_string(l.time)
    assert.are_not.equal("hidden", l.msg)
    if l.component == "audit" then audit[#audit + 1] = l end
    if l.msg == "from lua" then fromlua[#fromlua + 1] = l end
  end
  assert.are.equal(3, #audit)
  for k, l in ipairs(audit) do
    assert.are.equal("info", l.level)
    assert.are.equal("main", l.stream)
    assert.are.equal("root.pipeline.processors.0", l.path)
    assert.are.equal("order " .. k, l.msg)
    assert.are.equal("u" .. k, l.who)
    assert.are.equal(tostring(#json.encode({n = k, user = "u" .. k})), l.size)
    assert.are.same({"a", "b"}, json.decode(l.tags))
    assert.are.equal('say "hi"', l.quote)
  end
  assert.are.equal(3, #fromlua)
  for k, l in ipairs(fromlua) do
    assert.are.equal("warn", l.level)
    assert.are.equal("main", l.stream)
    assert.are.equal("lua", l.component)
    assert.are.equal(tostring(k), l.n)
    assert.are.equal("two words", l.note)
  end
end

describe("logger", function()
  it("writes JSON lines that cjson parses, with stream, component, static and processor fields", function()
    check(run("json", json.decode))
  end)

  it("writes logfmt lines that parse, with the same fields", function()
    check(run("logfmt", logfmt))
  end)

  it("reports a failing fields_mapping in the line and passes the message on", function()
    local r = h.run_config([[
logger: {format: json}
input:
  generate: {count: 1, interval: 0, mapping: 'return {}'}
pipeline:
  processors:
    - log: {message: m, fields_mapping: 'error("no fields")'}
output: {stdout: {}}
]])
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("{}\n", r.stdout)
    local l = json.decode(h.lines(r.stderr)[1])
    assert.matches(":6: no fields", l.fields_mapping_error, 1, true)
  end)

  it("rejects a bad level from Lua as an error of that message", function()
    local r = h.run_config([[
input:
  generate: {count: 1, interval: 0, mapping: 'return {}'}
pipeline:
  processors:
    - lua: 'log("loud", "x")'
    - lua: 'this.err = error_message()'
output: {stdout: {}}
]])
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("log: level must be", json.decode(r.stdout).err, 1, true)
  end)

  it("lints static_fields and format", function()
    local r = h.run_config("logger: {format: xml, static_fields: [a]}\ninput: {stdin: {}}\noutput: {drop: {}}\n",
      {cmd = "lint"})
    assert.are.equal(1, r.code)
    assert.matches("logger.format", r.stderr, 1, true)
    assert.matches("logger.static_fields", r.stderr, 1, true)
  end)
end)
