-- A sandboxed coder: edits the workspace and runs commands inside a namespace sandbox with no
-- network, bounded memory and process count; secrets stay unreadable and dangerous commands
-- stay denied (the DEFAULT preset's rules), and decide() adds what globs cannot say.
--
-- A tenant policy (README "Tenant policies"): it runs in a restricted Lua state and sees the
-- permission presets as the read-only global `presets`; it returns plain data and may export
-- decide(request), which the host calls for every check under the same memory and time caps.
local ruleset = clone(presets.DEFAULT)
ruleset.write.default = "allow"
ruleset.edit.default = "allow"
ruleset.execute.default = "allow"

-- Commands that would need the network the sandbox does not have: refuse them with a reason
-- the model can act on, instead of letting them hang until the timeout.
local NETWORK_TOOLS = { "curl", "wget", "ssh", "scp", "nc", "pip", "npm" }

local function decide(request)
  local op, target = request.operation, request.target
  if op == "execute" then
    for _, tool in ipairs(NETWORK_TOOLS) do
      if target:find("%f[%w]" .. tool .. "%f[^%w]") then
        return "deny", tool .. " needs the network, and this sandbox has none"
      end
    end
  elseif (op == "write" or op == "edit") and target:match("^/%.git/") then
    return "deny", "the git directory belongs to the host"
  end
  return nil -- the ruleset's answer stands
end

return {
  name = "coder",
  description = "Edits the workspace and runs commands in a sandbox without network.",
  ruleset = ruleset,
  limits = { execute_timeout = 120, max_output = 100000, memory = "1G", pids = 256, network = false },
  tools = { "ls", "read_file", "write_file", "edit_file", "glob", "grep", "execute" },
  routes = { ["/memories/"] = { backend = "state" } },
  decide = decide,
}
