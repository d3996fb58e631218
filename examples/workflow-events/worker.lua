-- Plays a (simulated) LLM workflow for one task: the events a real worker
-- would publish while it runs, each carrying the task id in metadata.
local words = {"Streams", "that", "survive", "a", "reload."}

function process(msg)
  local task = msg:json()
  local out = {}
  local function emit(event, data)
    local m = new_message(data)
    m.meta.task_id = task.task_id
    m.meta.event = event
    out[#out + 1] = m
  end
  emit("WORKFLOW_STARTED", {task_id = task.task_id, prompt = task.prompt})
  for i, w in ipairs(words) do emit("LLM_PARTIAL", {index = i, delta = w}) end
  emit("LLM_OUTPUT", {text = table.concat(words, " ")})
  emit("STREAM_END", {task_id = task.task_id})
  return out
end
