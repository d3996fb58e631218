-- Shannon's event schema (its streaming.Event) from a record of a workflow's
-- stream: the record's event name is the type; its offset is the sequence
-- number and, as `partition:offset`, the stream id that resumes after it
-- (last_event_id, or the Last-Event-ID EventSource sends by itself).
local M = {}

function M.process(msg)
  local v, m = msg:json(), msg.meta
  msg:set_json({
    workflow_id = v.workflow_id, type = m.event, agent_id = v.agent_id, message = v.message,
    payload = v.payload, timestamp = v.timestamp, seq = tonumber(m.stream_offset),
    stream_id = m.stream_partition .. ":" .. m.stream_offset,
  })
  return msg
end

return M
