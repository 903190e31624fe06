-- moonbox.session: one sandbox per user session, for multi-user apps (the reference's
-- SessionManager, on moonbox tasks instead of asyncio).
--
--   local sessions = moonbox.session_manager{
--     factory = function(id) return moonbox.local_sandbox{ root = "/srv/ws/" .. id } end,
--     -- or, without a factory, a docker_sandbox per session:
--     default_runtime = "python-minimal", workspace_root = "/srv/ws",
--     idle_timeout = 3600, max_sessions = 100, on_release = function(id) end,
--   }
--   sessions:get_or_create(id [, runtime])  --> sandbox | nil, msg, CODE
--   sessions:release(id)                     --> true | false (unknown id)
--   sessions:cleanup_idle([max_idle])        --> number released
--   sessions:start_cleanup_loop([interval = 300]) / sessions:stop_cleanup_loop()
--   sessions:shutdown()                      --> number released (all at once)
--   sessions:sessions()                      --> a copy: { [id] = sandbox }
--   sessions:count(), sessions:has(id)
--
-- Works with any sandbox: start() / stop() / is_alive() when present (start may return
-- nil, msg, CODE: the session is not registered and the sandbox is stopped). Concurrent
-- get_or_create calls for one id share one sandbox; a dead sandbox is replaced. Idle time comes
-- from the sandbox's `last_activity` (a number or a method) when it has one, else from the last
-- get_or_create of the session. The limit failure is SESSION_LIMIT with the reference's text.
local task = require "moonbox.task"

local M = {}

local Manager = {}
Manager.__index = Manager

local OPTIONS = { factory = "function", default_runtime = "any", idle_timeout = "number", max_sessions = "number",
  workspace_root = "string", on_release = "function", log = "function" }

function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'session_manager' (table expected)", 2) end
  for k, v in pairs(opts) do
    local ty = OPTIONS[k]
    if not ty then error("session_manager: unknown option '" .. tostring(k) .. "'", 2) end
    if ty ~= "any" and type(v) ~= ty then
      error(string.format("session_manager: %s must be a %s, got %s", k, ty, type(v)), 2)
    end
  end
  if opts.max_sessions and (math.type(opts.max_sessions) ~= "integer" or opts.max_sessions < 1) then
    error("session_manager: max_sessions must be an integer >= 1", 2)
  end
  return setmetatable({
    factory = opts.factory, default_runtime = opts.default_runtime, idle_timeout = opts.idle_timeout or 3600,
    max_sessions = opts.max_sessions, workspace_root = opts.workspace_root, on_release = opts.on_release,
    log = opts.log or function(line) io.stderr:write("moonbox.session: ", line, "\n") end,
    _sessions = {}, _used = {}, _creating = {}, _count = 0, _loop = nil,
  }, Manager)
end

local function call_opt(obj, name, ...)
  local f = obj[name]
  if type(f) ~= "function" then return true end
  return f(obj, ...)
end

local function alive(sb)
  if type(sb.is_alive) ~= "function" then return true end
  local ok, v = pcall(sb.is_alive, sb)
  return ok and v ~= false and v ~= nil
end

local function stop_quietly(self, id, sb)
  local ok, err = pcall(call_opt, sb, "stop")
  if not ok then self.log("stopping session " .. id .. " failed: " .. tostring(err)) end
end

function Manager:_build(id, runtime)
  if self.factory then return self.factory(id) end
  local moonbox = require "moonbox"
  if not moonbox.docker_sandbox then
    return nil, "session_manager: no factory given and the docker sandbox is not available", "UNSUPPORTED"
  end
  local o = { runtime = runtime or self.default_runtime, idle_timeout = self.idle_timeout }
  if self.workspace_root then
    local dir = self.workspace_root .. "/" .. id .. "/workspace"
    local ok = os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
    if not ok then return nil, "session_manager: cannot create " .. dir, "EIO" end
    o.volumes = { [dir] = "/workspace" }
  end
  return moonbox.docker_sandbox(o)
end

function Manager:_create(id, runtime)
  if self.max_sessions and self._count >= self.max_sessions then
    return nil, string.format("Session limit of %d reached. Release an idle session before opening another.",
      self.max_sessions), "SESSION_LIMIT"
  end
  local ok, sb, msg, code = pcall(self._build, self, id, runtime)
  if not ok then return nil, "session " .. id .. ": " .. tostring(sb), "EIO" end
  if not sb then return nil, msg, code end
  local sok, started, smsg, scode = pcall(call_opt, sb, "start")
  if not sok or started == nil or started == false then
    stop_quietly(self, id, sb)
    if not sok then return nil, "session " .. id .. ": start failed: " .. tostring(started), "EIO" end
    return nil, smsg or ("session " .. id .. ": start failed"), scode or "EIO"
  end
  -- a session released or the limit reached while this one was starting
  if self.max_sessions and self._count >= self.max_sessions then
    stop_quietly(self, id, sb)
    return nil, string.format("Session limit of %d reached. Release an idle session before opening another.",
      self.max_sessions), "SESSION_LIMIT"
  end
  self._sessions[id] = sb
  self._count = self._count + 1
  self._used[id] = task.now()
  return sb
end

function Manager:get_or_create(id, runtime)
  if type(id) ~= "string" or id == "" then error("bad argument #1 to 'get_or_create' (session id expected)", 2) end
  local pending = self._creating[id]
  if pending then return pending:join() end
  local sb = self._sessions[id]
  if sb then
    if alive(sb) then
      self._used[id] = task.now()
      if type(sb.touch) == "function" then pcall(sb.touch, sb) end
      return sb
    end
    self._sessions[id] = nil
    self._count = self._count - 1
    stop_quietly(self, id, sb)
  end
  -- one creation per id: later callers join this task
  local t = task.spawn(function() return self:_create(id, runtime) end)
  self._creating[id] = t
  local ok, a, b, c = pcall(t.join, t)
  self._creating[id] = nil
  if not ok then return nil, tostring(a), "EIO" end
  return a, b, c
end

function Manager:release(id)
  local pending = self._creating[id]
  if pending then pcall(pending.join, pending) end
  local sb = self._sessions[id]
  if not sb then return false end
  self._sessions[id] = nil
  self._used[id] = nil
  self._count = self._count - 1
  stop_quietly(self, id, sb)
  if self.on_release then
    local ok, err = pcall(self.on_release, id)
    if not ok then self.log("on_release(" .. id .. ") failed: " .. tostring(err)) end
  end
  return true
end

function Manager:_last_activity(id, sb)
  local la = sb.last_activity
  if type(la) == "function" then
    local ok, v = pcall(la, sb)
    la = ok and v or nil
  end
  if type(la) == "number" then return la end
  return self._used[id]
end

function Manager:cleanup_idle(max_idle)
  local now = task.now()
  local victims = {}
  for id, sb in pairs(self._sessions) do
    local limit = max_idle or (type(sb.idle_timeout) == "number" and sb.idle_timeout) or self.idle_timeout
    local last = self:_last_activity(id, sb)
    if last and now - last >= limit then victims[#victims + 1] = id end
  end
  table.sort(victims)
  local n = 0
  for _, id in ipairs(victims) do
    if self:release(id) then n = n + 1 end
  end
  return n
end

function Manager:start_cleanup_loop(interval)
  interval = interval or 300
  if type(interval) ~= "number" or interval <= 0 then
    error("bad argument #1 to 'start_cleanup_loop' (seconds > 0)", 2)
  end
  if self._loop and self._loop:status() ~= "done" and self._loop:status() ~= "cancelled" then return self._loop end
  self._loop = task.spawn(function()
    while true do
      task.sleep(interval)
      local ok, err = pcall(self.cleanup_idle, self)
      if not ok then self.log("cleanup failed: " .. tostring(err)) end
    end
  end)
  return self._loop
end

function Manager:stop_cleanup_loop()
  if self._loop then
    self._loop:cancel()
    self._loop = nil
  end
end

function Manager:shutdown()
  self:stop_cleanup_loop()
  local ids = {}
  for id in pairs(self._sessions) do ids[#ids + 1] = id end
  local tasks = {}
  for i, id in ipairs(ids) do tasks[i] = task.spawn(function() return self:release(id) end) end
  for _, t in ipairs(tasks) do
    local ok, err = pcall(t.join, t)
    if not ok then self.log("release failed during shutdown: " .. tostring(err)) end
  end
  return #ids
end

function Manager:sessions()
  local copy = {}
  for id, sb in pairs(self._sessions) do copy[id] = sb end
  return copy
end

function Manager:count() return self._count end
function Manager:has(id) return self._sessions[id] ~= nil end

M.Manager = Manager
return M
