-- moonbox.cli: the `moonbox mcp` and `moonbox agent` commands. main(command, ...) returns an
-- exit status. Each command lives in its own module so one does not load the other's code.
local M = {}

local commands = {
  mcp = "moonbox.mcp_cli",
  agent = "moonbox.agent_cli",
}

function M.main(command, ...)
  local modname = commands[command]
  if modname == nil then
    io.stderr:write("moonbox: unknown command '", tostring(command), "'\n")
    return 2
  end
  return require(modname).main(...)
end

-- What the host runs as its main task: main's status is kept in M.exit_code.
function M.run(command, ...)
  M.exit_code = M.main(command, ...) or 0
end

return M
