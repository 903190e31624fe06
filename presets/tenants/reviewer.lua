-- A read-only reviewer: reads, searches and lists the workspace, never writes, edits or runs.
--
-- A tenant policy (README "Tenant policies"): it runs in a restricted Lua state and sees the
-- permission presets as the read-only global `presets`; it returns plain data.
local read_rules = {}
for _, rule in ipairs(presets.READONLY.read.rules) do read_rules[#read_rules + 1] = rule end
-- Reviewers see the code, not the team's private notes.
read_rules[#read_rules + 1] = {
  pattern = "**/private/**", action = "deny", description = "Reviewers do not read private notes",
}

local ruleset = clone(presets.READONLY)
ruleset.read.rules = read_rules
ruleset.grep = { default = "allow", rules = read_rules }

return {
  name = "reviewer",
  description = "Reads and searches the workspace; cannot change it or run commands.",
  ruleset = ruleset,
  limits = { execute_timeout = 1, max_output = 20000, network = false, pids = 1 },
  tools = { "ls", "read_file", "glob", "grep" },
}
