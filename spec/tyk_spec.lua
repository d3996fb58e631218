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
