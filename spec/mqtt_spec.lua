-- The mqtt input and output against Debian's Mosquitto broker (one per
-- file, spec/mqtt_helpers.lua), with mosquitto_pub and mosquitto_sub as the
-- peers: QoS levels, wildcards, retained messages, the will, MQTT 5 user
-- properties, persistent sessions across kill -9 of sluice and a broker
-- restart, a broker absent at start, and payloads that attack.
local h = require("spec.helpers")
local mq = require("spec.mqtt_helpers")

local function ready(srv)
  local _, out = h.sh("curl -s -m 2 " .. srv.url .. "/ready")
  return out or ""
end

local function metric(srv, name)
  local _, out = h.sh("curl -s -m 2 " .. srv.url .. "/metrics")
  local v = (out or ""):match(name .. "{[^}]*} (%d+)")
  return tonumber(v or 0)
end

-- The data: lines an SSE client (curl) gets within secs seconds.
local function sse(srv, path, secs)
  local _, out = h.sh(string.format("curl -s -N -m %d '%s%s'", secs or 2, srv.url, path))
  local got = {}
  for l in (out or ""):gmatch("data: ?([^\n]*)") do got[#got + 1] = l end
  return got
end

-- Collects distinct SSE payloads until want of them came (bounded).
local function sse_collect(srv, path, want)
  local seen, n = {}, 0
  for _ = 1, 10 do
    for _, d in ipairs(sse(srv, path, 2)) do
      if not seen[d] then seen[d] = true n = n + 1 end
    end
    if n >= want then break end
  end
  return seen, n
end

describe("mqtt", function()
  local b
  setup(function() b = mq.start() end)
  teardown(function() if b then b.stop() end end)

  it("refuses a bad URL, a bad topic filter and a persistent session without a client_id, naming the key", function()
    local r = h.run_config([[
input:
  mqtt:
    urls: [http://127.0.0.1:1]
    topics: ["a/#/b"]
    clean_session: false
output:
  drop: {}
]], {cmd = "lint"})
    assert.are_not.equal(0, r.code)
    assert.matches(":3:12: urls: not a broker URL", r.stderr, 1, true)
    assert.matches("not a valid MQTT topic filter: a/#/b", r.stderr, 1, true)
    assert.matches("needs a client_id", r.stderr, 1, true)
  end)

  it("receives QoS 0, 1 and 2 messages from wildcard subscriptions, with Benthos' metadata and retained ones", function()
    assert.equal(0, b.pub("-t deep/retained -r -q 1 -m kept"))
    local srv = h.serve(([[
http: {address: 127.0.0.1:$PORT}
input:
  mqtt:
    urls: [URL]
    topics: [w/+/x, deep/#]
    qos: 2
pipeline:
  processors:
    - lua: 'return meta.mqtt_topic .. "|" .. meta.mqtt_qos .. "|" .. meta.mqtt_retained .. "|" .. content()'
output:
  file: {path: out.txt}
]]):gsub("URL", b.url), nil)
    local ok, err = pcall(function()
      local lines = h.wait_lines(srv.dir .. "/out.txt", 1)
      assert.same({"deep/retained|1|true|kept"}, lines)
      assert.matches('"ready":true', ready(srv), 1, true)
      for q = 0, 2 do assert.equal(0, b.pub("-q " .. q .. " -t w/a/x -m q" .. q)) end
      assert.equal(0, b.pub("-q 1 -t w/a/y -m nomatch"))
      assert.equal(0, b.pub("-q 2 -t deep/1/2/3 -m deep"))
      lines = h.wait_lines(srv.dir .. "/out.txt", 5)
      assert.same({"deep/retained|1|true|kept", "w/a/x|0|false|q0", "w/a/x|1|false|q1", "w/a/x|2|false|q2",
                   "deep/1/2/3|2|false|deep"}, lines)
      assert.equal(1, metric(srv, "input_connection_up"))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("publishes at QoS 0, 1 and 2 to a topic per message, retained, acknowledged by the broker", function()
    for q = 0, 2 do
      local r = h.run_config(([[
input:
  generate: {count: 3, interval: 0s, mapping: 'return {n = i}'}
pipeline:
  processors:
    - lua: 'meta.kind = "k" .. this.n'
output:
  mqtt:
    urls: [URL]
    topic: 'pub/Q/${! meta.kind }'
    qos: Q
    retained: true
]]):gsub("URL", b.url):gsub("Q", tostring(q)), nil)
      assert.equal(0, r.code, r.stderr)
      -- retained: a subscriber that comes later gets the last one of each topic
      local out = b.sub("-t 'pub/" .. q .. "/#' -C 3 -W 10 -F '%r %t %p'")
      local got = h.lines(out)
      table.sort(got)
      assert.same({"1 pub/" .. q .. "/k1 {\"n\":1}", "1 pub/" .. q .. "/k2 {\"n\":2}", "1 pub/" .. q .. "/k3 {\"n\":3}"}, got)
    end
  end)

  it("carries MQTT 5 user properties in as metadata and metadata out as user properties", function()
    local srv = h.serve(([[
http: {address: 127.0.0.1:$PORT}
input:
  mqtt:
    urls: [URL]
    topics: [v5in]
    protocol_version: "5"
pipeline:
  processors:
    - lua: 'meta.seen = meta.region; meta.mqtt_qos = nil'
output:
  mqtt:
    urls: [URL]
    topic: v5out
    protocol_version: "5"
]]):gsub("URL", b.url), nil)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end))
      -- a persistent session for the subscriber, so that nothing is missed
      b.sub("-V 5 -i v5sub -c -q 1 -t v5out -E")
      assert.equal(0, b.pub("-V 5 -q 1 -t v5in -m hi -D publish user-property region eu-west"))
      local out = b.sub("-V 5 -i v5sub -c -q 1 -t v5out -C 1 -W 10 -F '%p %P'")
      assert.matches("^hi ", out)
      assert.matches("region:eu%-west", out)
      assert.matches("seen:eu%-west", out)
      assert.is_nil(out:find("mqtt_", 1, true))
    end)
    h.stop_after(srv, ok, err)
  end)

  local HOLD = [[
http: {address: 127.0.0.1:$PORT}
input:
  mqtt:
    urls: [URL]
    topics: [held/#]
    client_id: CID
    clean_session: false
    qos: 1
output:
  http_server: {sse_path: /sse, delivery: round_robin}   # waits for a client: read, not acknowledged
]]

  it("kill -9 at QoS 1 with a persistent session: what the pipeline did not acknowledge comes again", function()
    local yaml = HOLD:gsub("URL", b.url):gsub("CID", "killed")
    local srv = h.serve(yaml)
    assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end))
    for i = 1, 5 do assert.equal(0, b.pub("-q 1 -t held/" .. i .. " -m m" .. i)) end
    -- in the pipeline, waiting for an SSE client: read, not acknowledged
    assert.truthy(h.wait_for(function() return metric(srv, "input_received") == 5 end, 20))
    srv.kill()
    srv = h.serve(yaml, {port = srv.port, dir = srv.dir})
    local ok, err = pcall(function()
      local seen, n = sse_collect(srv, "/sse", 5)
      assert.equal(5, n)
      for i = 1, 5 do assert.truthy(seen["m" .. i]) end
    end)
    h.stop_after(srv, ok, err)
  end)

  -- 1,000 messages queued for a persistent session, drained through a slow
  -- pipeline, sluice killed (-9) a tenth of the way: every one is written,
  -- the ones written and not yet acknowledged to the broker twice: the
  -- input's max_in_flight (20), plus acknowledgements sent that the broker
  -- had not read (kill -9 resets a connection with unread data, and the
  -- broker drops them: 49 seen at load 12), so 3 x 20 with the margin.
  -- Mosquitto 2.0.11 sends far more than its own window: 78-230 came twice
  -- before the input kept one of its own.
  it("kill -9 mid-flow at QoS 1: nothing lost, what was in the pipeline comes again", function()
    local N, cid = 1000, "k9q1"
    b.sub("-i " .. cid .. " -c -q 1 -t kq1 -E")   -- the session, offline
    local r = h.run_config(([[
input: {generate: {count: N, interval: 0s, mapping: 'return tostring(i)'}}
output: {mqtt: {urls: [URL], topic: kq1, qos: 1}}
]]):gsub("URL", b.url):gsub("N", tostring(N)), nil)
    assert.equal(0, r.code, r.stderr)   -- every one acknowledged by the broker
    local yaml = ([[
http: {address: 127.0.0.1:$PORT}
input: {mqtt: {urls: [URL], topics: [kq1], client_id: CID, clean_session: false, qos: 1, max_in_flight: 20}}
pipeline: {processors: [{rate_limit: {count: 50, interval: 100ms}}]}
output: {file: {path: OUT}}
]]):gsub("URL", b.url):gsub("CID", cid)
    local srv = h.serve((yaml:gsub("OUT", "before.txt")))
    h.wait_lines(srv.dir .. "/before.txt", 100, 60)
    srv.kill()
    local first = h.lines(h.read(srv.dir .. "/before.txt") or "")
    assert.is_true(#first >= 100 and #first < N, "killed mid-flow: " .. #first .. " of " .. N .. " written")
    srv = h.serve((yaml:gsub("OUT", "after.txt")), {port = srv.port, dir = srv.dir})
    local ok, err = pcall(function()
      -- the broker keeps the session's order: once "end" is written, every
      -- earlier message was
      assert.equal(0, b.pub("-q 1 -t kq1 -m end"))
      local got = {}
      h.wait_for(function()
        got = h.lines(h.read(srv.dir .. "/after.txt") or "")
        return got[#got] == "end"
      end, 120)
      assert.equal("end", got[#got])
      got[#got] = nil
      local count, dups = {}, 0
      for _, l in ipairs(first) do count[l] = (count[l] or 0) + 1 end
      for _, l in ipairs(got) do count[l] = (count[l] or 0) + 1 end
      for i = 1, N do
        local c = count[tostring(i)]
        assert.truthy(c, "message " .. i .. " acknowledged by the broker and never written")
        dups = dups + c - 1
      end
      assert.is_true(dups <= 60, dups .. " duplicates")
      print(string.format("\n  QoS 1, kill -9 after %d of %d written: none missing, %d duplicates", #first, N, dups))
    end)
    h.stop_after(srv, ok, err)
  end)

  it("a broker restart mid-flow: reconnects, not ready meanwhile, and loses nothing at QoS 1", function()
    local srv = h.serve((HOLD:gsub("URL", b.url):gsub("CID", "restarted")))
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end))
      for i = 1, 5 do assert.equal(0, b.pub("-q 1 -t held/" .. i .. " -m r" .. i)) end
      assert.truthy(h.wait_for(function() return metric(srv, "input_received") == 5 end, 20))
      b.stop(true)
      assert.truthy(h.wait_for(function() return ready(srv):find("mqtt", 1, true) end), ready(srv) .. b.log())
      assert.matches('"ready":false', ready(srv), 1, true)
      b.restart()
      assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end, 20))
      -- the broker sent the five again: the first connection acknowledged none
      assert.truthy(h.wait_for(function() return metric(srv, "input_received") == 10 end, 20))
      for i = 6, 7 do assert.equal(0, b.pub("-q 1 -t held/" .. i .. " -m r" .. i)) end
      local seen, n = sse_collect(srv, "/sse", 7)
      assert.equal(7, n)
      for i = 1, 7 do assert.truthy(seen["r" .. i]) end
      assert.equal(1, metric(srv, "input_connection_lost"))
    end)
    h.stop_after(srv, ok, err)
  end)

  -- Mosquitto takes at most max_inflight_messages (20) QoS 2 messages in
  -- flight from a client and closes the connection of one that sends more;
  -- MQTT 3.1.1 does not announce it, and 64 in flight lost the connection on
  -- every reconnection (every ~100 ms), for good.
  it("publishes at QoS 2 within the broker's in-flight limit: all arrive, the connection is never lost", function()
    b.sub("-i q2sub -c -q 1 -t q2out -E")
    local r = h.run_config(([[
input: {generate: {count: 300, interval: 0s, mapping: 'return tostring(i)'}}
output: {mqtt: {urls: [URL], topic: q2out, qos: 2}}
]]):gsub("URL", b.url), {timeout = 40})
    assert.equal(0, r.code, r.stderr:sub(1, 2000))
    assert.is_nil(r.stderr:find("disconnected", 1, true), r.stderr:sub(1, 2000))
    local got = h.lines(b.sub("-i q2sub -c -q 1 -t q2out -C 300 -W 20"))
    assert.equal(300, #got)
    for i = 1, 300 do assert.equal(tostring(i), got[i]) end
  end)

  it("the output across a broker restart mid-flow: waits, reconnects and loses nothing at QoS 1", function()
    b.sub("-i outsub -c -q 1 -t outr -E")
    local srv = h.serve(([[
http: {address: 127.0.0.1:$PORT}
input:
  generate: {count: 300, interval: 10ms, mapping: 'return tostring(i)'}
output:
  mqtt: {urls: [URL], topic: outr, qos: 1}
]]):gsub("URL", b.url), nil)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return metric(srv, "output_sent") >= 20 end, 20))
      b.stop(true)
      assert.truthy(h.wait_for(function() return ready(srv):find("mqtt", 1, true) end))
      -- mid-flow: generate had more to send when the broker went away
      assert.truthy(metric(srv, "output_sent") < 300)
      b.restart()
      -- sluice ends once generate's 300 are acknowledged by the broker
      assert.truthy(h.wait_for(function() return h.read(srv.dir .. "/rc.txt") end, 60))
      local seen, n = {}, 0
      for _, l in ipairs(h.lines(b.sub("-i outsub -c -q 1 -t outr -W 10"))) do
        if not seen[l] then seen[l] = true n = n + 1 end
      end
      for i = 1, 300 do assert.truthy(seen[tostring(i)], "message " .. i .. " lost") end
      assert.equal(300, n)
      assert.matches("mqtt: disconnected", srv.stderr(), 1, true)
    end)
    h.stop_after(srv, ok, err)
  end)

  it("a broker absent at start: not ready with the reason, then flows once it is up", function()
    local port = h.port()
    local srv = h.serve(([[
http: {address: 127.0.0.1:$PORT}
input:
  mqtt:
    urls: [tcp://127.0.0.1:BPORT]
    topics: [late]
    client_id: late
    clean_session: false
output:
  file: {path: out.txt}
]]):gsub("BPORT", tostring(port)), nil)
    local late
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv):find("mqtt", 1, true) end))
      assert.matches('"ready":false', ready(srv), 1, true)
      late = mq.start({port = port})
      assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end, 20))
      assert.equal(0, late.pub("-q 1 -t late -m arrived"))
      assert.same({"arrived"}, h.wait_lines(srv.dir .. "/out.txt", 1))
      assert.truthy(metric(srv, "input_connection_failed") >= 1)
    end)
    if late then late.stop() end
    h.stop_after(srv, ok, err)
  end)

  it("its will is published when sluice dies, and not when it stops", function()
    local yaml = ([[
http: {address: 127.0.0.1:$PORT}
input:
  mqtt:
    urls: [URL]
    topics: [nothing]
    client_id: WID
    will: {enabled: true, topic: status/WID, payload: gone, qos: 1}
output:
  drop: {}
]]):gsub("URL", b.url)
    b.sub("-i willsub -c -q 1 -t 'status/#' -E")
    local srv = h.serve((yaml:gsub("WID", "stopped")))
    assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end))
    srv.stop()
    srv = h.serve((yaml:gsub("WID", "killed")))
    assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end))
    srv.kill()
    h.rmdir(srv.dir)
    local out = b.sub("-i willsub -c -q 1 -t 'status/#' -C 1 -W 10 -v")
    assert.equal("status/killed gone\n", out)
  end)

  it("passes an 8 MiB payload of random bytes, a non-UTF-8 one and an empty one unchanged", function()
    local srv = h.serve(([[
http: {address: 127.0.0.1:$PORT}
input:
  mqtt: {urls: [URL], topics: [raw/in], qos: 1}
output:
  mqtt: {urls: [URL], topic: raw/out, qos: 1}
]]):gsub("URL", b.url), nil)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end))
      local big = h.tmpname()
      os.execute("head -c 8388608 /dev/urandom > " .. big .. "; printf '\\377\\376caf\\351' > " .. big .. ".bin")
      b.sub("-i rawsub -c -q 1 -t raw/out -E")
      assert.equal(0, b.pub("-q 1 -t raw/in -f " .. big))
      assert.equal(0, b.pub("-q 1 -t raw/in -f " .. big .. ".bin"))
      assert.equal(0, b.pub("-q 1 -t raw/in -n"))
      local _, sums = h.sh(string.format(
        "timeout 30 mosquitto_sub -p %d -i rawsub -c -q 1 -t raw/out -C 3 -W 20 -F '%%l %%x' | awk '{print $1, length($2) ? substr($2, 1, 12) : \"-\"}'",
        b.port))
      local _, bin = h.sh("xxd -p " .. big .. ".bin")
      local lines = h.lines(sums)
      assert.equal(3, #lines)
      assert.equal("8388608", lines[1]:match("^(%d+)"))
      assert.equal("6 " .. bin:gsub("%s", ""), lines[2])
      assert.equal("0 -", lines[3])
      os.remove(big)
      os.remove(big .. ".bin")
    end)
    h.stop_after(srv, ok, err)
  end)

  -- The three messages form one batch (batching: count 3; batch_index 0-2):
  -- the output publishes the good one and fails the two others, which alone
  -- go to the fallback, with the reason (a retry would publish only them).
  it("fails a message whose topic is not valid MQTT (non-UTF-8, a wildcard) with the reason, and goes on", function()
    local srv = h.serve(([[
http: {address: 127.0.0.1:$PORT}
input:
  mqtt: {urls: [URL], topics: [bad/in], batching: {count: 3}}
pipeline:
  processors:
    - lua: 'meta.t = content(); return batch_index() .. " " .. content()'
output:
  fallback:
    - mqtt: {urls: [URL], topic: '${! meta.t }'}
    - file: {path: 'failed-${! meta.fallback_error:find("not a valid topic", 1, true) and "topic" or "other" }.txt'}
]]):gsub("URL", b.url), nil)
    local ok, err = pcall(function()
      assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end))
      b.sub("-i badsub -c -q 1 -t 'good/#' -E")
      assert.equal(0, b.pub("-q 1 -t bad/in -m 'a/#'"))
      assert.equal(0, b.pub("-q 1 -t bad/in -f /dev/stdin", "\255\254"))
      assert.equal(0, b.pub("-q 1 -t bad/in -m good/one"))
      assert.equal("good/one 2 good/one\n", b.sub("-i badsub -c -q 1 -t 'good/#' -C 1 -W 10 -v"))
      -- the fallback's write is acknowledged before the stream counts the batch sent
      assert.truthy(h.wait_for(function() return metric(srv, "output_sent") == 3 end))
      local failed = h.lines(h.read(srv.dir .. "/failed-topic.txt"))
      assert.same({"0 a/#", "1 \255\254"}, failed, table.concat(failed, "\n"))
      assert.is_nil(h.read(srv.dir .. "/failed-other.txt"))
    end)
    h.stop_after(srv, ok, err)
  end)

  -- Each message's outcome is kept with the batch: the output's retries of
  -- a batch publish only the message that failed. With max_retries 2 the
  -- stream writes a batch 3 times and the input sends it 3 times (a copy
  -- each, which the output has not seen): each good message is published 3
  -- times, once per send (main: 9, on every write).
  it("a retry publishes only the messages of its batch that failed", function()
    b.sub("-i retrysub -c -q 1 -t 'rt/#' -E")
    h.run_config(([[
retry: {max_retries: 2, initial_interval: 10ms, max_interval: 10ms}
input: {generate: {count: 3, interval: 0s, batch_size: 3, mapping: 'return ({"rt/a", "rt/#", "rt/b"})[i]'}}
output: {mqtt: {urls: [URL], topic: '${! content() }', qos: 1}}
]]):gsub("URL", b.url), {timeout = 30})
    local got = h.lines(b.sub("-i retrysub -c -q 1 -t 'rt/#' -W 3 -v"))
    table.sort(got)
    assert.same({"rt/a rt/a", "rt/a rt/a", "rt/a rt/a", "rt/b rt/b", "rt/b rt/b", "rt/b rt/b"}, got)
  end)

  it("a per-user topic behind a request-scoped SSE endpoint ($tyk_context and ${ctx…})", function()
    local srv = h.serve(([[
http: {address: 127.0.0.1:$PORT}
streams:
  per_user:
    input:
      mqtt:
        urls: [URL]
        topics: ['users/$tyk_context.request_data_user/events', 'direct/${ctx.query.user}']
    output:
      http_server: {sse_path: /sse}
]]):gsub("URL", b.url), nil)
    local ok, err = pcall(function()
      local out = h.tmpname()
      -- alice's instance subscribes when her SSE request comes
      os.execute(string.format("(curl -s -N -m 20 '%s/sse?user=alice' > %s &)", srv.url, out))
      assert.truthy(h.wait_for(function() return metric(srv, "input_connection_up") >= 1 end, 20))
      -- the subscription is acknowledged before the first publish gets through: publish until one arrives
      assert.truthy(h.wait_for(function()
        b.pub("-q 1 -t users/bob/events -m for-bob")
        b.pub("-q 1 -t direct/bob -m direct-bob")
        b.pub("-q 1 -t users/alice/events -m for-alice")
        return (h.read(out) or ""):find("for-alice", 1, true)
      end, 20))
      assert.equal(0, b.pub("-q 1 -t direct/alice -m direct-alice"))
      assert.truthy(h.wait_for(function() return (h.read(out) or ""):find("direct-alice", 1, true) end))
      assert.is_nil((h.read(out) or ""):find("bob", 1, true))
      os.remove(out)
    end)
    h.stop_after(srv, ok, err)
  end)
  it("connects over TLS with a user and password, and says why when the broker refuses it", function()
    local d = h.tmpdir()
    local q = h.shell_quote(d)
    assert.equal(0, (h.sh(table.concat({
      "cd " .. q,
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr",
      "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out server.pem",
      "mosquitto_passwd -c -b passwd alice s3cret",
      "chmod 0644 *"}, " && "))))
    local tport = h.port()
    local tb = mq.start({extra = table.concat({
      "listener " .. tport .. " 127.0.0.1",
      "cafile " .. d .. "/ca.pem", "certfile " .. d .. "/server.pem", "keyfile " .. d .. "/server.key",
      "allow_anonymous false", "password_file " .. d .. "/passwd"}, "\n"), before_listener = "per_listener_settings true"})
    local function conf(pw)
      return ([[
http: {address: 127.0.0.1:$PORT}
input:
  mqtt:
    urls: [ssl://127.0.0.1:TPORT]
    topics: [secure]
    user: alice
    password: PW
    tls: {root_cas_file: DIR/ca.pem}
output:
  file: {path: out.txt}
]]):gsub("TPORT", tostring(tport)):gsub("DIR", d):gsub("PW", pw)
    end
    local body_ok, body_err = pcall(function()
      local srv = h.serve(conf("s3cret"), nil)
      local ok, err = pcall(function()
        assert.truthy(h.wait_for(function() return ready(srv):find('"ready":true', 1, true) end, 20))
        assert.truthy(h.wait_for(function()
          tb.pub("-q 1 -t secure -m over-tls")
          return (h.read(srv.dir .. "/out.txt") or ""):find("over-tls", 1, true)
        end, 20))
      end)
      h.stop_after(srv, ok, err)
      srv = h.serve(conf("wrong"), nil)
      ok, err = pcall(function()
        assert.truthy(h.wait_for(function() return ready(srv):find("not authori", 1, true) end, 20), ready(srv))
      end)
      h.stop_after(srv, ok, err)
    end)
    tb.stop()
    h.rmdir(d)
    if not body_ok then error(body_err, 0) end
  end)
end)
