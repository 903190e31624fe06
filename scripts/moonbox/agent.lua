-- moonbox.agent: the agent loop — a model drives a toolset until it answers without tool calls.
--
--   local agent = moonbox.agent{
--     model = "openai:gpt-4.1" | "anthropic:..." | "openai-compatible:m@url" | a provider object,
--     provider = { api_key =, base_url =, max_retries =, timeout = },   -- provider options
--     toolset = moonbox.console_toolset{...}   -- or
--     capability = moonbox.console_capability{...},   -- tools plus the per-call permission gate
--     system = "...",        -- default: the capability's instructions / the toolset's prompt
--     max_turns = 30, stream = true, max_tokens = nil,
--     on_event = function(ev) end,
--   }
--   local result, msg, code = agent:run("Fix the failing test" [, { messages = earlier }])
--   result = { output = final text, messages = the whole conversation (neutral format, see
--              moonbox.llm), usage = { input_tokens, output_tokens, requests }, turns = n,
--              stopped = "done" | "max_turns" }
--   A failure of the model API (after its retries) is nil, msg, CODE (see moonbox.llm).
--
-- Events: { type = "turn", turn = n } before each model request; { type = "text", text = delta }
-- as text streams; { type = "tool_start", id, name, args }; { type = "tool_end", id, name, result,
-- is_error, duration }; { type = "retry", attempt, wait, message }; { type = "done", result }.
--
-- The tool calls of one turn run concurrently, each as a task; their results go back in the
-- order the model asked for them. Whatever the model sends — arguments that are not JSON, an
-- unknown tool, a missing argument, a raising tool — becomes an error result it can correct.
-- Cancelling the task that runs agent:run cancels the model request and every running tool
-- (their commands are killed).
local llm = require "moonbox.llm"
local json = require "moonbox.json"
local task = require "moonbox.task"

local M = {}

local Agent = {}
Agent.__index = Agent

local OPTIONS = { model = true, provider = true, toolset = true, capability = true, system = true,
  max_turns = true, stream = true, max_tokens = true, on_event = true }

function M.new(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'agent' (table expected)", 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then error("agent: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if opts.toolset == nil and opts.capability == nil then
    error("agent: give a toolset or a capability", 2)
  end
  local provider = opts.model
  if type(provider) == "string" then
    local p, msg, code = llm.provider(provider, opts.provider)
    if not p then return nil, msg, code end
    provider = p
  elseif type(provider) ~= "table" or type(provider.complete) ~= "function" then
    error("agent: model must be a model string or a provider with :complete", 2)
  end
  local cap = opts.capability
  local toolset = opts.toolset or cap.toolset
  local self = setmetatable({
    provider = provider,
    toolset = toolset,
    capability = cap,
    system = opts.system or (cap and cap.instructions) or (toolset.system_prompt and toolset:system_prompt()),
    max_turns = opts.max_turns or 30,
    stream = opts.stream ~= false,
    max_tokens = opts.max_tokens,
    on_event = opts.on_event,
  }, Agent)
  if provider.on_retry == nil and self.on_event then
    provider.on_retry = function(r)
      self:_emit { type = "retry", attempt = r.attempt, wait = r.wait, message = r.message }
    end
  end
  return self
end

function Agent:_emit(ev)
  if self.on_event then
    local ok, err = pcall(self.on_event, ev)
    if not ok then io.stderr:write("moonbox.agent: on_event failed: ", tostring(err), "\n") end
  end
end

function Agent:definitions()
  local defs = self.toolset:definitions()
  if self.capability and self.capability.prepare_tools then defs = self.capability.prepare_tools(defs) end
  return defs
end

local function is_error_result(result)
  return type(result) == "string" and result:sub(1, 6) == "Error:"
end

-- One tool call, whatever the model sent. Returns the result (text or content parts) and
-- whether it is an error.
function Agent:_call_tool(call, offered)
  if not offered[call.name] then
    local names = {}
    for n in pairs(offered) do names[#names + 1] = n end
    table.sort(names)
    return "Error: unknown tool '" .. tostring(call.name) .. "'. Available tools: " .. table.concat(names, ", "), true
  end
  local args = {}
  local raw = call.arguments
  if type(raw) == "string" and raw:match("%S") then
    local decoded, msg = json.decode(raw)
    if type(decoded) ~= "table" then
      return "Error: the arguments of " .. call.name .. " are not a JSON object (" .. tostring(msg or raw:sub(1, 80))
        .. "). Call the tool again with valid JSON arguments.", true
    end
    args = decoded
  elseif type(raw) == "table" then
    args = raw
  end
  if self.capability and self.capability.before_tool_execute then
    local ok, msg = self.capability.before_tool_execute(call.name, args)
    if not ok then return "Error: " .. tostring(msg), true end
  end
  local ok, result = xpcall(self.toolset.call, debug.traceback, self.toolset, call.name, args)
  if not ok then return "Error: " .. tostring(result):match("^[^\n]*"), true end
  return result, is_error_result(result)
end

-- Runs the calls of one turn as tasks; a <close> guard cancels the ones still running when the
-- turn is abandoned (the agent's task cancelled, an error).
function Agent:_run_tools(calls, offered)
  local tasks = {}
  local guard <close> = setmetatable({}, { __close = function()
    for _, t in ipairs(tasks) do
      if t:status() ~= "done" and t:status() ~= "failed" then t:cancel() end
    end
  end })
  local _ = guard
  for i, call in ipairs(calls) do
    tasks[i] = task.spawn(function()
      local args_view = call.arguments
      self:_emit { type = "tool_start", id = call.id, name = call.name, args = args_view }
      local t0 = task.now()
      local result, is_error = self:_call_tool(call, offered)
      self:_emit { type = "tool_end", id = call.id, name = call.name, result = result, is_error = is_error,
        duration = task.now() - t0 }
      return result, is_error
    end)
  end
  local results = {}
  for i, t in ipairs(tasks) do
    local ok, result, is_error = pcall(t.join, t)
    if not ok then result, is_error = "Error: " .. tostring(result), true end
    if type(result) == "table" and result.type then result = { result } end -- one content part
    results[i] = { result = result, is_error = is_error }
  end
  return results
end

function Agent:run(prompt, opts)
  if type(prompt) ~= "string" then error("bad argument #1 to 'run' (string expected)", 2) end
  opts = opts or {}
  local messages = {}
  for _, m in ipairs(opts.messages or {}) do messages[#messages + 1] = m end
  messages[#messages + 1] = { role = "user", content = prompt }
  local defs = self:definitions()
  local offered = {}
  for _, d in ipairs(defs) do offered[d.name] = true end
  local usage = { input_tokens = 0, output_tokens = 0, requests = 0 }
  local turns, output = 0, nil
  while true do
    if turns >= self.max_turns then
      local result = { output = output, messages = messages, usage = usage, turns = turns, stopped = "max_turns" }
      self:_emit { type = "done", result = result }
      return result
    end
    turns = turns + 1
    self:_emit { type = "turn", turn = turns }
    local resp, msg, code = self.provider:complete {
      system = self.system, messages = messages, tools = defs, stream = self.stream,
      max_tokens = self.max_tokens,
      on_text = function(delta) self:_emit { type = "text", text = delta } end,
    }
    if not resp then return nil, msg, code end
    usage.requests = usage.requests + 1
    usage.input_tokens = usage.input_tokens + (resp.usage and resp.usage.input_tokens or 0)
    usage.output_tokens = usage.output_tokens + (resp.usage and resp.usage.output_tokens or 0)
    output = resp.text or output
    local calls = resp.tool_calls or {}
    for i, c in ipairs(calls) do
      if type(c.id) ~= "string" or c.id == "" then c.id = "call_" .. turns .. "_" .. i end
    end
    messages[#messages + 1] = { role = "assistant", content = resp.text, tool_calls = #calls > 0 and calls or nil }
    if #calls == 0 then
      local result = { output = resp.text or "", messages = messages, usage = usage, turns = turns, stopped = "done" }
      self:_emit { type = "done", result = result }
      return result
    end
    local results = self:_run_tools(calls, offered)
    for i, c in ipairs(calls) do
      messages[#messages + 1] = { role = "tool", tool_call_id = c.id, name = c.name, content = results[i].result,
        is_error = results[i].is_error or nil }
    end
  end
end

M.Agent = Agent
return M
