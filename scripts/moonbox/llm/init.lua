-- moonbox.llm: LLM providers behind one neutral interface.
--
--   local llm = require "moonbox.llm"
--   local p = llm.provider("openai:gpt-4.1" | "anthropic:claude-sonnet-4-5"
--                          | "openai-compatible:qwen2.5@http://127.0.0.1:11434/v1",
--                          { api_key =, base_url =, max_retries = 4, timeout = 300,
--                            retry_base = 0.5, retry_max = 30, max_tokens =, headers = {} })
--   local resp, msg, code = p:complete {
--     system = "...",
--     messages = {                                  -- the neutral conversation
--       { role = "user", content = "text" },
--       { role = "assistant", content = "text" | nil,
--         tool_calls = { { id =, name =, arguments = "<json text>" } } },
--       { role = "tool", tool_call_id =, name =, content = "text", is_error = bool },
--     },
--     tools = toolset:definitions(),                -- { {name, description, parameters} }
--     stream = true, on_text = function(delta) end, -- streamed text as it arrives
--   }
--   resp = { text =, tool_calls = { {id, name, arguments} }, stop_reason =,
--            usage = { input_tokens =, output_tokens = } }
--   failures: nil, msg, CODE — AUTH (401/403), RATE_LIMITED (429 after retries), SERVER (5xx
--   after retries), BAD_REQUEST (other 4xx), UNAVAILABLE, TIMEOUT, PROTOCOL (a reply that is
--   not the API's format), CANCELLED.
--
-- Retries: 429, 5xx and connection failures, with exponential backoff and full jitter, honouring
-- Retry-After (seconds or an HTTP date) and retry-after-ms; a stream that already delivered text
-- is not retried (the caller has shown it). API keys come from the options or OPENAI_API_KEY /
-- ANTHROPIC_API_KEY and never appear in messages.
local M = {}

local http = require "moonbox.http"
local json = require "moonbox.json"
local task = require "moonbox.task"

local adapters = {
  openai = "moonbox.llm.openai",
  ["openai-compatible"] = "moonbox.llm.openai",
  anthropic = "moonbox.llm.anthropic",
}

--- Parses "provider:model" (and "openai-compatible:model@base_url").
function M.parse_model(spec)
  if type(spec) ~= "string" then error("bad argument #1 to 'provider' (model string expected)", 3) end
  local kind, rest = spec:match("^([%w%-]+):(.+)$")
  if not kind or not adapters[kind] then
    return nil, "llm: unknown model '" .. spec .. "': use openai:<model>, anthropic:<model> or "
      .. "openai-compatible:<model>@<base_url>", "INVALID"
  end
  local model, base_url = rest, nil
  if kind == "openai-compatible" then
    model, base_url = rest:match("^(.-)@(https?://.+)$")
    if not model or model == "" then
      return nil, "llm: '" .. spec .. "' needs a base URL: openai-compatible:<model>@http://host:port/v1",
        "INVALID"
    end
  end
  return { kind = kind, model = model, base_url = base_url }
end

local function retry_after(headers)
  local ms = tonumber(headers["retry-after-ms"] or "")
  if ms then return ms / 1000 end
  local v = headers["retry-after"]
  if not v then return nil end
  local secs = tonumber(v)
  if secs then return secs end
  -- an HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT"
  local d, mon, y, h, mi, s = v:match("%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT")
  local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
    Oct = 10, Nov = 11, Dec = 12 }
  if d and months[mon] then
    local t = os.time { year = tonumber(y), month = months[mon], day = tonumber(d), hour = tonumber(h),
      min = tonumber(mi), sec = tonumber(s), isdst = false }
    local now = os.time(os.date("!*t")) ---@diagnostic disable-line
    return math.max(0, t - now)
  end
  return nil
end
M._retry_after = retry_after

local function status_code(status)
  if status == 401 or status == 403 then return "AUTH" end
  if status == 429 then return "RATE_LIMITED" end
  if status >= 500 then return "SERVER" end
  return "BAD_REQUEST"
end

local Provider = {}
Provider.__index = Provider

--- Sends one request with retries. `build` returns the request table; `consume(resp_or_chunk)`
--- is the adapter's. Streaming: the adapter passes on_chunk and reports whether text was shown.
function Provider:_send(req, state)
  local attempt = 0
  while true do
    attempt = attempt + 1
    local res, msg, code = http.request(req)
    local retryable, wait
    if res then
      if res.status < 300 then return res end
      local body = (state and state.error_body) and state.error_body() or res.body
      local detail = self.adapter.error_message(body) or ("HTTP " .. res.status)
      code = status_code(res.status)
      msg = string.format("%s: HTTP %d: %s", self.kind, res.status, detail)
      retryable = res.status == 429 or res.status >= 500
      wait = retry_after(res.headers or {})
    else
      msg = self.kind .. ": " .. tostring(msg)
      retryable = code == "UNAVAILABLE"
    end
    if state and state.shown then retryable = false end -- text already reached the caller
    if not retryable or attempt > self.max_retries then return nil, msg, code end
    if not wait then
      local cap = math.min(self.retry_max, self.retry_base * 2 ^ (attempt - 1))
      wait = cap * (0.5 + math.random() * 0.5)
    end
    if wait > self.retry_max then return nil, msg .. " (Retry-After " .. wait .. " s exceeds retry_max)", code end
    if self.on_retry then self.on_retry { attempt = attempt, wait = wait, message = msg, code = code } end
    if state then state.reset() end
    task.sleep(wait)
  end
end

--- Posts `body` (a table) to base_url .. path with the provider's headers. With a stream state
--- `st` ({reset(), on_event, shown, error}) the reply is read as Server-Sent Events into it.
function Provider:_post(path, body, st)
  local headers = { ["Content-Type"] = "application/json" }
  for k, v in pairs(self.auth_headers()) do headers[k] = v end
  for k, v in pairs(self.headers) do headers[k] = v end
  local req = { url = self.base_url .. path, method = "POST", headers = headers, body = json.encode(body),
    timeout = self.timeout }
  if not st then return self:_send(req) end
  local parse, errbody
  req.on_chunk = function(data, status)
    if status >= 300 then errbody[#errbody + 1] = data; return end
    return parse(data)
  end
  local state = setmetatable({
    reset = function()
      st.reset()
      parse = http.sse(st.on_event)
      errbody = {}
    end,
    error_body = function() return table.concat(errbody) end,
  }, { __index = st })
  state.reset()
  return self:_send(req, state)
end

function Provider:complete(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'complete' (table expected)", 2) end
  if type(opts.messages) ~= "table" then error("bad argument #1 to 'complete' (messages expected)", 2) end
  return self.adapter.complete(self, opts)
end

--- provider(model_string, opts) → provider, or nil, msg, CODE when the string or the key is missing.
function M.provider(spec, opts)
  opts = opts or {}
  local parsed, msg, code = M.parse_model(spec)
  if not parsed then return nil, msg, code end
  local adapter = require(adapters[parsed.kind])
  local self = setmetatable({
    kind = parsed.kind,
    model = parsed.model,
    adapter = adapter,
    base_url = (opts.base_url or parsed.base_url or adapter.default_base_url(parsed.kind)):gsub("/+$", ""),
    max_retries = opts.max_retries or 4,
    retry_base = opts.retry_base or 0.5,
    retry_max = opts.retry_max or 30,
    timeout = opts.timeout or 300,
    max_tokens = opts.max_tokens,
    headers = opts.headers or {},
    on_retry = opts.on_retry,
  }, Provider)
  local key = opts.api_key
  if key == nil then key = adapter.env_key(parsed.kind) end
  if (key == nil or key == "") and adapter.key_required(parsed.kind, self.base_url) then
    return nil, adapter.missing_key_message(parsed.kind), "AUTH"
  end
  -- the key lives in a closure, not a field: printing or logging the provider never shows it
  self.auth_headers = function() return adapter.auth_headers(key) end
  return self
end

return M
