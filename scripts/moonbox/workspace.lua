-- moonbox.workspace: what `moonbox agent` and `moonbox mcp` build from their command lines —
-- a sandbox (or a plain backend) on a root, a permission ruleset from a preset or a tenant
-- policy, and the console capability over them.
--
--   local ws, msg, code = workspace.open {
--     root = "/srv/ws",                 -- default: the current directory
--     preset = "default" | "readonly" | "permissive" | "strict",
--     policy = "tenants/alice.lua",     -- a tenant policy (moonbox.policy); wins over preset
--     policy_timeout = 0.5,             -- its deadline (seconds) for loading and each decide; its
--                                       -- routes are mounted and its decide narrows the rules
--     sandbox = "namespace" | "local" | "docker" | "none" | nil (namespace where supported, else local)
--     edit_format = "str_replace" | "hashline",
--     ask = function(op, target, reason) ... end,   -- decides "ask" rules (may yield); false, why
--                                                  -- refuses with why in the message
--     ask_fallback = "deny" | "error",
--     log = function(line) end,        -- one-line notices (stderr in the CLIs)
--     image_support = true,            -- read_file answers images (and PDFs with
--     document_support = true,         -- document_support) as content parts
--   }
--   ws.backend, ws.capability, ws.toolset, ws.ruleset, ws.policy, ws.sandbox_kind; ws:close()
local M = {}

local PRESETS = { default = "DEFAULT", readonly = "READONLY", permissive = "PERMISSIVE", strict = "STRICT" }
M.PRESET_NAMES = { "default", "readonly", "permissive", "strict" }
M.SANDBOXES = { "namespace", "local", "docker", "none" }

local function cwd()
  local pwd = os.getenv("PWD")
  if pwd and pwd:sub(1, 1) == "/" then return pwd end
  local p = io.popen("pwd")
  local out = p and p:read("l")
  if p then p:close() end
  return out or "/"
end
M.cwd = cwd

local function open_sandbox(kind, root, limits, log)
  local moonbox = require "moonbox"
  if kind == "none" then return moonbox.local_backend { root = root }, "none" end
  if kind == "local" then
    return moonbox.local_sandbox { root = root, timeout = limits.execute_timeout, max_output = limits.max_output },
      "local"
  end
  if kind == "docker" then
    if not moonbox.docker_sandbox then
      return nil, "the docker sandbox is not available in this build", "UNSUPPORTED"
    end
    local sb, msg, code = moonbox.docker_sandbox { volumes = { [root] = "/workspace" },
      memory = limits.memory, pids = limits.pids }
    if not sb then return nil, msg, code end
    return sb, "docker"
  end
  -- namespace, explicitly or by default
  local sb = moonbox.namespace_sandbox { root = root, network = limits.network == true, memory = limits.memory,
    pids = limits.pids }
  local ok, msg = sb:start()
  if ok then return sb, "namespace" end
  if kind == "namespace" then return nil, msg, "UNSUPPORTED" end
  if log then log("namespace sandbox unavailable (" .. tostring(msg) .. "); commands run as host processes") end
  sb:stop()
  return moonbox.local_sandbox { root = root, timeout = limits.execute_timeout, max_output = limits.max_output },
    "local"
end

function M.open(opts)
  opts = opts or {}
  local perms = require "moonbox.permissions"
  local moonbox = require "moonbox"
  local root = opts.root or cwd()
  local ruleset, policy, limits = nil, nil, {}
  if opts.policy then
    -- a deadline that a busy machine cannot trip on an honest policy, still short enough to stop
    -- one that loops (moonbox.policy's default, 50 ms of wall-clock time, is for per-call use)
    local p, msg, code = moonbox.policy.load(opts.policy, { timeout = opts.policy_timeout or 0.5 })
    if not p then return nil, "policy " .. opts.policy .. ": " .. tostring(msg), code end
    policy = p
    ruleset = p.ruleset
    limits = p.limits or {}
  end
  if ruleset == nil then
    local name = (opts.preset or "default"):lower()
    if not PRESETS[name] then
      return nil, "unknown preset '" .. tostring(opts.preset) .. "' (use " .. table.concat(M.PRESET_NAMES, ", ")
        .. ")", "INVALID"
    end
    ruleset = perms.presets[PRESETS[name]]
  end
  local kind = opts.sandbox
  if kind ~= nil then
    local known = false
    for _, k in ipairs(M.SANDBOXES) do known = known or k == kind end
    if not known then
      return nil, "unknown sandbox '" .. tostring(kind) .. "' (use " .. table.concat(M.SANDBOXES, ", ") .. ")",
        "INVALID"
    end
  end
  local edit_format = opts.edit_format or "str_replace"
  if edit_format ~= "str_replace" and edit_format ~= "hashline" then
    return nil, "unknown edit format '" .. tostring(edit_format) .. "' (use str_replace or hashline)", "INVALID"
  end
  local backend, kind_or_msg, code = open_sandbox(kind, root, limits, opts.log)
  if not backend then return nil, tostring(kind_or_msg), code end
  -- The tool gate (capability) and the backend guard both consult the rules; an answer given
  -- for one operation on one target is not asked again.
  local ask = opts.ask
  if ask then
    local answers, whys, user_ask = {}, {}, ask
    ask = function(op, target, reason)
      local key = op .. "\0" .. tostring(target)
      if answers[key] == nil then answers[key], whys[key] = user_ask(op, target, reason) end
      return answers[key], whys[key]
    end
  end
  -- A tenant policy's routes are mounted over the sandbox, and its decide narrows the ruleset
  -- under the guard (moonbox.policy: p:composite, p:gate).
  local inner = backend
  if policy then
    if policy.routes and next(policy.routes) then
      local composed, msg, c = policy:composite(inner)
      if not composed then
        if backend.stop then pcall(backend.stop, backend) end
        pcall(policy.close, policy)
        return nil, tostring(msg), c
      end
      inner = composed
    end
    inner = policy:gate(inner, { ask = ask, ask_fallback = opts.ask_fallback or "deny" })
  end
  local guarded = moonbox.guard(inner, ruleset, { ask = ask, ask_fallback = opts.ask_fallback or "deny" })
  local cap = moonbox.console_capability {
    backend = guarded, permissions = ruleset, ask = ask, ask_fallback = opts.ask_fallback or "deny",
    edit_format = edit_format, include_execute = kind_or_msg ~= "none",
    image_support = opts.image_support == true, document_support = opts.document_support == true,
  }
  if policy and policy.tools then
    -- the tenant's tool list: only these are offered, and a call of any other is refused
    local allowed = {}
    for _, n in ipairs(policy.tools) do allowed[n] = true end
    local prepare, before = cap.prepare_tools, cap.before_tool_execute
    cap.prepare_tools = function(defs)
      local kept = {}
      for _, d in ipairs(prepare(defs)) do
        if allowed[d.name] then kept[#kept + 1] = d end
      end
      return kept
    end
    cap.before_tool_execute = function(name, args)
      if not allowed[name] then
        return nil, "Tool '" .. tostring(name) .. "' is not allowed by the tenant policy", "DENIED"
      end
      return before(name, args)
    end
  end
  local ws = {
    root = root, backend = guarded, raw_backend = backend, capability = cap, toolset = cap.toolset,
    ruleset = ruleset, policy = policy, sandbox_kind = kind_or_msg, limits = limits,
  }
  function ws.close()
    if backend.stop then pcall(backend.stop, backend) end
    if policy and policy.close then pcall(policy.close, policy) end
  end
  return ws
end

return M
