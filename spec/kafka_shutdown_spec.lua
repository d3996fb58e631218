-- Shutdown of Tyk's demo on Kafka (examples/tyk-streams-demo/kafka.yaml):
-- no librdkafka call blocks the loop (a broker that went away used to hold
-- SIGTERM forever in a synchronous commit), and a message held for a
-- long-poll client that is not there goes back uncommitted at once
-- instead of holding the drain until shutdown_timeout.
local h = require("spec.helpers")
local kafka = require("spec.kafka_helpers")

local why = kafka.unavailable()
local describe_kafka = why and pending or describe

-- The demo on broker k, with a shutdown_timeout of 15 s. extra(yaml) may
-- change the text.
local function demo(k, extra)
  local yaml = h.read("examples/tyk-streams-demo/kafka.yaml")
    :gsub("%${HTTP_ADDRESS:0%.0%.0%.0:4195}", "127.0.0.1:$PORT")
    :gsub("%${KAFKA_ADDRESSES:localhost:9093}", k.addr)
  return "shutdown_timeout: 15s\n" .. (extra and extra(yaml) or yaml)
end

-- The demo's topics exist before it starts: a group subscribed to a topic
-- that does not exist yet is assigned it only at a later metadata refresh.
local function topics(k)
  local _, cache = h.sh(kafka.script .. " path")
  for _, t in ipairs({"jobs", "completed"}) do
    local code, _, err = h.sh(string.format("timeout 60 java -cp %s org.apache.kafka.tools.TopicCommand " ..
      "--bootstrap-server %s --create --topic %s --partitions 1 --replication-factor 1",
      h.shell_quote(cache:gsub("%s+$", "") .. "/libs/*"), k.addr, t))
    assert.are.equal(0, code, err)
  end
end

local function assigned(srv, stream)
  return h.wait_for(function() return srv.stderr():find("stream=" .. stream .. " component=kafka msg=\"kafka: assigned", 1, true) end, 60)
end

local function post(srv, body)
  local _, out = h.sh("curl -s -m 10 -X POST -d " .. h.shell_quote(body) .. " '" .. srv.url .. "/push-event?user=alice'")
  return out
end

-- alice's long-poll GETs until one answers with what holds `what` (each
-- waits up to the output's 5 s timeout); that answer, or nil after 60 s.
local function get_result(srv, what)
  local deadline = os.time() + 60
  repeat
    local _, out = h.sh("curl -s -m 8 '" .. srv.url .. "/get-event?user=alice'")
    if out:find(what, 1, true) then return out end
  until os.time() > deadline
end

describe_kafka("shutdown of the Tyk demo on Kafka" .. (why and (": " .. why) or ""), function()
  it("exits within shutdown_timeout after the broker went away, with offsets not committed yet", function()
    local k = kafka.start()
    topics(k)
    -- An hour between commits: what the two consumers acknowledged is
    -- still to be committed when the broker goes (by default a second
    -- would usually have committed it first).
    local srv = h.serve(demo(k, function(yaml)
      return (yaml:gsub("(consumer_group: [^\n]+\n)", "%1        commit_period: 1h\n"))
    end))
    assert.truthy(assigned(srv, "Worker"), srv.stderr())
    -- alice's GET starts her request-scoped instance (its own consumer group)
    h.sh("curl -s -m 1 '" .. srv.url .. "/get-event?user=alice'")
    assert.truthy(assigned(srv, "out{alice}"), srv.stderr())
    assert.matches('"user_id":"alice"', post(srv, '{"foo":"gone"}'))
    -- she gets her result: both consumers acknowledged a message they have not committed
    assert.truthy(get_result(srv, '"foo":"gone"'), srv.stderr())
    k.stop()
    local rc = srv.stop(true)   -- waits 30 s at most: shutdown_timeout (15 s) plus a margin
    local err = h.read(srv.dir .. "/err.txt") or ""
    h.rmdir(srv.dir)
    -- every message was delivered: only the commits are lost (read again later), said in the log
    assert.are.equal(0, rc, err)
    assert.matches("close_timeout", err)
  end)

  it("stops at once while it holds a message for an absent long-poll client, which gets it after the restart", function()
    local k = kafka.start()
    topics(k)
    local srv = h.serve(demo(k))
    -- alice's instance starts with her GET; she leaves before anything comes
    h.sh("curl -s -m 1 '" .. srv.url .. "/get-event?user=alice'")
    assert.truthy(assigned(srv, "out{alice}"), srv.stderr())
    post(srv, '{"foo":"held"}')
    -- her result reached the output, which holds it: nobody is there to take it
    local held = h.wait_for(function()
      local _, m = h.sh("curl -s -m 2 " .. srv.url .. "/metrics")
      return m:find('input_received{stream="out",label="kafka",path="root.input"} 1', 1, true) and
        m:find('output_sent{stream="out",label="http_server",path="root.output"} 0', 1, true)
    end, 60)
    assert.truthy(held, srv.stderr())
    local rc = srv.stop(true)
    local err = h.read(srv.dir .. "/err.txt") or ""
    assert.are.equal(0, rc, err)   -- before shutdown_timeout, which would exit 1
    assert.is_nil(err:find("shutdown_timeout reached", 1, true), err)
    -- not committed: the restarted demo reads it again for her
    local again = h.serve(demo(k), {dir = srv.dir, port = srv.port})
    local body = get_result(again, '"foo":"held"')
    assert.are.equal(0, again.stop())
    k.stop()
    assert.truthy(body, "the held message did not come again")
    assert.matches('"result":"bar"', body)
  end)
end)
