-- moonbox.policy: tenant policy scripts.
--
--   local p, err, code = moonbox.policy.load("tenants/alice.lua", { memory = 8 << 20, timeout = 0.05 })
--   p.ruleset, p.limits, p.tools, p.routes     -- plain data, validated
--   p:decide{ operation = "read", target = "/a" }  --> action, reason   (if the policy exports decide)
--   p:check("read", "/a")                       --> action, reason     (ruleset; decide may narrow)
--   p:gate(backend [, { ask =, ask_fallback = }]) --> backend with decide's verdicts applied
--   p:composite(default [, makers])             --> default with the policy's routes mounted
--   p:log() ; p:close()
--
-- A policy runs in its own restricted Lua state (moonbox.restricted: base/string/table/math/utf8
-- only, text chunks only, a memory cap and a deadline), sees the permission presets as the
-- read-only global `presets`, and returns a table. Only plain data leaves it; `decide` stays
-- inside and runs under the same caps on every call. Failures: nil, msg, CODE with CODE one of
-- ENOENT / EACCES (the file), INVALID (syntax, bytecode, forbidden global, runtime error, bad
-- result), TIMEOUT, ENOMEM.
local restricted = require "moonbox.restricted"

local M = {}

local ACTIONS = { allow = true, deny = true, ask = true }
local LOAD_OPTIONS = { memory = true, timeout = true, max_depth = true, max_items = true,
                       presets = true, name = true }
local FIELDS = { ruleset = true, limits = true, tools = true, routes = true, name = true,
                 description = true }
local LIMITS = {
  execute_timeout = function(v) return type(v) == "number" and v > 0, "a number of seconds > 0" end,
  max_output = function(v) return math.type(v) == "integer" and v > 0, "an integer number of bytes > 0" end,
  pids = function(v) return math.type(v) == "integer" and v > 0, "an integer > 0" end,
  network = function(v) return type(v) == "boolean", "a boolean" end,
  memory = function(v)
    if math.type(v) == "integer" then return v > 0, "bytes > 0" end
    return type(v) == "string" and v:match("^%d+[KkMmGg]?$") ~= nil,
      "an integer number of bytes or a size such as \"512M\""
  end,
}

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

local function perms()
  local ok, mod = pcall(require, "moonbox.permissions")
  if ok then return mod end
  return nil, mod
end

-- The presets as plain data: tables, strings, numbers and booleans (create_ruleset is a function
-- and stays behind).
local function plain(v, depth)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return v end
  if t ~= "table" or depth > 32 then return nil end
  local out = {}
  for k, x in pairs(v) do
    local kt = type(k)
    if kt == "string" or kt == "number" or kt == "boolean" then out[k] = plain(x, depth + 1) end
  end
  return out
end

local function default_presets()
  local p = perms()
  if p and type(p.presets) == "table" then return p.presets end
  local paths = package.loaded["moonbox.paths"] or {}
  local ok, data = pcall(dofile, (paths.presets or "presets") .. "/permissions.lua")
  if ok and type(data) == "table" then return data end
  return {}
end

local Policy = {}
Policy.__index = Policy

local function fail(name, fmt, ...)
  return nil, name .. ": " .. string.format(fmt, ...), "INVALID"
end

local function validate_ruleset(name, value, presets)
  if type(value) == "string" then
    if type(presets[value]) ~= "table" then
      return fail(name, "ruleset names no preset '%s' (presets: %s)", value,
                  table.concat(sorted_keys(presets), ", "))
    end
    value = presets[value]
  elseif type(value) ~= "table" then
    return fail(name, "ruleset must be a table or a preset name, not a %s", type(value))
  end
  local p, err = perms()
  if not p then return nil, name .. ": cannot validate the ruleset: " .. tostring(err), "INVALID" end
  local ok, ruleset = pcall(p.ruleset, value)
  if not ok then return fail(name, "ruleset: %s", tostring(ruleset):gsub("^[^:]*:%d+: ", "")) end
  return ruleset
end

local function validate_limits(name, limits)
  if limits == nil then return {} end
  if type(limits) ~= "table" then return fail(name, "limits must be a table, not a %s", type(limits)) end
  for k, v in pairs(limits) do
    local check = LIMITS[k]
    if not check then
      return fail(name, "limits.%s is not a known limit (known: %s)", tostring(k),
                  table.concat(sorted_keys(LIMITS), ", "))
    end
    local ok, want = check(v)
    if not ok then return fail(name, "limits.%s must be %s", k, want) end
  end
  return limits
end

local function tool_name_ok(n) return type(n) == "string" and n:match("^[%a_][%w_]*$") ~= nil end

local function validate_tools(name, tools)
  if tools == nil then return nil end
  if type(tools) ~= "table" then return fail(name, "tools must be a list of tool names") end
  local list, seen = {}, {}
  if #tools > 0 then
    for k, v in pairs(tools) do
      if math.type(k) ~= "integer" or k < 1 or k > #tools then
        return fail(name, "tools mixes a list with the key %s", tostring(k))
      end
      if not tool_name_ok(v) then return fail(name, "tools[%d] is not a tool name", k) end
      if seen[v] then return fail(name, "tools lists '%s' twice", v) end
      seen[v] = true
    end
    for i = 1, #tools do list[i] = tools[i] end
  else
    for _, k in ipairs(sorted_keys(tools)) do
      local v = tools[k]
      if not tool_name_ok(k) or type(v) ~= "boolean" then
        return fail(name, "tools must be a list of names or a map of name = true/false (at %s)", k)
      end
      if v then list[#list + 1] = k end
    end
  end
  return list
end

local function validate_routes(name, routes)
  if routes == nil then return nil end
  if type(routes) ~= "table" then return fail(name, "routes must be a table of prefix = backend") end
  local out = {}
  for prefix, spec in pairs(routes) do
    if type(prefix) ~= "string" or prefix:sub(1, 1) ~= "/" or prefix:find("..", 1, true)
        or prefix:match("^/+$") then
      return fail(name, "routes: %q is not a route prefix (an absolute path like \"/memories/\", "
                  .. "without '..')", tostring(prefix))
    end
    if type(spec) ~= "table" or type(spec.backend) ~= "string" or not spec.backend:match("^[%w_]+$") then
      return fail(name, "routes[%q] must be a table with a backend name, e.g. { backend = \"state\" }",
                  prefix)
    end
    local key = prefix:gsub("/+$", "") .. "/"
    if out[key] then return fail(name, "routes: %q is given twice", key) end
    out[key] = spec
  end
  return out
end

local function build(name, result, presets, state)
  if type(result) ~= "table" then
    return fail(name, "must return a table { ruleset =, limits =, tools =, routes = }, not %s",
                result == nil and "nothing" or ("a " .. type(result)))
  end
  for k in pairs(result) do
    if not FIELDS[k] then
      return fail(name, "returned an unknown field '%s' (known: %s, and the function decide)",
                  tostring(k), table.concat(sorted_keys(FIELDS), ", "))
    end
  end
  if result.ruleset == nil then return fail(name, "must set ruleset (a table or a preset name)") end
  local p = { name = name, _state = state, _decide = state:has("decide") }
  local err, code
  p.ruleset, err, code = validate_ruleset(name, result.ruleset, presets)
  if not p.ruleset then return nil, err, code end
  p.limits, err, code = validate_limits(name, result.limits)
  if not p.limits then return nil, err, code end
  p.tools, err, code = validate_tools(name, result.tools)
  if err then return nil, err, code end
  p.routes, err, code = validate_routes(name, result.routes)
  if err then return nil, err, code end
  for _, k in ipairs({ "name", "description" }) do
    if result[k] ~= nil and type(result[k]) ~= "string" then return fail(name, "%s must be a string", k) end
  end
  p.name = result.name or name
  p.description = result.description
  return setmetatable(p, Policy)
end

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("policy.load: opts must be a table", 3) end
  for k in pairs(opts) do
    if not LOAD_OPTIONS[k] then
      error(string.format("policy.load: unknown option '%s' (known: %s)", tostring(k),
                          table.concat(sorted_keys(LOAD_OPTIONS), ", ")), 3)
    end
  end
  return opts
end

--- Loads a policy from source text; `name` names it in messages.
function M.load_string(source, opts)
  if type(source) ~= "string" then error("policy.load_string: source must be a string", 2) end
  opts = check_options(opts)
  local name = opts.name or "policy"
  local state, err, code = restricted.new{ memory = opts.memory, timeout = opts.timeout,
                                           max_depth = opts.max_depth, max_items = opts.max_items }
  if not state then return nil, err, code end
  local presets = opts.presets or default_presets()
  state:set("presets", plain(presets, 1) or {}, true)
  local result
  result, err, code = state:run(source, "=" .. name)
  local p
  if err == nil then p, err, code = build(name, result, presets, state) end
  if not p then
    state:close()
    return nil, err, code
  end
  if not p._decide then -- nothing runs later: free the state now
    state:close()
    p._state = nil
  end
  return p
end

--- Loads a policy file.
function M.load(file, opts)
  if type(file) ~= "string" then error("policy.load: file must be a path string", 2) end
  opts = check_options(opts)
  local f, err, errno = io.open(file, "rb")
  if not f then
    return nil, "policy: cannot open " .. tostring(err), errno == 2 and "ENOENT" or "EACCES"
  end
  local limit = opts.memory or (8 << 20)
  local source = f:read(limit + 1)
  f:close()
  source = source or ""
  if #source > limit then
    return nil, string.format("%s: is larger than the policy memory limit (%d bytes)", file, limit),
      "ENOMEM"
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.name = o.name or file
  return M.load_string(source, o)
end

--- Calls the policy's decide(request) under its caps: action, reason | nil, msg, CODE.
function Policy:decide(request)
  if type(request) ~= "table" then error("policy:decide: request must be a table", 2) end
  if not self._decide then return nil, self.name .. ": exports no decide function", "INVALID" end
  if not self._state then error("attempt to use a closed moonbox.policy", 2) end
  local ok, action, reason = self._state:call("decide", request)
  if not ok then return nil, action, reason end -- TIMEOUT, ENOMEM, INVALID
  if action == nil then return nil, nil end -- no opinion
  if not ACTIONS[action] then
    return nil, string.format("%s: decide returned %s; expected \"allow\", \"deny\", \"ask\" or nil",
                              self.name, type(action) == "string" and string.format("%q", action)
                              or ("a " .. type(action))), "INVALID"
  end
  if reason ~= nil and type(reason) ~= "string" then
    return nil, self.name .. ": decide's reason must be a string", "INVALID"
  end
  return action, reason
end

--- True when the policy exports decide.
function Policy:has_decide() return self._decide end

local SEVERITY = { allow = 1, ask = 2, deny = 3 }

-- The ruleset's action for (operation, target), its reason, and the rule as plain data.
function Policy:_ruleset_verdict(operation, target)
  if self._checker == nil then self._checker = assert(perms()).checker(self.ruleset) end
  local action, rule = self._checker:check(operation, target)
  local reason = type(rule) == "table" and rule.description ~= "" and rule.description or nil
  return action, reason, type(rule) == "table" and plain(rule, 1) or nil
end

-- What decide adds to a ruleset verdict: a stricter action and its reason, or nil. A decide that
-- fails (error, deadline, memory) denies: a broken policy never lets more in.
function Policy:_stricter(operation, target, action, rule)
  if not self._decide then return nil end
  local a, r, code = self:decide{ operation = operation, target = target, action = action, rule = rule }
  if a == nil and code then return "deny", r end
  if a ~= nil and SEVERITY[a] > SEVERITY[action] then return a, r end
  return nil
end

--- The verdict for (operation, target): the ruleset's, unless decide answers something stricter
--- (deny > ask > allow, as for the simple commands of a line). decide can narrow what the
--- ruleset allows, never widen it: to allow more, the policy changes its ruleset.
function Policy:check(operation, target)
  local action, reason, rule = self:_ruleset_verdict(operation, target)
  local a, r = self:_stricter(operation, target, action, rule)
  if a then return a, r end
  return action, reason
end

local function denied(operation, target, reason)
  local msg = string.format("Permission denied for %s on '%s'", operation, target)
  if reason and reason ~= "" then msg = msg .. ": " .. reason end
  return nil, msg, "DENIED"
end

--- Wraps a backend or sandbox so decide's verdicts apply to it: what decide denies is refused
--- (nil, msg, "DENIED") before the backend is called, ls/glob drop entries it denies, grep drops
--- matches in files it denies for grep or read; an "ask" goes to opts.ask (true or "allow"
--- allows), else opts.ask_fallback ("deny", the default, or "error": nil, msg, "ASK"). Put it
--- under moonbox.guard(backend, p.ruleset), which applies the ruleset. Everything else is the
--- backend's own.
function Policy:gate(backend, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("policy:gate: opts must be a table", 2) end
  local ask, fallback = opts.ask, opts.ask_fallback or "deny"
  local p = self
  if not p._decide then return backend end
  local function stricter(op, target)
    local action, _, rule = p:_ruleset_verdict(op, target)
    return p:_stricter(op, target, action, rule)
  end
  -- nil when allowed, else nil, msg, CODE
  local function refuse(op, target)
    if type(target) ~= "string" then return nil end -- the backend raises for the bad argument
    local a, reason = stricter(op, target)
    if a == nil then return nil end
    if a == "ask" then
      if ask then
        local ok, yes = pcall(ask, op, target, reason)
        if ok and (yes == true or yes == "allow") then return nil end
        return denied(op, target, reason)
      end
      if fallback == "error" then
        local msg = string.format("Permission required for %s on '%s'", op, target)
        return nil, reason and (msg .. ": " .. reason) or msg, "ASK"
      end
      return denied(op, target, (reason and (reason .. " ") or "") .. "(approval required)")
    end
    return denied(op, target, reason)
  end
  local function hidden(op, path) return type(path) == "string" and stricter(op, path) == "deny" end
  local g = setmetatable({}, {
    __index = function(_, k)
      local v = backend[k]
      if type(v) == "function" then return function(_, ...) return v(backend, ...) end end
      return v
    end,
    __name = "moonbox.policy.Gate",
  })
  -- method calls written out, so the backend's own argument errors name the method
  local calls = {
    read = function(t, ...) return backend:read(t, ...) end,
    read_bytes = function(t) return backend:read_bytes(t) end,
    write = function(t, ...) return backend:write(t, ...) end,
    edit = function(t, ...) return backend:edit(t, ...) end,
    execute = function(t, ...) return backend:execute(t, ...) end,
    spawn = function(t, ...) return backend:spawn(t, ...) end,
  }
  local function gated(op, method)
    return function(_, target, ...)
      local _, msg, code = refuse(op, target)
      if msg then return nil, msg, code end
      return calls[method](target, ...)
    end
  end
  g.read, g.read_bytes = gated("read", "read"), gated("read", "read_bytes")
  g.write, g.edit = gated("write", "write"), gated("edit", "edit")
  if backend.execute then g.execute = gated("execute", "execute") end
  if backend.spawn then g.spawn = gated("execute", "spawn") end
  function g.exists(_, path) return backend:exists(path) end
  local function filtered(op, list, ...)
    if type(list) ~= "table" then return list, ... end
    local out = {}
    for _, e in ipairs(list) do
      if not hidden(op, e.path) then out[#out + 1] = e end
    end
    return out
  end
  function g.ls(_, path) return filtered("ls", backend:ls(path)) end
  function g.glob(_, pattern, path) return filtered("glob", backend:glob(pattern, path)) end
  function g.grep(_, pattern, gopts)
    local list, msg, code = backend:grep(pattern, gopts)
    if type(list) ~= "table" then return list, msg, code end
    local verdict, out = {}, {}
    for _, m in ipairs(list) do
      local path = m.path
      if verdict[path] == nil then verdict[path] = not (hidden("grep", path) or hidden("read", path)) end
      if verdict[path] then out[#out + 1] = m end
    end
    return out
  end
  return g
end

local function state_route(spec)
  return require("moonbox").state_backend{ files = spec.files }
end

--- A composite backend with the policy's routes mounted over `default`. Each route's backend is
--- makers[spec.backend](spec, prefix) (a backend, or nil, msg, CODE). Only "state" is built in: a
--- tenant must not choose host directories, so a host that offers "local" routes passes a maker
--- that decides where they live.
function Policy:composite(default, makers)
  if makers ~= nil and type(makers) ~= "table" then error("policy:composite: makers must be a table", 2) end
  makers = makers or {}
  local routes = {}
  for prefix, spec in pairs(self.routes or {}) do
    local make = makers[spec.backend] or (spec.backend == "state" and state_route)
    if not make then
      return nil, string.format("%s: route %s asks for a '%s' backend, which this host does not offer",
                                self.name, prefix, spec.backend), "INVALID"
    end
    local b, err, code = make(spec, prefix)
    if not b then return nil, err, code end
    routes[prefix] = b
  end
  return require("moonbox.composite").composite_backend{ default = default, routes = routes }
end

--- Lines the policy printed (at most 200, each at most 1 KiB).
function Policy:log()
  if not self._state then return {} end
  return self._state:log()
end

--- Releases the policy's state; idempotent.
function Policy:close()
  if self._state then self._state:close() end
  self._state = nil
end

Policy.__close = Policy.close
Policy.__name = "moonbox.policy"

return M
