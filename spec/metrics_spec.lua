-- GET /metrics: Prometheus text that the official Python parser reads (it
-- names counter samples NAME_total), with
-- counts that match what went through.
local h = require("spec.helpers")
local json = h.json

local function samples(srv)
  local _, out = h.sh("curl -s -m 5 " .. srv.url .. "/metrics | /usr/bin/python3 spec/tools/prom_parse.py")
  local t = {}
  for _, l in ipairs(h.lines(out)) do
    local s = json.decode(l)
    assert.is_nil(s.error, s.error)
    t[#t + 1] = s
  end
  return t
end

local function value(list, name, labels)
  for _, s in ipairs(list) do
    if s.name == name then
      local ok = true
      for k, v in pairs(labels) do if s.labels[k] ~= v then ok = false end end
      if ok then return s.value end
    end
  end
end

describe("metrics", function()
  it("counts input, output and HTTP requests by route and status, in a format Prometheus parses", function()
    local srv = h.serve([[
http:
  address: 127.0.0.1:$PORT
streams:
  ok:
    input: {http_server: {path: /in}}
    output: {drop: {}}
  failing:
    input: {http_server: {path: /bad, timeout: 2s}}
    output:
      reject_errored: {drop: {}}
    pipeline:
      processors:
        - lua: 'error("no")'
    retry: {max_retries: 1, initial_interval: 10ms}
]])
    for _ = 1, 5 do h.sh("curl -s -m 5 -X POST -d x " .. srv.url .. "/in") end
    for _ = 1, 2 do h.sh("curl -s -m 5 -X POST -d x " .. srv.url .. "/bad") end
    h.sh("curl -s -m 5 " .. srv.url .. "/nowhere")
    local s = samples(srv)
    assert.are.equal(0, srv.stop())
    assert.are.equal(5, value(s, "input_received_total", {stream = "ok"}))
    assert.are.equal(5, value(s, "output_sent_total", {stream = "ok"}))
    assert.are.equal(0, value(s, "output_error_total", {stream = "ok"}))
    assert.are.equal(2, value(s, "input_received_total", {stream = "failing"}))
    assert.are.equal(2, value(s, "output_error_total", {stream = "failing"}))
    assert.are.equal(5, value(s, "sluice_http_requests_total", {route = "/in", status = "200"}))
    assert.are.equal(2, value(s, "sluice_http_requests_total", {route = "/bad", status = "502"}))
    assert.are.equal(1, value(s, "sluice_http_requests_total", {route = "", status = "404"}))
    assert.is_true(value(s, "sluice_http_connections", {}) >= 1)
  end)
end)
