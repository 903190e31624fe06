-- moonbox.llm.anthropic: the Messages wire format (api.anthropic.com).
local M = {}

local json = require "moonbox.json"

local API_VERSION = "2023-06-01"

function M.default_base_url()
  return os.getenv("ANTHROPIC_BASE_URL") or "https://api.anthropic.com/v1"
end

function M.env_key() return os.getenv("ANTHROPIC_API_KEY") end

function M.key_required(_, base_url)
  return base_url:match("^https://api%.anthropic%.com") ~= nil
end

function M.missing_key_message()
  return "anthropic: no API key: set ANTHROPIC_API_KEY (or pass api_key)"
end

function M.auth_headers(key)
  local h = { ["anthropic-version"] = API_VERSION }
  if key and key ~= "" then h["x-api-key"] = key end
  return h
end

function M.error_message(body)
  local doc = body and json.decode(body)
  if type(doc) == "table" and type(doc.error) == "table" and type(doc.error.message) == "string" then
    return doc.error.message
  end
  return nil
end

local function blocks(content)
  if type(content) == "string" then return content end
  local out = json.array()
  for _, part in ipairs(content or {}) do
    if part.type == "text" then
      out[#out + 1] = { type = "text", text = part.text }
    elseif part.type == "image" then
      out[#out + 1] = { type = "image", source = { type = "base64", media_type = part.media_type, data = part.data } }
    elseif part.type == "document" then
      out[#out + 1] = { type = "document",
        source = { type = "base64", media_type = part.media_type, data = part.data } }
    end
  end
  return out
end

-- Tool results follow the assistant turn as one user message of tool_result blocks; consecutive
-- user turns are merged (the API wants roles to alternate).
function M.encode_messages(messages)
  local out = json.array()
  local function push(role, content_blocks)
    local last = out[#out]
    if last and last.role == role and role == "user" then
      if type(last.content) == "string" then last.content = json.array { { type = "text", text = last.content } } end
      for _, b in ipairs(content_blocks) do last.content[#last.content + 1] = b end
    else
      out[#out + 1] = { role = role, content = content_blocks }
    end
  end
  for _, m in ipairs(messages) do
    if m.role == "assistant" then
      local content = json.array()
      if m.content and m.content ~= "" then content[#content + 1] = { type = "text", text = m.content } end
      for _, c in ipairs(m.tool_calls or {}) do
        local input = json.decode(c.arguments or "{}")
        if type(input) ~= "table" then input = json.object() end
        if next(input) == nil then input = json.object() end
        content[#content + 1] = { type = "tool_use", id = c.id, name = c.name, input = input }
      end
      out[#out + 1] = { role = "assistant", content = content }
    elseif m.role == "tool" then
      local block = { type = "tool_result", tool_use_id = m.tool_call_id, content = blocks(m.content) or "" }
      if m.is_error then block.is_error = true end
      push("user", { block })
    else
      local b = blocks(m.content)
      if type(b) == "string" then b = json.array { { type = "text", text = b } } end
      push("user", b)
    end
  end
  return out
end

function M.encode_tools(tools)
  local out = json.array()
  for _, t in ipairs(tools or {}) do
    out[#out + 1] = { name = t.name, description = t.description, input_schema = t.parameters }
  end
  return out
end

local function parse_whole(body)
  local doc = json.decode(body)
  if type(doc) ~= "table" or type(doc.content) ~= "table" then
    return nil, "anthropic: the reply is not a message: " .. body:sub(1, 200), "PROTOCOL"
  end
  local resp = { tool_calls = {}, stop_reason = doc.stop_reason, usage = { input_tokens = 0, output_tokens = 0 } }
  local text = {}
  for _, b in ipairs(doc.content) do
    if b.type == "text" then text[#text + 1] = b.text
    elseif b.type == "tool_use" then
      local args = json.encode(b.input or json.object())
      resp.tool_calls[#resp.tool_calls + 1] = { id = b.id, name = b.name, arguments = args }
    end
  end
  resp.text = #text > 0 and table.concat(text) or nil
  if type(doc.usage) == "table" then
    resp.usage.input_tokens = doc.usage.input_tokens or 0
    resp.usage.output_tokens = doc.usage.output_tokens or 0
  end
  return resp
end

local function stream_state(on_text)
  local st = { shown = false }
  function st.reset()
    st.text, st.blocks, st.stop, st.input, st.output, st.error, st.done = {}, {}, nil, 0, 0, nil, false
  end
  st.reset()
  st.on_event = function(ev)
    local doc = json.decode(ev.data)
    if type(doc) ~= "table" then
      st.error = "anthropic: a streamed event is not JSON: " .. ev.data:sub(1, 200)
      return false
    end
    local t = doc.type or ev.event
    if t == "message_start" and type(doc.message) == "table" and type(doc.message.usage) == "table" then
      st.input = doc.message.usage.input_tokens or 0
      st.output = doc.message.usage.output_tokens or 0
    elseif t == "content_block_start" and type(doc.content_block) == "table" then
      local i = (tonumber(doc.index) or 0) + 1
      local cb = doc.content_block
      st.blocks[i] = { type = cb.type, id = cb.id, name = cb.name, parts = {} }
    elseif t == "content_block_delta" and type(doc.delta) == "table" then
      local i = (tonumber(doc.index) or 0) + 1
      local b = st.blocks[i]
      if not b then
        b = { type = doc.delta.type == "input_json_delta" and "tool_use" or "text", parts = {} }
        st.blocks[i] = b
      end
      if doc.delta.type == "text_delta" and type(doc.delta.text) == "string" then
        b.parts[#b.parts + 1] = doc.delta.text
        st.shown = true
        if on_text then on_text(doc.delta.text) end
      elseif doc.delta.type == "input_json_delta" and type(doc.delta.partial_json) == "string" then
        b.parts[#b.parts + 1] = doc.delta.partial_json
      end
    elseif t == "message_delta" then
      if type(doc.delta) == "table" and doc.delta.stop_reason ~= json.null then st.stop = doc.delta.stop_reason end
      if type(doc.usage) == "table" and doc.usage.output_tokens then st.output = doc.usage.output_tokens end
    elseif t == "message_stop" then
      st.done = true
    elseif t == "error" then
      st.error = "anthropic: " .. tostring(type(doc.error) == "table" and doc.error.message or ev.data)
      return false
    end
  end
  return st
end

function M.complete(p, opts)
  local stream = opts.stream and true or false
  local body = {
    model = p.model,
    max_tokens = opts.max_tokens or p.max_tokens or 8192,
    messages = M.encode_messages(opts.messages),
    stream = stream,
  }
  if opts.system and opts.system ~= "" then body.system = opts.system end
  if opts.tools and #opts.tools > 0 then body.tools = M.encode_tools(opts.tools) end
  if not stream then
    local res, msg, code = p:_post("/messages", body)
    if not res then return nil, msg, code end
    return parse_whole(res.body)
  end
  local st = stream_state(opts.on_text)
  local res, msg, code = p:_post("/messages", body, st)
  if st.error then return nil, st.error, "PROTOCOL" end
  if not res then return nil, msg, code end
  if not st.done then return nil, "anthropic: the stream ended before message_stop", "UNAVAILABLE" end
  local resp = { tool_calls = {}, stop_reason = st.stop,
    usage = { input_tokens = st.input, output_tokens = st.output } }
  local text = {}
  for i = 1, #st.blocks do
    local b = st.blocks[i]
    if b.type == "text" then
      text[#text + 1] = table.concat(b.parts)
    elseif b.type == "tool_use" then
      local args = table.concat(b.parts)
      if args == "" then args = "{}" end
      resp.tool_calls[#resp.tool_calls + 1] = { id = b.id, name = b.name or "", arguments = args }
    end
  end
  resp.text = #text > 0 and table.concat(text) or nil
  return resp
end

return M
