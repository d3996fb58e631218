-- Plays a (simulated) Shannon workflow for one task: the events its
-- activities would emit while it runs, with Shannon's types and fields.
-- The task is the submitted message (its query in meta.query). Each event
-- names its workflow (meta.workflow_id) and type (meta.event); its content
-- is the event's body as the workflow's stream keeps it.
local words = {"Streams", "that", "survive", "a", "reconnect."}

local M = {}

function M.process(msg)
  local task = msg:json()
  local out = {}
  local function emit(type, agent, message, payload)
    local m = new_message({workflow_id = task.workflow_id, agent_id = agent, message = message, payload = payload})
    m.meta.workflow_id = task.workflow_id
    m.meta.event = type
    out[#out + 1] = m
  end
  emit("WORKFLOW_STARTED", "orchestrator", "Task received: " .. (msg.meta.query or ""))
  emit("AGENT_STARTED", "agent-1", "Agent agent-1 started")
  for _, w in ipairs(words) do emit("LLM_PARTIAL", "agent-1", w .. " ") end
  emit("LLM_OUTPUT", "agent-1", table.concat(words, " "), {model = "simulated", tokens = #words})
  emit("AGENT_COMPLETED", "agent-1", "Agent agent-1 completed")
  emit("WORKFLOW_COMPLETED", "orchestrator", "All done")
  emit("STREAM_END", "orchestrator", "Stream ended")
  return out
end

return M
