-- moonbox.sandbox: a sandbox is a file backend plus commands.
--
-- sandbox.new{...} composes two things: a file backend on `root` (by default
-- moonbox.local_backend{root = root}; every backend method — read, write, edit, ls, glob, grep,
-- exists, read_bytes, ... — is delegated to it) and commands run through the native process
-- module (moonbox.proc): execute, background processes, output caps, timeouts that kill the
-- whole process group. moonbox.local_sandbox is sandbox.new with nothing around the shell.
--
-- The extension point for sandboxes that isolate commands (namespace_sandbox, ...) is
-- `argv_prefix`: every command runs as { prefix..., "/bin/sh", "-c", command }, where
--
--   prefix, overrides = argv_prefix(command, ctx)
--     ctx       = { cwd = <host directory>, env = <merged env table or nil>, root = <host root>,
--                   timeout = <seconds or nil>, background = <boolean>, sandbox = <the sandbox> }
--     prefix    = a list of strings (the wrapper program and its arguments), or nil/{} for none
--     overrides = optional { cwd =, env =, clean_env = } replacing what proc.spawn gets
--                 (e.g. the wrapper's own cwd, or a clean environment)
--   Returning nil, msg, CODE fails the command with that triple (e.g. "UNSUPPORTED").
--
-- A sandbox that starts its processes itself (namespace_sandbox hands each command to a process
-- it prepared ahead of time) gives `launch` instead:
--
--   process = launch(argv, spawn_opts, background)
--     argv       = { prefix..., "/bin/sh", "-c", command }, spawn_opts = what proc.spawn would get
--     process    = a moonbox.proc Process running the command (timeout armed), or nil, msg, CODE
--   on_done()    = called by execute once the command's result is in (optional)
--
-- and `on_start(sb)` / `on_stop(sb)` hooks (start() is implied by the first command; a failing
-- on_start makes execute/spawn return its nil, msg, CODE). Everything else — result shape,
-- caps, timeouts, background bookkeeping, cleanup — is shared.
--
-- Result of execute: { output, stdout, stderr, exit_code, truncated, timed_out, duration }
-- (see README "Tasks and commands"). Expected failures return nil, msg, CODE: INVALID (a NUL
-- byte in the command), EACCES (cwd outside the root), ENOENT (cwd missing), and the spawn
-- errors of moonbox.proc. execute/spawn on a sandbox built with enable_execute = false raise,
-- as the reference does.
local proc = require "moonbox.proc"

local M = {}

local Sandbox = {}

local DISABLED = "Shell execution is disabled for this backend. "
  .. "Initialize with enable_execute = true to enable."

local options = {
  root = "string", backend = "any", env = "table", clean_env = "boolean", timeout = "number",
  max_output = "number", grace = "number", enable_execute = "boolean", id = "string",
  kind = "string", argv_prefix = "function", on_start = "function", on_stop = "function",
  launch = "function", on_done = "function",
}

local function check_options(where, opts, known)
  for k, v in pairs(opts) do
    local want = known[k]
    if want == nil then
      error(string.format("%s: unknown option '%s'", where, tostring(k)), 3)
    end
    if want ~= "any" and type(v) ~= want then
      error(string.format("%s: %s must be a %s, not a %s", where, k, want, type(v)), 3)
    end
  end
end

local function random_id(kind)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(6) or tostring(os.time())
  if f then f:close() end
  return kind .. "-" .. bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)
end

local function merge(base, extra)
  if base == nil and extra == nil then return nil end
  local out = {}
  for k, v in pairs(base or {}) do out[k] = v end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

function M.new(opts)
  if type(opts) ~= "table" then error("sandbox: expects a table of options", 2) end
  check_options("sandbox", opts, options)
  local kind = opts.kind or "local"
  if opts.root == nil and opts.backend == nil then
    error(kind .. "_sandbox: root (a directory) is required", 2)
  end
  local timeout = opts.timeout or 120
  if timeout < 0 then error(kind .. "_sandbox: timeout must be >= 0", 2) end
  local max_output = opts.max_output or 100000
  if math.type(max_output) ~= "integer" or max_output < 2 then
    error(kind .. "_sandbox: max_output must be an integer >= 2", 2)
  end
  local backend, root = opts.backend, opts.root
  if root then
    local ok, msg, code = proc.mkdirs(root)
    if not ok then return nil, kind .. "_sandbox: " .. msg, code end
    local real, rmsg, rcode = proc.realpath(root)
    if not real then return nil, kind .. "_sandbox: " .. rmsg, rcode end
    root = real
  end
  if backend == nil then
    local err, code
    backend, err, code = require("moonbox").local_backend { root = root }
    if not backend then return nil, kind .. "_sandbox: " .. tostring(err), code end
  end
  if root == nil then root = backend:root() end
  -- A local_backend keeps the replaced inode of an edit burst as a hidden spare file for a
  -- moment (see localfs_core.h); commands must not see it, so it is removed before each one.
  local has_flush, flush = pcall(function() return backend.flush end)
  local self = {
    id = opts.id or random_id(kind),
    kind = kind,
    root = root,
    _backend = backend,
    _flush = has_flush and type(flush) == "function" and flush or nil,
    _env = opts.env,
    _clean_env = opts.clean_env,
    _timeout = timeout,
    _max_output = max_output,
    _grace = opts.grace or 2,
    _enabled = opts.enable_execute ~= false,
    _argv_prefix = opts.argv_prefix,
    _launch = opts.launch,
    _on_done = opts.on_done,
    _on_start = opts.on_start,
    _on_stop = opts.on_stop,
    _started = opts.on_start == nil, -- nothing to start: ready at once
    _bg = {},
    _bg_order = {},
    _bg_next = 0,
  }
  return setmetatable(self, M._meta)
end

-- File methods are the backend's: looked up once per name, bound to the backend.
M._meta = {
  __name = "moonbox.sandbox.Sandbox",
  __index = function(self, key)
    local m = Sandbox[key]
    if m ~= nil then return m end
    if type(key) ~= "string" or key:sub(1, 1) == "_" then return nil end
    local backend = rawget(self, "_backend")
    local f = backend[key]
    if type(f) ~= "function" then return nil end
    local bound = function(_, ...) return f(backend, ...) end
    rawset(self, key, bound)
    return bound
  end,
  __tostring = function(self)
    return string.format("moonbox.sandbox.Sandbox: %s (%s, %s)", self.id, self.kind, self.root)
  end,
}

function Sandbox:backend() return self._backend end

function Sandbox:start()
  if self._started then return true end
  if self._on_start then
    local ok, msg, code = self._on_start(self)
    if not ok then return nil, msg, code end
  end
  self._started = true
  return true
end

function Sandbox:is_alive() return self._started end

function Sandbox:stop()
  self:kill_all()
  if self._started and self._on_stop then self._on_stop(self) end
  self._started = false
  return true
end

-- The host directory a command starts in: the root, or cwd under it ("/x" and "x" are both
-- root/x; an absolute host path inside the root is taken as it is).
function Sandbox:_cwd(cwd)
  if cwd == nil then return self.root end
  local path
  if cwd == self.root or cwd:sub(1, #self.root + 1) == self.root .. "/" then
    path = cwd
  elseif cwd:sub(1, 1) == "/" then
    path = self.root .. cwd
  else
    path = self.root .. "/" .. cwd
  end
  local real, msg, code = proc.realpath(path)
  if not real then return nil, "cwd: " .. msg, code end
  if real ~= self.root and real:sub(1, #self.root + 1) ~= self.root .. "/" then
    return nil, "cwd: " .. cwd .. " is outside the sandbox root " .. self.root, "EACCES"
  end
  return real
end

local execute_options = { timeout = "number", env = "table", cwd = "string", stdin = "string" }

-- argv and proc options for one command, or nil, msg, CODE.
function Sandbox:_prepare(where, command, opts, background)
  if not self._enabled then error(DISABLED, 3) end
  if type(command) ~= "string" then
    error(where .. ": command must be a string, not a " .. type(command), 3)
  end
  if opts ~= nil and type(opts) ~= "table" then error(where .. ": options must be a table", 3) end
  opts = opts or {}
  check_options(where, opts, execute_options)
  if command:find("\0", 1, true) then
    return nil, where .. ": the command contains a NUL byte", "INVALID"
  end
  local timeout = opts.timeout
  if timeout == nil and not background then timeout = self._timeout end
  if timeout ~= nil and timeout < 0 then error(where .. ": timeout must be >= 0", 3) end
  local ok, smsg, scode = self:start()
  if not ok then return nil, smsg, scode end
  if self._flush then self._flush(self._backend) end
  local cwd, msg, code = self:_cwd(opts.cwd)
  if not cwd then return nil, where .. ": " .. msg, code end
  local spawn_opts = {
    cwd = cwd,
    env = merge(self._env, opts.env),
    clean_env = self._clean_env,
    stdin = opts.stdin,
    timeout = timeout,
    grace = self._grace,
    max_output = self._max_output,
  }
  local argv = {}
  if self._argv_prefix then
    local prefix, overrides, ocode = self._argv_prefix(command, {
      cwd = cwd, env = spawn_opts.env, root = self.root, timeout = timeout,
      background = background, sandbox = self,
    })
    if prefix == nil and overrides ~= nil then return nil, overrides, ocode end
    for _, a in ipairs(prefix or {}) do argv[#argv + 1] = a end
    if type(overrides) == "table" then
      for _, k in ipairs { "cwd", "env", "clean_env" } do
        if overrides[k] ~= nil then spawn_opts[k] = overrides[k] end
      end
    end
  end
  argv[#argv + 1] = "/bin/sh"
  argv[#argv + 1] = "-c"
  argv[#argv + 1] = command
  return argv, spawn_opts
end

-- Runs command with /bin/sh -c in the root; yields inside a task, blocks elsewhere.
function Sandbox:execute(command, opts)
  local argv, spawn_opts, code = self:_prepare("execute", command, opts, false)
  if not argv then return nil, spawn_opts, code end
  if self._launch then
    local p <close>, msg, lcode = self._launch(argv, spawn_opts, false)
    if not p then return nil, "execute: " .. msg, lcode end
    local result = p:wait()
    if self._on_done then self._on_done() end
    return result
  end
  local result, msg, rcode = proc.run(argv, spawn_opts)
  if not result then return nil, "execute: " .. msg, rcode end
  return result
end

-- Background processes ------------------------------------------------------------------------

function Sandbox:spawn(command, opts)
  local argv, spawn_opts, code = self:_prepare("spawn", command, opts, true)
  if not argv then return nil, spawn_opts, code end
  local p, msg, pcode
  if self._launch then
    p, msg, pcode = self._launch(argv, spawn_opts, true)
  else
    p, msg, pcode = proc.spawn(argv, spawn_opts)
  end
  if not p then return nil, "spawn: " .. msg, pcode end
  self._bg_next = self._bg_next + 1
  local id = "bg_" .. self._bg_next
  self._bg[id] = { id = id, command = command, proc = p }
  self._bg_order[#self._bg_order + 1] = id
  return id
end

local function no_such(id)
  return nil, "No such background process: " .. tostring(id), "NOT_FOUND"
end

-- Output since the previous read, and whether it still runs (exit_code once it has finished).
function Sandbox:read_output(id)
  local bg = self._bg[id]
  if not bg then return no_such(id) end
  local r = bg.proc:read()
  r.id = id
  return r
end

-- Kills the process group; true if it was still running.
function Sandbox:kill(id)
  local bg = self._bg[id]
  if not bg then return false end
  return bg.proc:kill()
end

function Sandbox:list()
  local out = {}
  for _, id in ipairs(self._bg_order) do
    local bg = self._bg[id]
    if bg then
      local running = bg.proc:running()
      local info = { id = id, command = bg.command, pid = bg.proc:pid(), running = running }
      if not running then info.exit_code = bg.proc:exit_code() end
      out[#out + 1] = info
    end
  end
  return out
end

function Sandbox:kill_all()
  for _, id in ipairs(self._bg_order) do
    local bg = self._bg[id]
    if bg then bg.proc:close() end
  end
  self._bg = {}
  self._bg_order = {}
  return true
end

-- moonbox.local_sandbox{root =, env =, timeout = 120, max_output = 100000, enable_execute = true}
function M.local_sandbox(opts)
  if type(opts) ~= "table" then error("local_sandbox: expects a table of options", 2) end
  for _, k in ipairs { "argv_prefix", "kind", "on_start", "on_stop", "launch", "on_done" } do
    if opts[k] ~= nil then error("local_sandbox: unknown option '" .. k .. "'", 2) end
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.kind = "local"
  return M.new(o)
end

M.Sandbox = Sandbox

return M
