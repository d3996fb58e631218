-- `metrics.prometheus.push_url`: pushes to Debian's real Prometheus
-- Pushgateway, periodically and at shutdown; what it holds is read back with
-- the official Python parser.
local h = require("spec.helpers")
local prom = require("spec.prom")

-- Starts prometheus-pushgateway on a free loopback port; returns {url, stop}.
local function pushgateway()
  for _ = 1, 4 do
    local port = h.port()
    local dir = h.tmpdir()
    os.execute(string.format("prometheus-pushgateway --web.listen-address=127.0.0.1:%d > %s/log 2>&1 & echo $! > %s/pid",
      port, dir, dir))
    local url = "http://127.0.0.1:" .. port
    for _ = 1, 100 do
      if h.sh("curl -sf -o /dev/null -m 1 " .. url .. "/-/ready") == 0 then
        return {url = url, stop = function()
          os.execute("kill " .. h.read(dir .. "/pid"):match("%d+") .. " 2>/dev/null")
          h.rmdir(dir)
        end}
      end
      if (h.read(dir .. "/log") or ""):find("address already in use", 1, true) then break end
      os.execute("sleep 0.05")
    end
    os.execute("kill " .. h.read(dir .. "/pid"):match("%d+") .. " 2>/dev/null")
    h.rmdir(dir)
  end
  error("prometheus-pushgateway did not start")
end

local function pushed(pg, name, labels) return prom.value(prom.samples(pg.url .. "/metrics"), name, labels) end

describe("pushgateway", function()
  local pg
  before_each(function() pg = pushgateway() end)
  after_each(function() pg.stop() end)

  it("receives the counters every push_interval while the stream runs", function()
    local srv = h.serve([[
http: {address: 127.0.0.1:$PORT}
metrics:
  prometheus: {push_url: ]] .. pg.url .. [[, push_interval: 100ms, push_job_name: Worker}
input: {http_server: {path: /in}}
output: {drop: {}}
]])
    for _ = 1, 3 do h.sh("curl -s -m 5 -d x " .. srv.url .. "/in") end
    local v
    for _ = 1, 100 do
      v = pushed(pg, "input_received_total", {job = "Worker", stream = "main", path = "root.input"})
      if v == 3 then break end
      os.execute("sleep 0.05")
    end
    assert.are.equal(0, srv.stop())
    assert.are.equal(3, v)
    assert.are.equal(3, pushed(pg, "output_sent_total", {job = "Worker", stream = "main"}))
  end)

  it("pushes the final counts at shutdown, after the streams drained", function()
    -- An interval far beyond the run: only the shutdown push can carry them.
    local r = h.run_config([[
metrics:
  prometheus: {push_url: ]] .. pg.url .. [[, push_interval: 1h, push_job_name: final}
input:
  generate: {count: 250, interval: 0, batch_size: 10, mapping: 'return {n = i}'}
pipeline:
  processors:
    - lua: 'if this.n % 5 == 0 then return deleted() end'
output: {drop: {}}
]])
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(250, pushed(pg, "input_received_total", {job = "final", stream = "main"}))
    assert.are.equal(200, pushed(pg, "processor_sent_total", {job = "final", path = "root.pipeline.processors.0"}))
    assert.are.equal(200, pushed(pg, "output_sent_total", {job = "final", stream = "main"}))
  end)

  it("takes Tyk's per-stream metrics blocks: each stream's series under its own job", function()
    local r = h.run_config([[
streams:
  Worker:
    input:
      generate: {count: 4, interval: 0, mapping: 'return {}'}
    output: {drop: {}}
    metrics:
      prometheus: {push_interval: 1h, push_job_name: Worker, push_url: "]] .. pg.url .. [["}
  in:
    input:
      generate: {count: 6, interval: 0, mapping: 'return {}'}
    output: {drop: {}}
    metrics:
      prometheus: {push_interval: 1h, push_job_name: in, push_url: "]] .. pg.url .. [["}
]])
    assert.are.equal(0, r.code, r.stderr)
    local s = prom.samples(pg.url .. "/metrics")
    assert.are.equal(4, prom.value(s, "output_sent_total", {job = "Worker", stream = "Worker"}))
    assert.are.equal(6, prom.value(s, "output_sent_total", {job = "in", stream = "in"}))
    assert.is_nil(prom.value(s, "output_sent_total", {job = "Worker", stream = "in"}))
    assert.is_nil(prom.value(s, "output_sent_total", {job = "in", stream = "Worker"}))
  end)

  it("logs a failed push and still exits 0", function()
    local port = h.port()
    local r = h.run_config([[
metrics:
  prometheus: {push_url: "http://127.0.0.1:]] .. port .. [[", push_interval: 1h}
input:
  generate: {count: 1, interval: 0, mapping: 'return 1'}
output: {drop: {}}
]])
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("push to http://127.0.0.1:" .. port .. "/metrics/job/sluice_push failed", r.stderr, 1, true)
  end)
end)
