-- moonbox.mcp_cli: `moonbox mcp [options]` — the console toolset as an MCP server on stdio.
--
-- stdout carries protocol messages only; notices and errors go to stderr. The server ends when
-- the client closes stdin, killing the commands still running. Exit status: 0 after the client
-- went away, 1 when the workspace cannot be set up, 2 for a usage error.
local M = {}

local USAGE = [[
usage: moonbox mcp [options]

Serves moonbox's console tools (ls, read_file, write_file, edit_file, glob, grep, execute, ...)
to an MCP client over stdio (JSON-RPC 2.0, one message per line).

options:
  --root DIR         the workspace (default: the current directory)
  --preset NAME      permissions: default | readonly | permissive | strict (default: default)
  --policy FILE      a tenant policy script (moonbox.policy) instead of a preset
  --sandbox KIND     namespace | local | docker | none (default: namespace where the kernel
                     allows it, else local)
  --edit-format F    str_replace | hashline (default: str_replace)

A permission that asks is put to the client through elicitation when the client supports it,
and refused otherwise (the refusal names the rule that asked).
]]

local VALUE_FLAGS = { root = true, preset = true, policy = true, sandbox = true, ["edit-format"] = true }

function M.parse_args(argv)
  local opts = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if name == "help" or a == "-h" then
      opts.help = true
    elseif name and VALUE_FLAGS[name] then
      if value == nil then
        i = i + 1
        value = argv[i]
        if value == nil then return nil, "--" .. name .. " needs a value" end
      end
      opts[(name:gsub("%-", "_"))] = value
    elseif name then
      return nil, "unknown option --" .. name
    else
      return nil, "unexpected argument '" .. a .. "'"
    end
    i = i + 1
  end
  return opts
end

function M.main(...)
  local err = function(s)
    io.stderr:write(s)
    io.stderr:flush()
  end
  local opts, perr = M.parse_args { ... }
  if not opts then
    err("moonbox mcp: " .. perr .. "\n" .. USAGE)
    return 2
  end
  if opts.help then
    io.stdout:write(USAGE)
    return 0
  end
  local mcp = require "moonbox.mcp"
  local workspace = require "moonbox.workspace"
  local log = function(line) err("moonbox mcp: " .. line .. "\n") end
  local srv
  local ws, msg = workspace.open {
    root = opts.root, preset = opts.preset, policy = opts.policy, sandbox = opts.sandbox,
    edit_format = opts.edit_format, ask_fallback = "deny", log = log,
    image_support = true, document_support = true,
    ask = function(op, target, reason) return srv:ask(op, target, reason) end,
  }
  if not ws then
    err("moonbox mcp: " .. tostring(msg) .. "\n")
    return 1
  end
  srv = mcp.server { capability = ws.capability, log = log }
  log(("serving %s (sandbox %s) on stdio"):format(ws.root, ws.sandbox_kind))
  mcp.serve { server = srv }
  ws.close()
  return 0
end

return M
