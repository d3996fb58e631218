-- The README's "Tyk's own example" commands (seed 000: the demo under the
-- listen path /stream-demo/; the quickstart's API key where Tyk's demo has
-- ?user=), run as the README prints them: only the port (8282 there) and the
-- binary's path differ. curl runs the curl lines; the wscat line's URL is
-- opened with npm `ws`.
local h = require("spec.helpers")
local json = h.json

-- The README's code blocks after the paragraph that introduces the demo.
local function readme_commands()
  local text = h.read("README.md")
  local at = assert(text:find("Tyk's own example serves the demo", 1, true), "the README lost its Tyk paragraph")
  local blocks = {}
  for block in text:sub(at):gmatch("```sh\n(.-)```") do
    blocks[#blocks + 1] = block
    if #blocks == 2 then break end
  end
  return blocks[1], blocks[2]
end

describe("README: Tyk's demo under /stream-demo/ (http.base_path)", function()
  it("answers the seed's commands there, and nothing outside it", function()
    local server, client = readme_commands()
    local port = tostring(h.port())
    local dir = h.tmpdir()
    local cmd = server:gsub("\n$", ""):gsub("8282", port):gsub("build/sluice", h.abs_bin)
      :gsub("examples/", os.getenv("PWD") .. "/examples/")
    os.execute(string.format("cd %s && (%s > out.txt 2> err.txt & echo $! > pid.txt; wait $!; echo $? > rc.txt) &",
      h.shell_quote(dir), cmd))
    -- SIGTERM; the exit status and stderr (sanitizer reports) once it is gone
    local function stop()
      os.execute("kill $(cat " .. dir .. "/pid.txt) 2>/dev/null")
      h.wait_for(function() return h.read(dir .. "/rc.txt") end, 30)
      return tonumber(h.read(dir .. "/rc.txt")), h.read(dir .. "/err.txt") or ""
    end
    finally(function()
      stop()
      h.rmdir(dir)
    end)
    assert.truthy(h.wait_for(function()
      return h.sh("curl -s -f -o /dev/null http://127.0.0.1:" .. port .. "/stream-demo/ping") == 0
    end, 10), h.read(dir .. "/err.txt"))
    -- each command of the README's second block, one by one
    local lines, cmds = h.lines(client), {}
    for _, l in ipairs(lines) do
      if #cmds > 0 and cmds[#cmds]:match("\\$") then cmds[#cmds] = cmds[#cmds] .. "\n" .. l
      else cmds[#cmds + 1] = l end
    end
    assert.are.equal(3, #cmds, client)
    local _, pushed = h.sh(cmds[1]:gsub("8282", port) .. " -s")
    local p = json.decode(pushed)
    assert.are.same({"hello world", "alice"}, {p.message, p.user_id})
    local _, got = h.sh(cmds[2]:gsub("8282", port) .. " -s -m 10")
    local r = json.decode(got)
    assert.are.same({"hello world", "alice", "bar", p.job_id}, {r.message, r.user_id, r.result, r.job_id})
    -- wscat's URL: alice's next result arrives on the WebSocket
    local url = cmds[3]:match("wscat %-c (%S+)"):gsub("[\\\"]", ""):gsub("^http", "ws"):gsub("8282", port)
    -- (round_robin: the result waits for alice's next client if the socket is not open yet)
    local ws = io.popen("node spec/node/clients.js ws '" .. url .. "' 1")
    h.sh(cmds[1]:gsub("8282", port):gsub("hello world", "again") .. " -s")
    local msg = json.decode(json.decode(ws:read("a")).text)
    ws:close()
    assert.are.same({"again", "alice", "bar"}, {msg.message, msg.user_id, msg.result})
    -- the listen path is the only way in
    assert.are.equal(0, h.sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" .. port ..
      "/push-event?user=alice | grep -qx 404"))
    local rc, err = stop()
    assert.are.equal(0, rc, err)
    assert.is_nil(err:find("Sanitizer", 1, true) or err:find("runtime error:", 1, true), err)
  end)
end)

-- Tyk keeps stream definitions in OpenAPI documents (seed 000's "Full OpenAPI
-- definition"): the same document is a sluice config.
describe("a Tyk API definition (OpenAPI with x-tyk-streaming) as a config", function()
  local function doc(extra)
    return [[
info:
  title: streams-demo
  version: 1.0.0
openapi: 3.0.3
servers:
  - url: http://tyk-gateway:8282/from-servers/
http: {address: 127.0.0.1:$PORT}
x-tyk-streaming:
  streams:
    in:
      input:
        http_server:
          path: /push-event
      output:
        sync_response: {}
      pipeline:
        processors:
          - lua: |
              this.user_id = ctx.query.user
security: []
paths: {}
components:
  securitySchemes: {}
]] .. (extra or "")
  end
  local gateway = [[
x-tyk-api-gateway:
  info: {name: stream-demo, state: {active: true}}
  server:
    listenPath: {strip: true, value: /stream-demo/}
]]

  local function post(url)
    local _, out = h.sh("curl -s -m 10 -w ' %{http_code}' -d '{\"message\":\"hello\"}' '" .. url .. "'")
    return out
  end

  it("serves x-tyk-streaming's streams under the gateway's listen path, else the servers URL's path", function()
    local srv = h.serve(doc(gateway))
    local ok, err = pcall(function()
      assert.are.equal('{"message":"hello","user_id":"alice"} 200', post(srv.url .. "/stream-demo/push-event?user=alice"))
      assert.matches(" 404$", post(srv.url .. "/push-event?user=alice"))
      assert.matches(" 404$", post(srv.url .. "/from-servers/push-event?user=alice"))
    end)
    h.stop_after(srv, ok, err)
    srv = h.serve(doc())
    ok, err = pcall(function()
      assert.are.equal('{"message":"hello","user_id":"bob"} 200', post(srv.url .. "/from-servers/push-event?user=bob"))
      assert.matches(" 404$", post(srv.url .. "/push-event?user=bob"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("lints the seed's document as Tyk's users keep it: its three streams, their Bloblang translated", function()
    local r = h.sluice("lint examples/tyk-streams-demo/streams-demo.yaml")
    assert.are.equal(0, r.code, r.stdout .. r.stderr)
    -- the streams are read (a typo in one is found at its line)
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    local doc = h.read("examples/tyk-streams-demo/streams-demo.yaml")
    local f = h.write(dir .. "/d.yaml", (doc:gsub("consumer_group: worker", "consumer_grop: worker")))
    r = h.sluice("lint " .. f)
    assert.are.equal(1, r.code)
    assert.matches("d.yaml:14:11: streams.Worker.input.kafka.consumer_grop: unknown field", r.stdout .. r.stderr, 1, true)
  end)

  it("refuses what a Tyk definition cannot hold, at its line", function()
    local dir = h.tmpdir()
    finally(function() h.rmdir(dir) end)
    local f = h.write(dir .. "/both.yaml", (doc():gsub("%$PORT", "4195")) .. "streams: {}\n")
    local r = h.sluice("lint " .. f)
    assert.are.equal(1, r.code)
    assert.matches("both.yaml:%d+:%d+: x%-tyk%-streaming: a file holds either `x%-tyk%-streaming`", r.stdout .. r.stderr)
    f = h.write(dir .. "/extra.yaml", (doc():gsub("%$PORT", "4195"):gsub("  streams:\n", "  stream:\n    a: 1\n  streams:\n", 1)))
    r = h.sluice("lint " .. f)
    assert.are.equal(1, r.code)
    assert.matches("extra.yaml:9:3: x%-tyk%-streaming%.stream: unknown field", r.stdout .. r.stderr)
    f = h.write(dir .. "/none.yaml", "openapi: 3.0.3\nx-tyk-streaming: {streams: [1]}\n")
    r = h.sluice("lint " .. f)
    assert.are.equal(1, r.code)
    assert.matches("none.yaml:2:28: x%-tyk%-streaming%.streams: expected a map of named streams", r.stdout .. r.stderr)
  end)
end)
