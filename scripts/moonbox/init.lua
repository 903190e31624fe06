-- moonbox: the public entry point.
--
-- Every public name is resolved on first use from the registry below (module, field), so a
-- script that only checks permissions loads no Docker or HTTP code. A field of nil means the
-- module itself is the value (moonbox.hashline, moonbox.runtimes).
local M = {}

local paths = package.loaded["moonbox.paths"] or {}
M.version = paths.version
M.paths = paths

-- name = { module, field }; add a line here when a module adds a public name.
local registry = {
  monotonic = { "moonbox.core", "monotonic" },
  hashline = { "moonbox.hashline" },
  local_backend = { "moonbox.guard", "local_backend" }, -- moonbox.localfs, guarded on request
  codec = { "moonbox.codec" },
  console_toolset = { "moonbox.toolset", "new" },
  console_capability = { "moonbox.capability", "new" },
  state_backend = { "moonbox.state", "new" },
  -- tasks and the loop (modules/task)
  spawn = { "moonbox.task", "spawn" },
  sleep = { "moonbox.task", "sleep" },
  now = { "moonbox.task", "now" },
  run = { "moonbox.task", "run" },
  in_task = { "moonbox.task", "in_task" },
  io = { "moonbox.task", "io" },
  -- sandboxes (scripts/moonbox/sandbox.lua over modules/proc)
  local_sandbox = { "moonbox.sandbox", "local_sandbox" },
  sandbox = { "moonbox.sandbox" },
  namespace_sandbox = { "moonbox.namespace_sandbox", "new" },
  docker_sandbox = { "moonbox.docker_sandbox", "new" },
  kubernetes_sandbox = { "moonbox.kubernetes", "new" }, -- scripts/moonbox/kubernetes.lua
  daytona_sandbox = { "moonbox.daytona", "new" }, -- scripts/moonbox/daytona.lua
  permissions = { "moonbox.permissions" },
  -- HTTP on the loop (modules/http)
  http = { "moonbox.http" },
  json = { "moonbox.json" },
  websocket = { "moonbox.websocket" },
  llm = { "moonbox.llm" }, -- providers: scripts/moonbox/llm/
  agent = { "moonbox.agent", "new" },
  runtimes = { "moonbox.runtimes" },
  session_manager = { "moonbox.session", "new" },
  guard = { "moonbox.guard", "guard" },
  guarding = { "moonbox.guard", "guarding" },
  -- tenant policies in a restricted state (scripts/moonbox/policy.lua over modules/restricted)
  policy = { "moonbox.policy" },
  composite_backend = { "moonbox.composite", "composite_backend" },
}

M._registry = registry

setmetatable(M, {
  __index = function(t, name)
    local entry = registry[name]
    if entry == nil then return nil end
    local mod = require(entry[1])
    local value = mod
    if entry[2] ~= nil then value = mod[entry[2]] end
    rawset(t, name, value)
    return value
  end,
})

return M
