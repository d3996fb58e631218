-- The kafka input and output on Benthos's shared `batching` policy (count,
-- byte_size, period, check, processors) against a real broker: the input
-- forms its batches per partition, each one transaction whose offsets are
-- committed once it is delivered; the output's batches are acknowledged whole.
local h = require("spec.helpers")
local kafka = require("spec.kafka_helpers")
local json = h.json

local function kcat(k, args, stdin)
  local f = stdin and h.write(h.tmpdir() .. "/in.txt", stdin)
  local code, out, err = h.sh("timeout 30 kcat -b " .. k.addr .. " " .. args .. (f and (" -l " .. f) or ""))
  assert.are.equal(0, code, err)
  return out
end

-- A Lua module that writes each message as "batch size|partition|content".
local function sizes_module(dir)
  return h.write(dir .. "/bsize.lua", [[
return {process_batch = function(batch)
  for _, m in ipairs(batch) do
    m:set_content(#batch .. "|" .. (m:metadata().kafka_partition or "") .. "|" .. m:content())
  end
end}
]])
end

-- sluice consuming topic in group with batching (YAML flow text) to stdout.
local function consume(k, dir, topic, group, batching)
  return h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  kafka:
    addresses: []] .. k.addr .. [[]
    topics: []] .. topic .. [[]
    consumer_group: ]] .. group .. "\n" .. (batching and ("    batching: " .. batching .. "\n") or "") .. [[
    commit_period: 100ms
pipeline:
  processors: [{lua: {file: ]] .. dir .. [[/bsize.lua}}]
output: {stdout: {}}
]])
end

local function wait_lines(srv, n)
  assert.truthy(h.wait_for(function() return #h.lines(srv.stdout()) >= n end, 60),
    "wanted " .. n .. " lines, got: " .. srv.stdout() .. srv.stderr())
  return h.lines(srv.stdout())
end

-- "size|partition|content" lines as {size, partition, content}, sorted by content.
local function parse(lines)
  local out = {}
  for _, l in ipairs(lines) do
    local size, p, c = l:match("^(%d+)|(%d*)|(.*)$")
    out[#out + 1] = {tonumber(size), p, c}
  end
  table.sort(out, function(a, b) return a[3] < b[3] end)
  return out
end

local why = kafka.unavailable()
local describe_kafka = why and pending or describe

describe_kafka("kafka batching on a real broker" .. (why and (": " .. why) or ""), function()
  local k, dir
  setup(function()
    k = kafka.start()
    dir = h.tmpdir()
    sizes_module(dir)
  end)
  teardown(function()
    if k then k.stop() end
    h.rmdir(dir)
  end)

  it("the input forms batches by count per partition; only delivered batches are committed", function()
    local _, cache = h.sh(kafka.script .. " path")
    local code, _, err = h.sh(string.format("timeout 60 java -cp %s org.apache.kafka.tools.TopicCommand " ..
      "--bootstrap-server %s --create --topic bc --partitions 2 --replication-factor 1",
      h.shell_quote(cache:gsub("%s+$", "") .. "/libs/*"), k.addr))
    assert.are.equal(0, code, err)
    local a, b = {}, {}
    for i = 1, 10 do a[i] = "a" .. string.format("%02d", i) end
    for i = 1, 7 do b[i] = "b" .. string.format("%02d", i) end
    kcat(k, "-P -t bc -p 0", table.concat(a, "\n") .. "\n")
    kcat(k, "-P -t bc -p 1", table.concat(b, "\n") .. "\n")
    local srv = consume(k, dir, "bc", "gc", "{count: 4}")
    local ok, e = pcall(function()
      local got = parse(wait_lines(srv, 12))
      -- a01..a08 in two batches of partition 0, b01..b04 in one of partition 1
      assert.are.equal(12, #got)
      for i, g in ipairs(got) do
        assert.are.equal(4, g[1], g[3])
        assert.are.equal(i <= 8 and "0" or "1", g[2], g[3])
        assert.are.equal(i <= 8 and a[i] or b[i - 8], g[3])
      end
      -- the rest (a09, a10, b05..b07) is held: no fourth batch comes, however long
      -- it waits for one that the commits below also show never went
    end)
    h.stop_after(srv, ok, e)
    -- the held messages were not committed: the group's next member reads just them
    srv = consume(k, dir, "bc", "gc", nil)
    ok, e = pcall(function()
      local got = parse(wait_lines(srv, 5))
      local contents = {}
      for _, g in ipairs(got) do contents[#contents + 1] = g[3] end
      assert.are.same({"a09", "a10", "b05", "b06", "b07"}, contents)
    end)
    h.stop_after(srv, ok, e)
  end)

  it("the input forms batches by byte_size, by check, and by period", function()
    kcat(k, "-P -t bs", "aaaa\nbb\ncc\ndddddddd\ne\n")
    local srv = consume(k, dir, "bs", "gs", "{byte_size: 6}")
    local ok, e = pcall(function()
      assert.are.same({"2|0|aaaa", "2|0|bb", "2|0|cc", "2|0|dddddddd"}, wait_lines(srv, 4))
    end)
    h.stop_after(srv, ok, e)
    kcat(k, "-P -t bk", '{"n":1}\n{"n":2,"last":true}\n{"n":3}\n{"n":4}\n{"n":5,"last":true}\n{"n":6}\n')
    srv = consume(k, dir, "bk", "gk", "{check: 'this.last == true'}")
    ok, e = pcall(function()
      local sizes = {}
      for _, l in ipairs(wait_lines(srv, 5)) do sizes[#sizes + 1] = l:match("^%d+") end
      assert.are.same({"2", "2", "3", "3", "3"}, sizes)
    end)
    h.stop_after(srv, ok, e)
    kcat(k, "-P -t bp", "x\ny\nz\n")
    srv = consume(k, dir, "bp", "gp", "{count: 1000, period: 300ms, processors: [{lua: {code: 'return \"p\" .. content()'}}]}")
    ok, e = pcall(function()
      -- the policy's processors run on the formed batch, before the pipeline's
      assert.are.same({"3|0|px", "3|0|py", "3|0|pz"}, wait_lines(srv, 3))
    end)
    h.stop_after(srv, ok, e)
  end)

  it("the output writes the batches its policy forms, each acknowledged once all of it is delivered", function()
    local r = h.run_config([[
input: {generate: {count: 10, interval: 0, batch_size: 1, mapping: 'return {n = i}'}}
output:
  kafka:
    addresses: []] .. k.addr .. [[]
    topic: ob
    max_in_flight: 1
    batching:
      count: 4
      processors: [{lua: {file: ]] .. dir .. [[/bsize.lua}}]
]])
    assert.are.equal(0, r.code, r.stderr)
    local sizes = {}
    for _, l in ipairs(h.lines(kcat(k, "-C -t ob -e -q"))) do sizes[#sizes + 1] = l:match("^%d+") end
    -- two batches of 4, and the last 2 passed on at the end of the input
    assert.are.same({"4", "4", "4", "4", "4", "4", "4", "4", "2", "2"}, sizes)
    -- a request whose message waits in the output's batch is answered only
    -- once the batch it completes with a second one is delivered
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
input:
  http_server: {path: /in, timeout: 60s}
output:
  kafka:
    addresses: []] .. k.addr .. [[]
    topic: oa
    batching: {count: 2}
]])
    local ok, e = pcall(function()
      local out1 = srv.dir .. "/post1.txt"
      os.execute(string.format("curl -s -m 60 -o /dev/null -w '%%{http_code}' -d one %s/in > %s 2>&1 &", srv.url, out1))
      assert.truthy(h.wait_for(function()
        local _, m = h.sh("curl -s " .. srv.url .. "/metrics")
        return m:find('input_received{stream="main",label="http_server",path="root.input"} 1', 1, true)
      end, 30))
      assert.are.equal("", h.read(out1) or "")
      local _, early = h.sh("timeout 30 kcat -b " .. k.addr .. " -C -t oa -e -q 2>/dev/null")
      assert.are.equal("", early)
      local _, status = h.sh(string.format("curl -s -m 60 -o /dev/null -w '%%{http_code}' -d two %s/in", srv.url))
      assert.are.equal("200", status)
      assert.are.equal("200", h.wait_for(function() return h.read(out1) ~= "" and h.read(out1) end, 30))
      assert.are.same({"one", "two"}, h.lines(kcat(k, "-C -t oa -e -q")))
    end)
    h.stop_after(srv, ok, e)
  end)
end)
