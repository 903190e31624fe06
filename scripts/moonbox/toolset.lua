-- moonbox.toolset: the console tools a model calls (ls, read_file, write_file, edit_file or
-- hashline_edit, glob, grep, execute and the background-shell tools) over any backend or
-- sandbox that follows the protocol in DESIGN.md.
--
--   local tools = moonbox.console_toolset{ backend = b, edit_format = "hashline" }
--   tools:definitions()             --> { {name, description, parameters = <JSON Schema>}, ... }
--   tools:call("read_file", args)   --> text | content part, is_error
--   tools:system_prompt()
--
-- Every answer is text for the model (or, for images and PDFs when enabled, a content part
-- {type = "image" | "document", media_type, data = base64}). Failures are text starting with
-- "Error: "; nothing raises out of call(): bad arguments, a backend returning nil/msg/CODE and a
-- backend that raises all become Error results. Options are checked at construction and raise.
local descriptions = require "moonbox.toolset.descriptions"
local hashline = require "moonbox.hashline"
local codec = require "moonbox.codec"

local M = {}

M.GLOB_RESULT_LIMIT = 100
M.GREP_RESULT_LIMIT = 50
M.GREP_LINE_WIDTH = 100
M.DEFAULT_EXECUTE_TIMEOUT = 120
M.DEFAULT_READ_LIMIT = 2000
M.LOCK_WAIT = 30 -- seconds a task waits for another edit of the same file before giving up
M.MIB = 1024 * 1024
M.DEFAULT_MAX_IMAGE_BYTES = 50 * M.MIB
M.DEFAULT_MAX_DOCUMENT_BYTES = 50 * M.MIB
M.IMAGE_MEDIA_TYPES = { png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp" }
M.DOCUMENT_MEDIA_TYPES = { pdf = "application/pdf" }

-- The permission operation behind each tool (the capability checks these per call).
M.TOOL_OPERATIONS = {
  ls = "ls", read_file = "read", write_file = "write", edit_file = "edit", hashline_edit = "edit",
  glob = "glob", grep = "grep", execute = "execute", run_in_background = "execute",
  read_output = "execute", kill_shell = "execute", list_shells = "execute",
}
M.EXECUTE_TOOLS = { "execute", "run_in_background", "read_output", "kill_shell", "list_shells" }
M.OVERRIDE_KEYS = { "edit_file", "execute", "glob", "grep", "hashline_edit", "kill_shell", "list_shells", "ls",
  "read_file", "read_output", "run_in_background", "write_file" }

-- JSON Schemas of the data call() returns beside the text, for the tools that have some.
M.OUTPUT_SCHEMAS = {
  execute = {
    type = "object",
    properties = {
      exit_code = { type = "integer", description = "the command's exit status (absent when killed by a signal)" },
      output = { type = "string", description = "stdout and stderr, as the text answer shows them" },
      timed_out = { type = "boolean", description = "the command was killed at its timeout" },
      truncated = { type = "boolean", description = "the output was cut at the sandbox's limit" },
    },
    required = { "output", "timed_out", "truncated" },
  },
}

local OVERRIDABLE = {}
for _, k in ipairs(M.OVERRIDE_KEYS) do OVERRIDABLE[k] = true end

-- JSON null as decoded by lua-cjson, when it is there: an optional argument sent as null is absent.
local JSON_NULL
do
  local ok, cjson = pcall(require, "cjson")
  if ok then JSON_NULL = cjson.null end
end

---------------------------------------------------------------------------------------------
-- Parameters: name, JSON type, and constraints. Order is the order shown to the model.

local function P(name, ty, extra)
  local p = extra or {}
  p.name, p.type = name, ty
  return p
end

local PARAMS = {
  ls = { P("path", "string", { default = "/" }) },
  read_file = {
    P("path", "string", { required = true }),
    P("offset", "integer", { default = 0, minimum = 0 }),
    P("limit", "integer", { default = M.DEFAULT_READ_LIMIT, minimum = 1 }),
  },
  write_file = { P("path", "string", { required = true }), P("content", "string", { required = true }) },
  edit_file = {
    P("path", "string", { required = true }),
    P("old_string", "string", { required = true }),
    P("new_string", "string", { required = true }),
    P("replace_all", "boolean", { default = false }),
  },
  hashline_edit = {
    P("path", "string", { required = true }),
    P("start_line", "integer", { required = true, minimum = 1 }),
    P("start_hash", "string", { required = true }),
    P("new_content", "string", { required = true }),
    P("end_line", "integer", { minimum = 1 }),
    P("end_hash", "string"),
    P("insert_after", "boolean", { default = false }),
  },
  glob = { P("pattern", "string", { required = true }), P("path", "string", { default = "/" }) },
  grep = {
    P("pattern", "string", { required = true }),
    P("path", "string"),
    P("glob_pattern", "string"),
    P("output_mode", "string", { default = "files_with_matches",
      enum = { "files_with_matches", "content", "count" } }),
    P("ignore_hidden", "boolean", { default = true }),
    P("ignore_case", "boolean", { default = false }),
  },
  execute = {
    P("command", "string", { required = true }),
    P("timeout", "integer", { default = M.DEFAULT_EXECUTE_TIMEOUT, minimum = 1 }),
  },
  run_in_background = { P("command", "string", { required = true }) },
  read_output = { P("shell_id", "string", { required = true }) },
  kill_shell = { P("shell_id", "string", { required = true }) },
  list_shells = {},
}

local TYPE_WORD = { string = "a string", integer = "an integer", boolean = "a boolean" }

local function json_type(v)
  local t = type(v)
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  if t == "table" then return next(v) == nil and "object" or (v[1] ~= nil and "array" or "object") end
  if t == "nil" or v == JSON_NULL then return "null" end
  return t
end

local function sorted_names(params)
  local names = {}
  for _, p in ipairs(params) do names[#names + 1] = p.name end
  table.sort(names)
  return #names > 0 and table.concat(names, ", ") or "none"
end

-- Checks args against a tool's parameters; returns the arguments with defaults filled in, or
-- nil and the reason (for an "Error: " answer).
local function validate(name, params, args)
  if args == nil or args == JSON_NULL then args = {} end
  if type(args) ~= "table" then
    return nil, ("Arguments of tool '%s' must be an object (got %s)."):format(name, json_type(args))
  end
  local known = {}
  for _, p in ipairs(params) do known[p.name] = p end
  local unknown = {}
  for k in pairs(args) do
    if not known[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    return nil, ("Unknown argument%s %s for tool '%s'. Valid arguments: %s."):format(#unknown > 1 and "s" or "",
      "'" .. table.concat(unknown, "', '") .. "'", name, sorted_names(params))
  end
  local out = {}
  for _, p in ipairs(params) do
    local v = args[p.name]
    if v == JSON_NULL then v = nil end
    if v == nil then
      if p.required then
        return nil, ("Missing required argument '%s' for tool '%s'."):format(p.name, name)
      end
      v = p.default
    else
      if p.type == "integer" and type(v) == "number" then v = math.tointeger(v) or v end
      if json_type(v) ~= p.type then
        return nil, ("Argument '%s' of tool '%s' must be %s (got %s)."):format(p.name, name, TYPE_WORD[p.type],
          json_type(v))
      end
      if p.enum then
        local ok = false
        for _, e in ipairs(p.enum) do ok = ok or e == v end
        if not ok then
          return nil, ("Argument '%s' of tool '%s' must be one of: %s (got '%s')."):format(p.name, name,
            table.concat(p.enum, ", "), tostring(v))
        end
      end
      if p.minimum and v < p.minimum then
        return nil, ("Argument '%s' of tool '%s' must be >= %d (got %d)."):format(p.name, name, p.minimum, v)
      end
    end
    out[p.name] = v
  end
  return out
end

---------------------------------------------------------------------------------------------
-- Read tracking and per-path locks, shared by every toolset over the same backend object.

local fingerprints = setmetatable({}, { __mode = "k" }) -- backend -> { path key -> sha256 hex }
local locks = setmetatable({}, { __mode = "k" })        -- backend -> { path key -> holder }

-- One spelling per file: "a.txt", "./a.txt" and "/a.txt" are the same key.
local function path_key(path)
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg ~= "." then parts[#parts + 1] = seg end
  end
  return "/" .. table.concat(parts, "/")
end

local function per_backend(store, backend)
  local t = store[backend]
  if not t then
    t = {}
    store[backend] = t
  end
  return t
end

---------------------------------------------------------------------------------------------
-- Small text helpers.

local function err(msg, fallback)
  if msg == nil then msg = fallback or "the backend failed without a message" end
  msg = tostring(msg)
  if msg:find("^Error:") then return msg end
  return "Error: " .. msg
end

local function count_lines(s)
  if s == "" then return 0 end
  local _, n = s:gsub("\n", "")
  if s:sub(-1) ~= "\n" then n = n + 1 end
  return n
end

-- The first `width` characters of a UTF-8 line (bytes when it is not valid UTF-8).
local function cut(s, width)
  if #s <= width then return s end
  local ok, off = pcall(utf8.offset, s, width + 1)
  if ok and off then return s:sub(1, off - 1) end
  if ok then return s end
  return s:sub(1, width)
end

local function extension(path)
  local ext = path:match("%.([^./]*)$")
  return ext and ext:lower() or ""
end

local function is_binary(bytes)
  return bytes:find("\0", 1, true) ~= nil or utf8.len(bytes) == nil
end

-- Does the backend have this method? (userdata without __index raise on indexing)
local function has(backend, method)
  local ok, v = pcall(function() return backend[method] end)
  return ok and v ~= nil
end

---------------------------------------------------------------------------------------------
-- The toolset object.

local Toolset = {}
Toolset.__index = Toolset

local OPTION_TYPES = {
  backend = "any", edit_format = "string", include_execute = "boolean", include_background = "boolean",
  permissions = "table", ask = "function", ask_fallback = "string", image_support = "boolean",
  max_image_bytes = "number", document_support = "boolean", max_document_bytes = "number",
  descriptions = "table", profile = "string", hash_len = "number", default_ignore_hidden = "boolean",
  on_error = "function", require_write_approval = "boolean", require_execute_approval = "boolean",
}

-- Tools a host may want a human to approve before they run (the reference's requires_approval).
local APPROVAL_KIND = { write_file = "write", edit_file = "write", hashline_edit = "write", execute = "execute",
  run_in_background = "execute", kill_shell = "execute" }

local function check_options(opts)
  if type(opts) ~= "table" then error("console_toolset: options must be a table", 3) end
  local names = {}
  for k in pairs(OPTION_TYPES) do names[#names + 1] = k end
  table.sort(names)
  for k, v in pairs(opts) do
    local want = OPTION_TYPES[k]
    if not want then
      error(("console_toolset: unknown option '%s' (valid: %s)"):format(tostring(k), table.concat(names, ", ")), 3)
    end
    if want ~= "any" and type(v) ~= want then
      error(("console_toolset: option '%s' must be a %s (got %s)"):format(k, want, type(v)), 3)
    end
  end
  local b = opts.backend
  if type(b) ~= "table" and type(b) ~= "userdata" then
    error("console_toolset: option 'backend' is required (a backend or sandbox)", 3)
  end
  local function one_of(key, value, allowed)
    for _, a in ipairs(allowed) do
      if value == a then return end
    end
    error(("console_toolset: option '%s' must be one of %s (got '%s')"):format(key, table.concat(allowed, ", "),
      tostring(value)), 3)
  end
  one_of("edit_format", opts.edit_format or "str_replace", { "str_replace", "hashline" })
  one_of("ask_fallback", opts.ask_fallback or "error", { "error", "deny" })
  one_of("profile", opts.profile or "coding", { "coding", "agent" })
  local hl = opts.hash_len or 2
  if math.type(hl) ~= "integer" or hl < 2 or hl > 8 then
    error("console_toolset: option 'hash_len' must be an integer from 2 to 8", 3)
  end
  for _, k in ipairs({ "max_image_bytes", "max_document_bytes" }) do
    if opts[k] ~= nil and opts[k] < 0 then error(("console_toolset: option '%s' must be >= 0"):format(k), 3) end
  end
  if opts.descriptions then
    local unknown = {}
    for k, v in pairs(opts.descriptions) do
      if not OVERRIDABLE[k] then unknown[#unknown + 1] = tostring(k) end
      if type(v) ~= "string" and type(v) ~= "table" then
        error(("console_toolset: descriptions.%s must be a string or a tool text table"):format(tostring(k)), 3)
      end
    end
    if #unknown > 0 then
      table.sort(unknown)
      error(("console_toolset: unknown tool name(s) in `descriptions`: %s. Valid names: %s."):format(
        table.concat(unknown, ", "), table.concat(M.OVERRIDE_KEYS, ", ")), 3)
    end
  end
end

-- The action a ruleset gives an operation when no rule matches (the operation's own default,
-- else the ruleset's, else "ask").
function M.operation_default(ruleset, op)
  local o = ruleset[op]
  return (type(o) == "table" and o.default) or ruleset.default or "ask"
end

local function tool_names(opts)
  local edit_tool = opts.edit_format == "hashline" and "hashline_edit" or "edit_file"
  local names = { "ls", "read_file", "write_file", edit_tool, "glob", "grep" }
  if opts.include_execute ~= false then
    names[#names + 1] = "execute"
    if opts.include_background ~= false then
      for i = 2, #M.EXECUTE_TOOLS do names[#names + 1] = M.EXECUTE_TOOLS[i] end
    end
  end
  if not opts.permissions then return names end
  local kept = {}
  for _, n in ipairs(names) do
    local op = M.TOOL_OPERATIONS[n]
    local removable = op == "write" or op == "edit" or op == "execute"
    if not (removable and M.operation_default(opts.permissions, op) == "deny") then kept[#kept + 1] = n end
  end
  return kept
end

function M.new(opts)
  check_options(opts)
  local self = setmetatable({}, Toolset)
  self.raw_backend = opts.backend
  self.backend = opts.backend
  self.edit_format = opts.edit_format or "str_replace"
  self.profile = opts.profile or "coding"
  self.hash_len = opts.hash_len or 2
  self.image_support = opts.image_support == true
  self.document_support = opts.document_support == true
  self.max_image_bytes = opts.max_image_bytes or M.DEFAULT_MAX_IMAGE_BYTES
  self.max_document_bytes = opts.max_document_bytes or M.DEFAULT_MAX_DOCUMENT_BYTES
  self.default_ignore_hidden = opts.default_ignore_hidden ~= false
  self.on_error = opts.on_error or function(msg) io.stderr:write("moonbox.toolset: ", msg, "\n") end
  self.overrides = opts.descriptions or {}
  self.permissions = opts.permissions
  if opts.permissions then
    -- Every backend call goes through the permission guard (moonbox.guard): denied reads,
    -- writes and commands come back as nil, "Permission denied ...", "DENIED". A backend that
    -- is guarded already is used as it is, so no operation is checked (or asked) twice.
    local gopts = { ask = opts.ask, ask_fallback = opts.ask_fallback or "error" }
    self.backend = require("moonbox.guard").guarding(opts.backend, opts.permissions, gopts)
  end
  self.names = tool_names(opts)
  self.offered = {}
  for _, n in ipairs(self.names) do self.offered[n] = true end
  -- Approval: with a ruleset, a tool needs it when its operation's default is "ask"; without
  -- one, the two flags decide (writes off, shell on by default, as the reference).
  self.approval = {}
  for _, n in ipairs(self.names) do
    local kind = APPROVAL_KIND[n]
    if kind and opts.permissions then
      self.approval[n] = M.operation_default(opts.permissions, M.TOOL_OPERATIONS[n]) == "ask"
    elseif kind == "write" then
      self.approval[n] = opts.require_write_approval == true
    elseif kind == "execute" then
      self.approval[n] = opts.require_execute_approval ~= false
    else
      self.approval[n] = false
    end
  end
  return self
end

-- Whether a host should ask a human before running this tool (definitions carry it too).
function Toolset:requires_approval(name)
  return self.approval[name] == true
end

function Toolset:system_prompt()
  return descriptions.system_prompt(self.edit_format)
end

-- The tool text for a tool, with a user override applied.
function Toolset:_text(name)
  local base = descriptions.TOOL_TEXT[descriptions.text_key(name, self.edit_format)]
  local o = self.overrides[name]
  if o == nil then return base, descriptions.render(base, self.profile) end
  if type(o) == "string" then return base, o end
  local merged = {}
  for k, v in pairs(base) do merged[k] = v end
  for k, v in pairs(o) do merged[k] = v end
  local args = {}
  for k, v in pairs(base.args or {}) do args[k] = v end
  for k, v in pairs(o.args or {}) do args[k] = v end
  merged.args = args
  return merged, descriptions.render(merged, self.profile)
end

function Toolset:_params(name)
  local params = PARAMS[name]
  if name == "grep" then
    local copy = {}
    for i, p in ipairs(params) do
      copy[i] = p
      if p.name == "ignore_hidden" then
        copy[i] = setmetatable({ default = self.default_ignore_hidden }, { __index = p })
      end
    end
    return copy
  end
  return params
end

-- { {name, description, parameters, requires_approval}, ... } in a stable order; parameters is
-- a JSON Schema object accepted as-is by OpenAI function calling, Anthropic tool use and MCP
-- tools/list.
function Toolset:definitions()
  local defs = {}
  for _, name in ipairs(self.names) do
    local text, description = self:_text(name)
    local properties, required = {}, {}
    for _, p in ipairs(self:_params(name)) do
      local prop = { type = p.type, description = text.args[p.name] or p.name }
      if p.enum then prop.enum = { table.unpack(p.enum) } end
      if p.minimum then prop.minimum = p.minimum end
      if p.default ~= nil then prop.default = p.default end
      properties[p.name] = prop
      if p.required then required[#required + 1] = p.name end
    end
    local schema = { type = "object", properties = properties, additionalProperties = false }
    if #required > 0 then schema.required = required end
    defs[#defs + 1] = { name = name, description = description, parameters = schema,
      requires_approval = self.approval[name] }
  end
  return defs
end

-- Names of the offered tools, in definition order.
function Toolset:tools()
  return { table.unpack(self.names) }
end

local TOOLS = {}

local function strip_position(msg)
  if type(msg) ~= "string" then msg = tostring(msg) end
  return (msg:gsub("^[^\n:]*%.lua:%d+: ", ""))
end

-- Runs a tool; never raises. Returns the answer (text or a content part), whether it is an
-- error, and for the tools in OUTPUT_SCHEMAS the same answer as data (MCP structuredContent).
function Toolset:call(name, args)
  if type(name) ~= "string" or not self.offered[name] then
    return ("Error: Unknown tool '%s'. Available tools: %s."):format(tostring(name), table.concat(self.names, ", ")),
      true
  end
  local a, why = validate(name, self:_params(name), args)
  if not a then return "Error: " .. why, true end
  local ok, result, structured = xpcall(TOOLS[name], function(e)
    return { msg = strip_position(e), trace = debug.traceback(tostring(e), 2) }
  end, self, a)
  if not ok then
    pcall(self.on_error, ("tool %s raised: %s"):format(name, result.trace))
    return err(result.msg), true
  end
  return result, type(result) == "string" and result:find("^Error:") ~= nil, structured
end

---------------------------------------------------------------------------------------------
-- Tracking helpers (methods so the lock can be task-aware).

function Toolset:_track(path, bytes)
  per_backend(fingerprints, self.raw_backend)[path_key(path)] = codec.sha256(bytes)
end

function Toolset:_tracked(path)
  return per_backend(fingerprints, self.raw_backend)[path_key(path)]
end

-- Best-effort re-read after a change so the next edit's staleness check has a baseline.
function Toolset:_retrack(path)
  local bytes = self.backend:read_bytes(path)
  if type(bytes) == "string" then self:_track(path, bytes) end
end

function Toolset:_stale(path)
  local fp = self:_tracked(path)
  if not fp then return false end
  local bytes = self.backend:read_bytes(path)
  if type(bytes) ~= "string" then return false end -- gone: the edit itself reports it
  return codec.sha256(bytes) ~= fp
end

-- Serializes edits of one path. Inside a task a second editor waits (moonbox.sleep yields to
-- the scheduler, so the holder can finish); anywhere else a held lock can only mean re-entry
-- or a plain coroutine that cannot wait, and the edit is refused rather than deadlocking.
function Toolset:_lock(path)
  local held = per_backend(locks, self.raw_backend)
  local key = path_key(path)
  local deadline
  while held[key] ~= nil do
    local mb = require "moonbox"
    local waitable = mb.in_task and mb.in_task()
    deadline = deadline or (waitable and mb.now() + M.LOCK_WAIT)
    if not waitable or mb.now() > deadline then
      return nil, ("Error: '%s' is being edited by another call; try again."):format(path)
    end
    mb.sleep(0.001)
  end
  held[key] = true
  return setmetatable({}, { __close = function() held[key] = nil end })
end

local STALE = "Error: '%s' changed since you last read it. Read it again before editing so your change "
  .. "applies to the current contents."

---------------------------------------------------------------------------------------------
-- The tools. Each gets the toolset and validated arguments and returns the answer.

function TOOLS.ls(self, a)
  local entries, msg, code = self.backend:ls(a.path)
  if entries == nil and code ~= "ENOENT" and code ~= "ENOTDIR" then return err(msg) end
  if entries == nil or #entries == 0 then
    return ("Directory '%s' is empty or does not exist"):format(a.path)
  end
  local out = { ("Contents of %s:"):format(a.path) }
  for _, e in ipairs(entries) do
    if e.is_dir then
      out[#out + 1] = "  " .. e.name .. "/"
    elseif e.size then
      out[#out + 1] = ("  %s (%s bytes)"):format(e.name, tostring(math.tointeger(e.size) or e.size))
    else
      out[#out + 1] = "  " .. e.name
    end
  end
  return table.concat(out, "\n")
end

-- Images and PDFs as content parts when enabled; nil when the path is not one.
function Toolset:_media(path)
  local ext = extension(path)
  local kind, media_type, limit, label
  if self.image_support and M.IMAGE_MEDIA_TYPES[ext] then
    kind, media_type, limit, label = "image", M.IMAGE_MEDIA_TYPES[ext], self.max_image_bytes, "Image"
  elseif self.document_support and M.DOCUMENT_MEDIA_TYPES[ext] then
    kind, media_type, limit, label = "document", M.DOCUMENT_MEDIA_TYPES[ext], self.max_document_bytes, "Document"
  else
    return nil
  end
  local bytes, msg, code = self.backend:read_bytes(path)
  if bytes == nil and code ~= "ENOENT" and code ~= "EISDIR" then return err(msg) end
  if bytes == nil or bytes == "" then return ("Error: %s file '%s' not found or empty"):format(label, path) end
  if #bytes > limit then
    return ("Error: %s '%s' too large (%.1fMB, max %.1fMB)"):format(label, path, #bytes / M.MIB, limit / M.MIB)
  end
  return { type = kind, media_type = media_type, data = codec.base64_encode(bytes) }
end

local function not_found(path)
  return ("Error: File '%s' not found. Check the path with `ls` or `glob`, then read it again."):format(path)
end

function TOOLS.read_file(self, a)
  local media = self:_media(a.path)
  if media then return media end
  if self.edit_format == "hashline" then
    local bytes, msg, code = self.backend:read_bytes(a.path)
    if bytes == nil or (bytes == "" and not self.backend:exists(a.path)) then
      if bytes == nil and code ~= "ENOENT" then return err(msg) end
      return not_found(a.path)
    end
    if is_binary(bytes) then
      return ("Error: File '%s' is binary and cannot be shown as text."):format(a.path)
    end
    local text, why = hashline.format(bytes, a.offset, a.limit, self.hash_len)
    if not text then return err(why) end
    self:_track(a.path, bytes)
    return text
  end
  local text, msg, code = self.backend:read(a.path, a.offset, a.limit)
  if text == nil then return code == "ENOENT" and not_found(a.path) or err(msg) end
  if text:find("^Error") then return text end -- a backend that answers failures as text
  self:_retrack(a.path)
  if text == "" then return "(the file is empty)" end
  return text
end

function TOOLS.write_file(self, a)
  local result, msg = self.backend:write(a.path, a.content)
  if result == nil then return err(msg) end
  if type(result) == "table" and result.error then return err(result.error) end
  self:_track(a.path, a.content)
  local where = type(result) == "table" and result.path or a.path
  return ("Wrote %d lines to %s"):format(count_lines(a.content), where)
end

function TOOLS.edit_file(self, a)
  local lock <close>, busy = self:_lock(a.path)
  if not lock then return busy end
  if self:_stale(a.path) then return STALE:format(a.path) end
  local result, msg, code = self.backend:edit(a.path, a.old_string, a.new_string, a.replace_all)
  if result == nil then return code == "ENOENT" and not_found(a.path) or err(msg) end
  if type(result) == "table" and result.error then return err(result.error) end
  self:_retrack(a.path)
  local where = type(result) == "table" and result.path or a.path
  local n = type(result) == "table" and result.occurrences or 1
  return ("Edited %s: replaced %d occurrence(s)"):format(where, n)
end

function TOOLS.hashline_edit(self, a)
  local lock <close>, busy = self:_lock(a.path)
  if not lock then return busy end
  local bytes, msg, code = self.backend:read_bytes(a.path)
  if bytes == nil or (bytes == "" and not self.backend:exists(a.path)) then
    if bytes == nil and code ~= "ENOENT" then return err(msg) end
    return not_found(a.path)
  end
  local fp = self:_tracked(a.path)
  if fp and codec.sha256(bytes) ~= fp then return STALE:format(a.path) end
  if is_binary(bytes) then
    return ("Error: File '%s' is binary and cannot be edited as text."):format(a.path)
  end
  local edit = { start_line = a.start_line, start_hash = a.start_hash, new_content = a.new_content,
    end_line = a.end_line, end_hash = a.end_hash, insert_after = a.insert_after }
  local new, summary = hashline.apply(bytes, edit, self.hash_len)
  if not new then return err(summary) end
  local result, wmsg = self.backend:write(a.path, new)
  if result == nil then return err(wmsg) end
  if type(result) == "table" and result.error then return err(result.error) end
  self:_track(a.path, new)
  local where = type(result) == "table" and result.path or a.path
  return ("Edited %s: %s"):format(where, summary)
end

function TOOLS.glob(self, a)
  local entries, msg, code = self.backend:glob(a.pattern, a.path)
  if entries == nil and code ~= "ENOENT" and code ~= "ENOTDIR" then return err(msg) end
  if entries == nil or #entries == 0 then
    return ("No files matching '%s' in %s"):format(a.pattern, a.path)
  end
  local out = { ("Found %d file(s) matching '%s':"):format(#entries, a.pattern) }
  for i = 1, math.min(#entries, M.GLOB_RESULT_LIMIT) do
    local e = entries[i]
    out[#out + 1] = "  " .. (type(e) == "table" and e.path or tostring(e))
  end
  if #entries > M.GLOB_RESULT_LIMIT then
    out[#out + 1] = ("  ... and %d more"):format(#entries - M.GLOB_RESULT_LIMIT)
  end
  return table.concat(out, "\n")
end

function TOOLS.grep(self, a)
  local opts = { path = a.path, glob = a.glob_pattern, ignore_hidden = a.ignore_hidden, ignore_case = a.ignore_case }
  local matches, msg = self.backend:grep(a.pattern, opts)
  if matches == nil then return err(msg) end
  if type(matches) == "string" then return matches end -- a backend that answers failures as text
  if #matches == 0 then return ("No matches for '%s'"):format(a.pattern) end
  local limit = M.GREP_RESULT_LIMIT
  if a.output_mode == "count" then
    return ("Found %d match(es) for '%s'"):format(#matches, a.pattern)
  elseif a.output_mode == "content" then
    local out = { ("Matches for '%s':"):format(a.pattern) }
    for i = 1, math.min(#matches, limit) do
      local m = matches[i]
      out[#out + 1] = ("  %s:%s: %s"):format(m.path, tostring(math.tointeger(m.line_number) or m.line_number),
        cut(m.line or "", M.GREP_LINE_WIDTH))
    end
    if #matches > limit then out[#out + 1] = ("  ... and %d more matches"):format(#matches - limit) end
    return table.concat(out, "\n")
  end
  local seen, paths = {}, {}
  for _, m in ipairs(matches) do
    if not seen[m.path] then
      seen[m.path] = true
      paths[#paths + 1] = m.path
    end
  end
  table.sort(paths)
  local out = { ("Files containing '%s':"):format(a.pattern) }
  for i = 1, math.min(#paths, limit) do out[#out + 1] = "  " .. paths[i] end
  if #paths > limit then out[#out + 1] = ("  ... and %d more files"):format(#paths - limit) end
  return table.concat(out, "\n")
end

function TOOLS.execute(self, a)
  if not has(self.backend, "execute") then return "Error: Backend does not support command execution" end
  local r, msg = self.backend:execute(a.command, { timeout = a.timeout })
  if r == nil then return err(msg) end
  local out = r.output or ((r.stdout or "") .. (r.stderr or ""))
  if r.truncated then out = out .. "\n\n... (output truncated)" end
  if r.timed_out then
    return ("Command failed (exit code 124):\n%s%sError: Command timed out after %d seconds"):format(out,
      out ~= "" and "\n\n" or "", a.timeout), { exit_code = 124, output = out, timed_out = true,
      truncated = r.truncated == true }
  end
  local code = r.exit_code
  local data = { exit_code = math.tointeger(code), output = out, timed_out = false, truncated = r.truncated == true }
  if code ~= nil and code ~= 0 then
    return ("Command failed (exit code %s):\n%s"):format(tostring(code), out), data
  end
  if out == "" then return "(no output)", data end
  return out, data
end

local function supports_background(backend)
  return has(backend, "spawn") and has(backend, "read_output") and has(backend, "kill") and has(backend, "list")
end

local NO_BACKGROUND = "Error: Backend does not support background processes"

local function shell_id(e)
  return e.id or e.shell_id
end

function TOOLS.run_in_background(self, a)
  if not supports_background(self.backend) then return NO_BACKGROUND end
  local id, extra = self.backend:spawn(a.command)
  if id == nil then return err(extra) end
  local pid
  if type(id) == "table" then
    id, pid = shell_id(id), id.pid
  elseif math.type(extra) == "integer" then
    pid = extra
  end
  if pid == nil then
    for _, e in ipairs(self.backend:list() or {}) do
      if shell_id(e) == id then pid = e.pid end
    end
  end
  return ("Started background shell %s%s.\nUse read_output('%s') to follow its output and kill_shell('%s') to stop it.")
    :format(id, pid and (" (pid " .. pid .. ")") or "", id, id)
end

function TOOLS.read_output(self, a)
  if not supports_background(self.backend) then return NO_BACKGROUND end
  local r, msg, code = self.backend:read_output(a.shell_id)
  if r == nil then
    if code == "ENOENT" or code == "NOT_FOUND" or (msg and msg:find("No such")) then
      return ("Error: No such background shell '%s'. Use list_shells to see the shells that exist."):format(a.shell_id)
    end
    return err(msg)
  end
  local status = r.running and ("[%s] running"):format(a.shell_id)
    or ("[%s] exited (code %s)"):format(a.shell_id, r.exit_code == nil and "unknown" or tostring(r.exit_code))
  local text = r.output or ((r.stdout or "") .. (r.stderr or ""))
  text = text:match("^%s*(.-)%s*$")
  return status .. "\n" .. (text ~= "" and text or "(no new output)")
end

function TOOLS.kill_shell(self, a)
  if not supports_background(self.backend) then return NO_BACKGROUND end
  local ok, msg, code = self.backend:kill(a.shell_id)
  if ok then return ("Killed background shell %s."):format(a.shell_id) end
  if ok == nil and msg and code ~= "ENOENT" and code ~= "NOT_FOUND" then return err(msg) end
  return ("Background shell %s was already finished or unknown."):format(a.shell_id)
end

function TOOLS.list_shells(self)
  if not supports_background(self.backend) then return NO_BACKGROUND end
  local list, msg = self.backend:list()
  if list == nil then return err(msg) end
  if #list == 0 then return "No background shells." end
  local out = {}
  for _, e in ipairs(list) do
    local state = e.running and "running" or ("exited(%s)"):format(e.exit_code == nil and "?" or tostring(e.exit_code))
    out[#out + 1] = ("%s  %s  %s"):format(shell_id(e), state, e.command or "")
  end
  return table.concat(out, "\n")
end

M.Toolset = Toolset
M.PARAMS = PARAMS
M.validate = validate
M.console_toolset = M.new

return M
