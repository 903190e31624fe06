-- moonbox.llm.openai: the Chat Completions wire format (api.openai.com and every
-- OpenAI-compatible server: Ollama, vLLM, llama.cpp server, LM Studio, OpenRouter).
local M = {}

local json = require "moonbox.json"

function M.default_base_url(kind)
  if kind == "openai" then return os.getenv("OPENAI_BASE_URL") or "https://api.openai.com/v1" end
  return "http://127.0.0.1:11434/v1"
end

function M.env_key(kind)
  if kind == "openai" then return os.getenv("OPENAI_API_KEY") end
  return os.getenv("OPENAI_API_KEY") -- compatible servers mostly ignore it; sent when set
end

function M.key_required(kind, base_url)
  return kind == "openai" and base_url:match("^https://api%.openai%.com") ~= nil
end

function M.missing_key_message()
  return "openai: no API key: set OPENAI_API_KEY (or pass api_key), or use "
    .. "openai-compatible:<model>@<base_url> for a local server"
end

function M.auth_headers(key)
  if key and key ~= "" then return { Authorization = "Bearer " .. key } end
  return {}
end

function M.error_message(body)
  local doc = body and json.decode(body)
  if type(doc) == "table" and type(doc.error) == "table" and type(doc.error.message) == "string" then
    return doc.error.message
  end
  if type(doc) == "table" and type(doc.error) == "string" then return doc.error end
  return nil
end

local function content_text(content)
  if type(content) == "string" or content == nil then return content end
  -- content parts from a tool (text, images): OpenAI tool messages take text only
  local out = {}
  for _, part in ipairs(content) do
    if part.type == "text" then out[#out + 1] = part.text
    else out[#out + 1] = "[" .. tostring(part.type) .. " content omitted: " .. tostring(part.media_type) .. "]" end
  end
  return table.concat(out, "\n")
end

local function user_content(content)
  if type(content) ~= "table" then return content end
  local parts = json.array()
  for _, part in ipairs(content) do
    if part.type == "text" then
      parts[#parts + 1] = { type = "text", text = part.text }
    elseif part.type == "image" then
      parts[#parts + 1] = { type = "image_url",
        image_url = { url = "data:" .. part.media_type .. ";base64," .. part.data } }
    end
  end
  return parts
end

function M.encode_messages(system, messages)
  local out = json.array()
  if system and system ~= "" then out[#out + 1] = { role = "system", content = system } end
  for _, m in ipairs(messages) do
    if m.role == "assistant" then
      local msg = { role = "assistant", content = m.content or json.null }
      if m.tool_calls and #m.tool_calls > 0 then
        local calls = json.array()
        for _, c in ipairs(m.tool_calls) do
          calls[#calls + 1] = { id = c.id, type = "function",
            ["function"] = { name = c.name, arguments = c.arguments or "{}" } }
        end
        msg.tool_calls = calls
      end
      out[#out + 1] = msg
    elseif m.role == "tool" then
      out[#out + 1] = { role = "tool", tool_call_id = m.tool_call_id, content = content_text(m.content) or "" }
    else
      out[#out + 1] = { role = m.role, content = user_content(m.content) }
    end
  end
  return out
end

function M.encode_tools(tools)
  local out = json.array()
  for _, t in ipairs(tools or {}) do
    out[#out + 1] = { type = "function",
      ["function"] = { name = t.name, description = t.description, parameters = t.parameters } }
  end
  return out
end

local function parse_whole(body)
  local doc = json.decode(body)
  if type(doc) ~= "table" or type(doc.choices) ~= "table" or type(doc.choices[1]) ~= "table" then
    return nil, "openai: the reply is not a chat completion: " .. body:sub(1, 200), "PROTOCOL"
  end
  local choice = doc.choices[1]
  local msg = choice.message or {}
  local resp = { text = type(msg.content) == "string" and msg.content or nil, tool_calls = {},
    stop_reason = choice.finish_reason, usage = { input_tokens = 0, output_tokens = 0 } }
  for _, c in ipairs(type(msg.tool_calls) == "table" and msg.tool_calls or {}) do
    local f = c["function"] or {}
    resp.tool_calls[#resp.tool_calls + 1] = { id = c.id, name = f.name, arguments = f.arguments or "" }
  end
  if type(doc.usage) == "table" then
    resp.usage.input_tokens = doc.usage.prompt_tokens or 0
    resp.usage.output_tokens = doc.usage.completion_tokens or 0
  end
  return resp
end

-- Streamed deltas: text pieces, tool-call pieces per index (the id and name come first, the
-- arguments in fragments), a finish_reason, and usage in a last chunk when asked for.
local function stream_state(on_text)
  local st = { shown = false }
  function st.reset()
    st.text, st.calls, st.stop, st.usage, st.error, st.done = {}, {}, nil, nil, nil, false
  end
  st.reset()
  st.on_event = function(ev)
    if ev.data == "[DONE]" then st.done = true; return end
    local doc = json.decode(ev.data)
    if type(doc) ~= "table" then
      st.error = "openai: a streamed event is not JSON: " .. ev.data:sub(1, 200)
      return false
    end
    if type(doc.error) == "table" then
      st.error = "openai: " .. tostring(doc.error.message)
      return false
    end
    if type(doc.usage) == "table" then st.usage = doc.usage end
    local choice = type(doc.choices) == "table" and doc.choices[1]
    if type(choice) ~= "table" then return end
    if choice.finish_reason and choice.finish_reason ~= json.null then st.stop = choice.finish_reason end
    local delta = choice.delta
    if type(delta) ~= "table" then return end
    if type(delta.content) == "string" and delta.content ~= "" then
      st.text[#st.text + 1] = delta.content
      st.shown = true
      if on_text then on_text(delta.content) end
    end
    for _, tc in ipairs(type(delta.tool_calls) == "table" and delta.tool_calls or {}) do
      local i = (tonumber(tc.index) or 0) + 1
      local call = st.calls[i]
      if not call then
        call = { id = nil, name = nil, args = {} }
        st.calls[i] = call
      end
      if type(tc.id) == "string" then call.id = tc.id end
      local f = tc["function"]
      if type(f) == "table" then
        if type(f.name) == "string" then call.name = (call.name or "") .. f.name end
        if type(f.arguments) == "string" then call.args[#call.args + 1] = f.arguments end
      end
    end
  end
  return st
end

function M.complete(p, opts)
  local stream = opts.stream and true or false
  local body = {
    model = p.model,
    messages = M.encode_messages(opts.system, opts.messages),
    stream = stream,
  }
  if opts.tools and #opts.tools > 0 then body.tools = M.encode_tools(opts.tools) end
  if stream then body.stream_options = { include_usage = true } end
  local max_tokens = opts.max_tokens or p.max_tokens
  if max_tokens then body.max_tokens = max_tokens end
  if not stream then
    local res, msg, code = p:_post("/chat/completions", body)
    if not res then return nil, msg, code end
    return parse_whole(res.body)
  end
  local st = stream_state(opts.on_text)
  local res, msg, code = p:_post("/chat/completions", body, st)
  if st.error then return nil, st.error, "PROTOCOL" end
  if not res then return nil, msg, code end
  local resp = { text = #st.text > 0 and table.concat(st.text) or nil, tool_calls = {},
    stop_reason = st.stop, usage = { input_tokens = 0, output_tokens = 0 } }
  for i = 1, #st.calls do
    local c = st.calls[i]
    resp.tool_calls[#resp.tool_calls + 1] = { id = c.id or ("call_" .. i), name = c.name or "",
      arguments = table.concat(c.args) }
  end
  if st.usage then
    resp.usage.input_tokens = st.usage.prompt_tokens or 0
    resp.usage.output_tokens = st.usage.completion_tokens or 0
  end
  if not st.done and not st.stop then
    return nil, "openai: the stream ended before the reply was complete", "UNAVAILABLE"
  end
  return resp
end

return M
