-- moonbox.mcp: a Model Context Protocol server for the console toolset (JSON-RPC 2.0, one
-- message per line, protocol 2025-11-25 negotiated down to 2025-06-18 and 2025-03-26).
--
--   local srv = mcp.server {
--     capability = cap,            -- moonbox.console_capability (permission gate + toolset), or
--     toolset = ts,                -- a bare console toolset
--     write = function(line) end,  -- sends one message (no newline); default: stdout
--     log = function(line) end,    -- notices; default: stderr (stdout carries messages only)
--     name = "moonbox", version = "0.1.0", instructions = "...",
--     progress_interval = 1,       -- seconds between notifications/progress of a running call
--     ask_timeout = 600,           -- seconds an elicitation waits for the client's answer
--   }
--   srv:handle(line)               -- one incoming message; tools/call runs in a task of its own
--   srv:ask(op, target, reason)    -- the "ask" callback for a permission checker: elicitation
--                                  -- when the client declared it, else false with the rule
--   srv:shutdown()                 -- cancels running calls (their commands are killed)
--   srv:running()                  -- number of calls in flight
--
--   mcp.serve { <server options>, input = reader (read_line()), output = file, grace = 0.25 }
--   -- reads until end of input, gives the calls in flight `grace` seconds to answer, then shuts
--   -- down (cancelling the rest); the reader defaults to stdin on the loop.
--
-- Protocol errors are JSON-RPC errors (-32700 parse, -32600 invalid request, -32601 unknown
-- method, -32602 bad params); tool failures are results with isError = true. Nothing a client
-- sends raises out of handle().
local json = require "moonbox.json"
local task = require "moonbox.task"
local toolset_mod = require "moonbox.toolset"

local M = {}

M.PROTOCOL_VERSIONS = { "2025-11-25", "2025-06-18", "2025-03-26" }
M.LATEST = M.PROTOCOL_VERSIONS[1]
M.PARSE_ERROR, M.INVALID_REQUEST, M.METHOD_NOT_FOUND, M.INVALID_PARAMS, M.INTERNAL_ERROR =
  -32700, -32600, -32601, -32602, -32603

local SUPPORTED = {}
for _, v in ipairs(M.PROTOCOL_VERSIONS) do SUPPORTED[v] = true end

-- What each console tool does to the world (MCP tool annotations).
M.ANNOTATIONS = {
  ls = { title = "List directory", readOnlyHint = true },
  read_file = { title = "Read file", readOnlyHint = true },
  glob = { title = "Find files", readOnlyHint = true },
  grep = { title = "Search file contents", readOnlyHint = true },
  read_output = { title = "Read background output", readOnlyHint = true },
  list_shells = { title = "List background shells", readOnlyHint = true },
  write_file = { title = "Write file", readOnlyHint = false, destructiveHint = true, idempotentHint = true },
  edit_file = { title = "Edit file", readOnlyHint = false, destructiveHint = true, idempotentHint = false },
  hashline_edit = { title = "Edit file by line hashes", readOnlyHint = false, destructiveHint = true,
    idempotentHint = false },
  execute = { title = "Run a command", readOnlyHint = false, destructiveHint = true, idempotentHint = false,
    openWorldHint = true },
  run_in_background = { title = "Start a background command", readOnlyHint = false, destructiveHint = true,
    idempotentHint = false, openWorldHint = true },
  kill_shell = { title = "Stop a background shell", readOnlyHint = false, destructiveHint = true,
    idempotentHint = true },
}

local function version_string()
  local paths = package.loaded["moonbox.paths"] or {}
  return paths.version or "0"
end

local Server = {}
Server.__index = Server

local function key_of(id)
  return type(id) .. ":" .. tostring(id)
end

local function valid_id(id)
  return type(id) == "string" or math.type(id) == "integer"
end

local function is_object(v)
  return type(v) == "table" and (next(v) == nil or v[1] == nil)
end

function M.server(opts)
  if type(opts) ~= "table" then error("mcp.server: options must be a table", 2) end
  local cap, ts = opts.capability, opts.toolset
  if cap == nil and ts == nil then error("mcp.server: needs a capability or a toolset", 2) end
  ts = ts or cap.toolset
  local self = setmetatable({
    capability = cap, toolset = ts, checker = opts.checker or (cap and cap.checker),
    name = opts.name or "moonbox", version = opts.version or version_string(),
    instructions = opts.instructions or (ts.system_prompt and ts:system_prompt()),
    progress_interval = opts.progress_interval or 1, ask_timeout = opts.ask_timeout or 600,
    calls = {}, ncalls = 0, pending = {}, next_id = 0, always = {}, closed = false,
    protocol = M.LATEST, client_capabilities = {},
  }, Server)
  self.write_line = opts.write or function(line)
    local ok, err = io.stdout:write(line, "\n")
    if ok then ok, err = io.stdout:flush() end
    if not ok then error("stdout: " .. tostring(err), 0) end
  end
  self.log = opts.log or function(line)
    io.stderr:write("moonbox mcp: ", line, "\n")
    io.stderr:flush()
  end
  return self
end

function Server:send(msg)
  if self.closed and msg.method then return end
  local ok, line = pcall(json.encode, msg)
  if not ok then
    self.log("cannot encode a message: " .. tostring(line))
    if msg.id == nil or msg.method then return end
    line = json.encode { jsonrpc = "2.0", id = msg.id,
      error = { code = M.INTERNAL_ERROR, message = "the result could not be encoded as JSON" } }
  end
  local wok, werr = pcall(self.write_line, line)
  if not wok and not self.write_failed then
    -- The client stopped reading: nobody can see an answer, so stop the work in flight.
    self.write_failed = true
    self.log("cannot write to the client (" .. tostring(werr) .. "); cancelling the calls in flight")
    task.spawn(self.shutdown, self) -- from a task of its own: this may be a call's task

  end
end

function Server:reply(id, result)
  self:send { jsonrpc = "2.0", id = id, result = result }
end

function Server:fail(id, code, message)
  self:send { jsonrpc = "2.0", id = id == nil and json.null or id, error = { code = code, message = message } }
end

function Server:notify(method, params)
  self:send { jsonrpc = "2.0", method = method, params = params }
end

---------------------------------------------------------------------------------------------
-- tools/list

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  if v[1] ~= nil then json.array(out) end
  return out
end

-- The offered tools, built once (they depend only on the toolset and the ruleset).
function Server:definitions()
  if not self._defs then
    local defs = self.toolset:definitions()
    if self.capability and self.capability.prepare_tools then defs = self.capability.prepare_tools(defs) end
    self._defs, self._offered = defs, {}
    for _, d in ipairs(defs) do self._offered[d.name] = true end
  end
  return self._defs
end

function Server:tool_list()
  local modern = self.protocol ~= "2025-03-26"
  local tools = json.array()
  for _, d in ipairs(self:definitions()) do
    local schema = copy(d.parameters)
    if schema.required then json.array(schema.required) end
    schema.properties = json.object(schema.properties or {})
    local ann = M.ANNOTATIONS[d.name]
    local t = { name = d.name, description = d.description, inputSchema = schema }
    if ann then
      t.annotations = copy(ann)
      if modern then t.title = ann.title end
    end
    local out = toolset_mod.OUTPUT_SCHEMAS and toolset_mod.OUTPUT_SCHEMAS[d.name]
    if out and modern then t.outputSchema = copy(out) end
    tools[#tools + 1] = t
  end
  return tools
end

---------------------------------------------------------------------------------------------
-- tools/call

-- JSON text must be UTF-8: bytes that are not (a command's binary output) become U+FFFD.
local function utf8_clean(s)
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local n, bad = utf8.len(s, i)
    if n then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(out)
end
M.utf8_clean = utf8_clean

local function clean_strings(t)
  for k, v in pairs(t) do
    if type(v) == "string" then t[k] = utf8_clean(v) end
  end
  return t
end

local function content_of(result, path)
  if type(result) == "table" then
    if result.type == "image" then
      return { type = "image", data = result.data, mimeType = result.media_type }
    end
    return { type = "resource", resource = { uri = "file://" .. (path or "/document"),
      mimeType = result.media_type, blob = result.data } }
  end
  return { type = "text", text = utf8_clean(tostring(result)) }
end

-- Sends notifications/progress every progress_interval seconds until closed.
function Server:_ticker(token)
  local started = task.now()
  local ticker = task.spawn(function()
    local n = 0
    while true do
      task.sleep(self.progress_interval)
      n = n + 1
      local elapsed = task.now() - started
      self:notify("notifications/progress", { progressToken = token, progress = n,
        message = string.format("still running after %.1f s", elapsed) })
    end
  end)
  return setmetatable({}, { __close = function() ticker:cancel() end })
end

function Server:_run_call(name, args, token)
  local ticker <close> = token ~= nil and self:_ticker(token) or nil
  local _ = ticker
  local cap = self.capability
  local result, is_error, structured
  if cap and cap.before_tool_execute then
    local ok, msg = cap.before_tool_execute(name, args)
    if not ok then result, is_error = "Error: " .. tostring(msg), true end
  end
  if result == nil then result, is_error, structured = self.toolset:call(name, args) end
  local path = type(args) == "table" and type(args.path) == "string" and args.path or nil
  local res = { content = json.array { content_of(result, path) }, isError = is_error == true }
  if structured ~= nil and not is_error and self.protocol ~= "2025-03-26" then
    res.structuredContent = clean_strings(structured)
  end
  return res
end

function Server:_call(id, params)
  local name, args = params.name, params.arguments
  if type(name) ~= "string" then return self:fail(id, M.INVALID_PARAMS, "tools/call: 'name' must be a string") end
  if args ~= nil and args ~= json.null and not is_object(args) then
    return self:fail(id, M.INVALID_PARAMS, "tools/call: 'arguments' must be an object")
  end
  if args == json.null then args = nil end
  self:definitions()
  if not self._offered[name] then
    local names = {}
    for _, d in ipairs(self:definitions()) do names[#names + 1] = d.name end
    return self:fail(id, M.INVALID_PARAMS, ("Unknown tool '%s' (tools: %s)"):format(name, table.concat(names, ", ")))
  end
  local meta = params._meta
  local token = type(meta) == "table" and meta.progressToken or nil
  if token ~= nil and not valid_id(token) then token = nil end
  local key = key_of(id)
  if self.calls[key] then
    return self:fail(id, M.INVALID_REQUEST, "a request with this id is still running")
  end
  local entry = {}
  self.calls[key] = entry
  self.ncalls = self.ncalls + 1
  entry.task = task.spawn(function()
    local done <close> = setmetatable({}, { __close = function()
      if self.calls[key] == entry then
        self.calls[key] = nil
        self.ncalls = self.ncalls - 1
      end
    end })
    local _ = done
    local ok, res = xpcall(self._run_call, debug.traceback, self, name, args, token)
    if entry.cancelled then return end
    if ok then
      self:reply(id, res)
    else
      self.log("tool " .. name .. " raised: " .. tostring(res))
      self:reply(id, { content = json.array { { type = "text", text = "Error: the tool failed inside moonbox" } },
        isError = true })
    end
  end)
end

---------------------------------------------------------------------------------------------
-- Asking the client (elicitation)

function Server:_request(method, params, timeout)
  self.next_id = self.next_id + 1
  local id = "moonbox-" .. self.next_id
  local slot = {}
  self.pending[id] = slot
  slot.gate = task.spawn(function() task.sleep(timeout) end)
  local cleanup <close> = setmetatable({}, { __close = function()
    self.pending[id] = nil
    slot.gate:cancel()
  end })
  local _ = cleanup
  self:send { jsonrpc = "2.0", id = id, method = method, params = params }
  pcall(slot.gate.join, slot.gate)
  if slot.response == nil then return nil, "no answer from the client within " .. timeout .. " s" end
  if slot.response.error then
    local e = slot.response.error
    return nil, "the client answered with an error: " .. tostring(type(e) == "table" and e.message or e)
  end
  return slot.response.result
end

function Server:_response(msg)
  local slot = valid_id(msg.id) and self.pending[msg.id]
  if not slot then
    self.log("ignored a response to an unknown request id " .. tostring(msg.id))
    return
  end
  slot.response = msg
  slot.gate:cancel()
end

local function rule_of(ex)
  if not ex then return "" end
  return ex.summary or ""
end

function Server:ask(op, target, reason)
  local ex
  if self.checker then
    local ok, e = pcall(self.checker.explain, self.checker, op, target)
    if ok then ex = e end
  end
  local rule_key = op .. "#" .. tostring(ex and (ex.index or ex.decided_by) or "")
  if self.always[rule_key] then return true end
  local elicitation = self.client_capabilities.elicitation
  if type(elicitation) ~= "table" or (next(elicitation) ~= nil and elicitation.form == nil) or self.closed then
    return false, ("approval required (%s) and the MCP client cannot be asked (it does not declare the "
      .. "elicitation capability); use --preset permissive or a policy that allows it"):format(rule_of(ex))
  end
  local message = ("Allow %s on '%s'?"):format(op, target)
  if reason and reason ~= "" then message = message .. " " .. reason end
  if ex and ex.summary then message = message .. " (" .. ex.summary .. ")" end
  local result, err = self:_request("elicitation/create", {
    mode = self.protocol == "2025-11-25" and "form" or nil,
    message = message,
    requestedSchema = { type = "object", properties = {
      always = { type = "boolean", title = "Always allow",
        description = "Allow every later " .. op .. " this rule covers without asking", default = false },
    } },
  }, self.ask_timeout)
  if not result then return false, "approval could not be obtained: " .. err end
  if result.action ~= "accept" then
    return false, ("the client answered '%s' (%s)"):format(tostring(result.action), rule_of(ex))
  end
  if type(result.content) == "table" and result.content.always == true then self.always[rule_key] = true end
  return true
end

---------------------------------------------------------------------------------------------
-- Dispatch

local METHODS = {}

function METHODS.initialize(self, id, params)
  local v = params.protocolVersion
  if type(v) ~= "string" then
    return self:fail(id, M.INVALID_PARAMS, "initialize: 'protocolVersion' must be a string")
  end
  self.protocol = SUPPORTED[v] and v or M.LATEST
  self.client_capabilities = type(params.capabilities) == "table" and params.capabilities or {}
  self.client_info = type(params.clientInfo) == "table" and params.clientInfo or {}
  self.initialized = true
  self:reply(id, {
    protocolVersion = self.protocol,
    capabilities = { tools = { listChanged = false } },
    serverInfo = { name = self.name, title = "moonbox console tools", version = self.version },
    instructions = self.instructions,
  })
end

function METHODS.ping(self, id)
  self:reply(id, json.object())
end

function METHODS.tools_list(self, id, params)
  if params.cursor ~= nil and params.cursor ~= json.null then
    return self:fail(id, M.INVALID_PARAMS, "tools/list: unknown cursor (all tools come in one page)")
  end
  self:reply(id, { tools = self:tool_list() })
end

function METHODS.tools_call(self, id, params)
  self:_call(id, params)
end

local METHOD_NAMES = { initialize = "initialize", ping = "ping", ["tools/list"] = "tools_list",
  ["tools/call"] = "tools_call" }

local NOTIFICATIONS = {}

function NOTIFICATIONS.cancelled(self, params)
  local id = params.requestId
  if not valid_id(id) then return end
  local entry = self.calls[key_of(id)]
  if not entry then return end
  entry.cancelled = true
  self.log(("cancelling request %s%s"):format(tostring(id),
    type(params.reason) == "string" and (": " .. params.reason) or ""))
  entry.task:cancel()
end

local NOTIFICATION_NAMES = { ["notifications/cancelled"] = "cancelled" }

function Server:_dispatch(msg)
  if not is_object(msg) or next(msg) == nil then
    return self:fail(nil, M.INVALID_REQUEST, "a message must be a JSON-RPC 2.0 object")
  end
  local id = msg.id
  local has_id = id ~= nil
  if has_id and not valid_id(id) then
    return self:fail(nil, M.INVALID_REQUEST, "the id must be a string or an integer")
  end
  if msg.jsonrpc ~= "2.0" then return self:fail(id, M.INVALID_REQUEST, "jsonrpc must be \"2.0\"") end
  local method = msg.method
  if method == nil then
    if has_id and (msg.result ~= nil or msg.error ~= nil) then return self:_response(msg) end
    return self:fail(id, M.INVALID_REQUEST, "a request needs a method")
  end
  if type(method) ~= "string" then return self:fail(id, M.INVALID_REQUEST, "the method must be a string") end
  local params = msg.params
  if params == nil or params == json.null then params = {} end
  if not has_id then
    local n = NOTIFICATION_NAMES[method]
    if n and is_object(params) then NOTIFICATIONS[n](self, params) end
    return -- notifications/initialized and unknown notifications need nothing
  end
  local name = METHOD_NAMES[method]
  if not name then return self:fail(id, M.METHOD_NOT_FOUND, "method not found: " .. method) end
  if not is_object(params) then return self:fail(id, M.INVALID_PARAMS, method .. ": params must be an object") end
  METHODS[name](self, id, params)
end

function Server:handle(line)
  if line:find("^%s*$") then return end
  local msg, err = json.decode(line)
  if msg == nil and err then return self:fail(nil, M.PARSE_ERROR, "parse error: " .. tostring(err)) end
  if type(msg) == "table" and msg[1] ~= nil then
    return self:fail(nil, M.INVALID_REQUEST, "batches are not supported (MCP 2025-06-18 and later have none)")
  end
  local ok, e = xpcall(self._dispatch, debug.traceback, self, msg)
  if not ok then
    self.log("internal error: " .. tostring(e))
    if type(msg) == "table" and valid_id(msg.id) and msg.method then
      self:fail(msg.id, M.INTERNAL_ERROR, "internal error")
    end
  end
end

function Server:running()
  return self.ncalls
end

function Server:shutdown()
  self.closed = true
  for _, slot in pairs(self.pending) do slot.gate:cancel() end
  local tasks = {}
  for _, entry in pairs(self.calls) do tasks[#tasks + 1] = entry end
  for _, entry in ipairs(tasks) do
    entry.cancelled = true
    entry.task:cancel()
  end
end

M.Server = Server

-- Serves until the input ends (the client went away), then cancels what still runs.
function M.serve(opts)
  local srv = opts.server or M.server(opts)
  local input = opts.input or task.io.reader(0)
  if opts.output then
    local out = opts.output
    srv.write_line = function(line)
      local ok, err = out:write(line, "\n")
      if ok then ok, err = out:flush() end
      if not ok then error(tostring(err), 0) end
    end
  end
  while true do
    local line, err, code = input:read_line()
    if line == nil then
      if err then srv.log("reading the input failed: " .. tostring(err) .. " (" .. tostring(code) .. ")") end
      if code ~= "INVALID" then break end
      srv:fail(nil, M.PARSE_ERROR, "parse error: " .. tostring(err))
    else
      srv:handle(line)
    end
  end
  -- Calls the client sent just before it closed its end get a moment to answer (its reading end
  -- may still be open); whatever still runs after that is cancelled and its commands killed.
  if srv:running() > 0 then
    srv.log(("the client closed its input; %d call(s) still running get %.2f s, then are cancelled")
      :format(srv:running(), opts.grace or 0.25))
  end
  local deadline = task.now() + (opts.grace or 0.25)
  while srv:running() > 0 and task.now() < deadline do task.sleep(0.005) end
  srv:shutdown()
  if input.close and not opts.input then input:close() end
  return srv
end

return M
