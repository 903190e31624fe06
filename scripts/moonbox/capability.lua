-- moonbox.capability: the console toolset packaged for an agent loop, with per-call permission
-- checks (the reference's ConsoleCapability).
--
--   local cap = moonbox.console_capability{ backend = b, permissions = perms.presets.DEFAULT }
--   cap.toolset                        -- the console toolset built with the same options
--   cap.instructions                   -- its system prompt
--   cap.prepare_tools(defs)            --> defs without the tools whose operation is denied for "*"
--   cap.before_tool_execute(name, args) --> true | nil, msg, "DENIED" | "ASK"
--
-- read_file/write_file/edit tools are checked against their `path`, the shell tools against the
-- `command`; ls, glob and grep are filtered by the backend guard, not here. Tools that are not
-- console tools always pass. The checker is moonbox.permissions' (ask callback, ask_fallback).
local toolset = require "moonbox.toolset"

local M = {}

M.SERIALIZATION_NAME = "ConsoleCapability"
M.TOOL_OPERATIONS = toolset.TOOL_OPERATIONS

local PATH_OPS = { read = true, write = true, edit = true }

function M.new(opts)
  if type(opts) ~= "table" then error("console_capability: options must be a table", 2) end
  local ts = toolset.new(opts)
  local cap = { name = M.SERIALIZATION_NAME, toolset = ts, instructions = ts:system_prompt() }
  local checker
  if opts.permissions then
    local perms = require "moonbox.permissions"
    checker = perms.checker(opts.permissions, { ask = opts.ask, ask_fallback = opts.ask_fallback or "error" })
  end
  cap.checker = checker

  function cap.prepare_tools(defs)
    if not checker then return defs end
    local kept = {}
    for _, d in ipairs(defs) do
      local op = M.TOOL_OPERATIONS[d.name]
      if not op or checker:check(op, "*") ~= "deny" then kept[#kept + 1] = d end
    end
    return kept
  end

  function cap.before_tool_execute(name, args)
    local op = M.TOOL_OPERATIONS[name]
    if not checker or not op then return true end
    args = type(args) == "table" and args or {}
    local target
    if PATH_OPS[op] then
      target = args.path or args.file_path or "*"
    elseif op == "execute" then
      target = args.command or "*"
    else
      return true
    end
    if type(target) ~= "string" then target = "*" end
    return checker:authorize(op, target)
  end

  return cap
end

M.console_capability = M.new

return M
