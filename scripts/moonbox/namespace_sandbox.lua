-- moonbox.namespace_sandbox: commands in Linux namespaces and a seccomp filter, no Docker.
--
--   local sb = moonbox.namespace_sandbox{ root = "/srv/ws", network = false, memory = "512M",
--                                         pids = 256, cpu_time = 60, readonly = { "/opt/sdk" },
--                                         writable = { "/srv/cache" }, env = { CI = "1" } }
--   sb:start()                 --> true | nil, reason, "UNSUPPORTED"  (implied by the first command)
--   sb:execute("make test")    --> { output, stdout, stderr, exit_code, truncated, timed_out, ... }
--   sb:capabilities()          --> what is enforced (namespaces, seccomp, limits, network)
--
-- Every command runs in namespaces of its own — user, mount, pid, ipc, uts and, unless
-- network = true, network — never shared with another command (moonbox-nsexec, nsrun.c). Per
-- sandbox, `start()` starts moonbox-nsexec --hold, the template: a user namespace (the command's
-- user is uid 1000 "sandbox" inside and the caller's uid outside) and a mount namespace holding
-- the sandbox's root: /workspace = root (read-write, the working directory), /usr /bin /lib
-- /lib64 /sbin read-only, a generated /etc, /dev with null/zero/full/random/urandom, a private
-- /tmp, the `readonly` and `writable` host paths at their own paths, nothing else of the host.
-- Each command's helper copies it into a new user namespace nested in the template's and a new
-- mount namespace, with new pid, ipc, uts and network namespaces; its shell runs under rlimits,
-- no_new_privs and the seccomp filter, in the sandbox's cgroup (memory, pids) where the host lets
-- us create one. It then checks the whole path once by running `exit 0`.
--
-- Creating those namespaces (about 1.3 ms of CPU, a network namespace 0.4 ms of it) is kept off
-- the command's path: the sandbox keeps one spare — a helper spawned ahead of time whose
-- namespaces, mounts, limits and filter are all in place, waiting for its command on stdin. A
-- command takes the spare (or starts one when two commands come at once); a spare is used once
-- and never reused. When the next spare is made depends on how commands come: back to back, it
-- is spawned as soon as a command is handed over, so it gets ready while that command runs;
-- after a pause (the way an agent's commands come, between model calls), it is spawned once the
-- command is done, off its path, so that preparing it does not compete with the command for the
-- CPU.
--
local native = require "moonbox.namespace"
local sandbox = require "moonbox.sandbox"
local proc = require "moonbox.proc"
local task = require "moonbox.task"

local M = {}

local KNOWN = {
  root = true, network = true, memory = true, pids = true, cpu_time = true, readonly = true,
  writable = true, env = true, timeout = true, max_output = true, grace = true, nofile = true,
  tmp_size = true, id = true, enable_execute = true, simulate_unsupported = true,
}

local UNITS = { [""] = 1, B = 1, K = 1024, M = 1024 ^ 2, G = 1024 ^ 3, T = 1024 ^ 4 }

--- Bytes from a number or a string like "512M", "1.5G", "64k", "100" (binary units).
function M.parse_size(value, what)
  what = what or "size"
  if math.type(value) == "integer" and value > 0 then return value end
  if type(value) == "number" and value > 0 and value == math.floor(value) then
    return math.tointeger(value)
  end
  if type(value) == "string" then
    local num, unit = value:match("^%s*(%d+%.?%d*)%s*([kKmMgGtTbB]?)[iI]?[bB]?%s*$")
    local n = tonumber(num)
    if n and n > 0 then return math.tointeger(math.floor(n * UNITS[unit:upper()])) end
  end
  error(string.format("namespace_sandbox: %s must be a positive byte count or a size like " ..
    "\"512M\" (got %s)", what, tostring(value)), 3)
end

local function positive_integer(value, what)
  if value == nil then return nil end
  if math.type(value) ~= "integer" and not (type(value) == "number" and value == math.floor(value)) or
      value <= 0 then
    error(string.format("namespace_sandbox: %s must be a positive whole number (got %s)", what,
      tostring(value)), 3)
  end
  return math.tointeger(value)
end

local function path_list(value, what)
  if value == nil then return {} end
  if type(value) ~= "table" then
    error("namespace_sandbox: " .. what .. " must be a list of absolute host paths", 3)
  end
  local out = {}
  for i, p in ipairs(value) do
    if type(p) ~= "string" or p:sub(1, 1) ~= "/" or p == "/" or p:find("/%.%.") or p:find("%z") then
      error(string.format("namespace_sandbox: %s[%d] must be an absolute host path other " ..
        "than / without '..' (got %s)", what, i, tostring(p)), 3)
    end
    out[i] = p
  end
  return out
end

-- What a command sees of the environment: never the host's (it may hold credentials).
local BASE_ENV = {
  PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME = "/workspace",
  USER = "sandbox",
  LOGNAME = "sandbox",
  SHELL = "/bin/sh",
  LANG = "C.UTF-8",
  TMPDIR = "/tmp",
}

-- The sandbox's own state, apart from the composed sandbox object so a finalizer can release it
-- (holder, cgroups) without keeping the sandbox alive.
local State = {}
State.__index = State

-- The limits the kernel will enforce, and how; or nil, refusal.
function State:plan_limits()
  local limits = { memory = false, pids = false }
  if self.memory or self.pids then
    local cg = native.cgroup_create{ memory = self.memory, pids = self.pids }
    self.cgroups = cg.dirs
    if self.memory then
      if cg.memory then
        limits.memory = "cgroup v" .. cg.version
      else -- per process only: the best the host allows
        limits.memory = "rlimit (per process address space)"
        limits.rlimit_as = self.memory
      end
    end
    if self.pids then
      if cg.pids then
        limits.pids = "cgroup v" .. cg.version
      elseif native.euid() ~= 0 then -- counted per user namespace, so per sandbox
        limits.pids = "rlimit (processes of the sandbox user)"
        limits.rlimit_nproc = self.pids
      else
        return nil, "namespace sandbox: pids = " .. self.pids .. " cannot be enforced here: no " ..
          "writable pids cgroup (" .. (cg.why ~= "" and cg.why or "none found") .. ") and the " ..
          "caller is root, whom RLIMIT_NPROC does not bind; run as a regular user or give the " ..
          "process a writable cgroup"
      end
    end
  end
  self.limits = limits
  return true
end

-- moonbox-nsexec --join ...: a spare's argv (its command comes on stdin).
function State:spare_argv()
  local argv = { self.helper, "--join", self.holder:token() }
  if self.network then argv[#argv + 1] = "--net" end
  for _, dir in ipairs(self.cgroups or {}) do
    argv[#argv + 1] = "--cgroup"
    argv[#argv + 1] = dir
  end
  local function opt(flag, value)
    if value then
      argv[#argv + 1] = flag
      argv[#argv + 1] = tostring(value)
    end
  end
  opt("--cpu", self.cpu_time)
  opt("--nofile", self.nofile)
  opt("--as", self.limits.rlimit_as)
  opt("--nproc", self.limits.rlimit_nproc)
  return argv
end

-- A new spare: a Process whose command has not come yet, or nil, msg, CODE.
function State:new_spare()
  return proc.spawn(self:spare_argv(), { cwd = self.root, env = {}, clean_env = true,
    stdin = true, grace = self.grace, max_output = self.max_output })
end

-- Keeps one spare ready (if spawning fails, the next command starts its own and reports why).
function State:replenish()
  if self.spare == nil and self.holder then self.spare = self:new_spare() end
end

local HEADER_MAX = 8 * 1024 * 1024
-- A pause this long (seconds) before a command says commands come apart: the next spare is
-- made after it (about 1.5 ms of wall time on a busy 2-vCPU machine fits in such a pause).
local PAUSE = 0.003

-- The header a spare reads before its command (nsrun.c): stdin mode, cwd, env, argv.
local function command_header(argv, env, cwd, has_stdin)
  local fields = { has_stdin and "1" or "0", cwd, "0" }
  local n = 0
  for k, v in pairs(env or {}) do
    if v then
      if type(k) ~= "string" or type(v) ~= "string" or k == "" or k:find("[=%z]") or
          v:find("%z") then
        -- level 5: the caller of execute/spawn (through launch and sandbox.lua)
        error("namespace_sandbox: env must map names (no '=' or NUL) to strings without NUL", 5)
      end
      n = n + 1
      fields[#fields + 1] = k .. "=" .. v
    end
  end
  fields[3] = tostring(n)
  for _, a in ipairs(argv) do fields[#fields + 1] = a end
  local payload = table.concat(fields, "\0") .. "\0"
  if #payload > HEADER_MAX then return nil end
  return string.format("MBX1%08x", #payload) .. payload
end

-- sandbox.new's launch hook: hands the command to the spare (or a new helper), arms its timeout,
-- and has the next spare made now or, after a pause, once this command is done (see the top).
function State:launch(argv, spawn_opts, cwd, background)
  if self.failure then return nil, self.failure, "UNSUPPORTED" end
  if not self.holder:alive() then
    self:drop_spare()
    return nil, "namespace sandbox: its holder process has died (killed from outside?); " ..
      "stop() this sandbox and start a new one", "CLOSED"
  end
  local header = command_header(argv, spawn_opts.env, cwd, spawn_opts.stdin ~= nil)
  if not header then
    return nil, "the command and its environment exceed " .. HEADER_MAX .. " bytes", "INVALID"
  end
  local p = self.spare
  self.spare = nil
  if p and not p:running() then -- it failed while waiting: a new one says why, or works
    p:close()
    p = nil
  end
  if not p then
    local msg, code
    p, msg, code = self:new_spare()
    if not p then return nil, msg, code end
  end
  p:send(header .. (spawn_opts.stdin or ""), true)
  p:arm(spawn_opts.timeout)
  if not background and self.done_at and task.now() - self.done_at >= PAUSE then
    self.spare_after = true -- commands come apart: make the next spare once this one is done
  else
    self:replenish()
  end
  return p
end

-- After each execute: the next spare, if it waits for this command, is made on the next turn of
-- the loop (when the caller next waits), not before the result is returned.
function State:done()
  self.done_at = task.now()
  if self.spare_after then
    self.spare_after = nil
    task.spawn(function() self:replenish() end)
  end
end

function State:drop_spare()
  if self.spare then self.spare:close() end
  self.spare = nil
end

function State:fail(msg)
  self.failure = msg
  self:release()
  return nil, msg, "UNSUPPORTED"
end

-- Builds the namespaces and checks a command can run; true, or nil, reason, "UNSUPPORTED".
-- A failure is remembered: every later start (and so every command) gives the same answer.
function State:start()
  if self.failure then return nil, self.failure, "UNSUPPORTED" end
  if self.holder then return true end
  local helper, err = native.helper()
  if not helper then return self:fail(err) end
  self.helper = helper
  local ok, why = self:plan_limits()
  if not ok then return self:fail(why) end
  local args = { "--root", self.root }
  if self.network then args[#args + 1] = "--net" end
  if self.simulate_unsupported then args[#args + 1] = "--deny-userns" end
  if self.tmp_size or self.memory then
    args[#args + 1] = "--tmp-size"
    args[#args + 1] = tostring(self.tmp_size or self.memory)
  end
  for _, p in ipairs(self.readonly) do
    args[#args + 1] = "--ro"
    args[#args + 1] = p
  end
  for _, p in ipairs(self.writable) do
    args[#args + 1] = "--rw"
    args[#args + 1] = p
  end
  local holder, msg = native.hold(helper, args)
  if not holder then return self:fail(msg) end
  self.holder = holder
  -- the per-command half (fresh namespaces, proc, seccomp) once, before anyone relies on it
  local p, pmsg = self:launch({ "/bin/sh", "-c", "exit 0" }, { env = self.env, timeout = 30 },
    "/workspace")
  local res = p and p:wait()
  if p then p:close() end
  if not res or res.exit_code ~= 0 then
    local detail = res and (res.output or ""):gsub("%s+$", "") or tostring(pmsg)
    return self:fail("namespace sandbox unavailable: the probe command failed: " .. detail)
  end
  return true
end

function State:release()
  self:drop_spare()
  if self.holder then self.holder:close() end
  self.holder = nil
  if self.cgroups and #self.cgroups > 0 then native.cgroup_remove(self.cgroups) end
  self.cgroups = nil
end

-- The working directory inside: host_cwd is a host directory at or under the root.
function State:inside(host_cwd)
  if host_cwd == nil or host_cwd == self.real_root then return "/workspace" end
  return "/workspace" .. host_cwd:sub(#self.real_root + 1)
end

--- What is enforced: false where something is not (nothing is claimed that is not checked).
local function capabilities(st)
  local limits = st.limits or {}
  return {
    started = st.holder ~= nil,
    unsupported = st.failure,
    namespaces = st.network and { "user", "mount", "pid", "ipc", "uts" } or
      { "user", "mount", "pid", "ipc", "uts", "net" },
    per_command = st.network and { "user", "mount", "pid", "ipc", "uts" } or
      { "user", "mount", "pid", "ipc", "uts", "net" },
    network = st.network,
    seccomp = true,
    no_new_privs = true,
    uid = 1000,
    memory = limits.memory or false,
    pids = limits.pids or false,
    cpu_time = st.cpu_time or false,
    nofile = st.nofile or false,
    readonly = st.readonly,
    writable = st.writable,
  }
end

-- MOONBOX_NS_SIMULATE_UNSUPPORTED=1: every sandbox behaves as if user namespaces were refused.
local function simulated_by_env()
  local v = os.getenv("MOONBOX_NS_SIMULATE_UNSUPPORTED")
  return v ~= nil and v ~= "" and v ~= "0"
end

--- Creates a sandbox (nothing runs until start() or the first command).
function M.new(opts)
  if type(opts) ~= "table" then error("namespace_sandbox: options table expected", 2) end
  for k in pairs(opts) do
    if not KNOWN[k] then error("namespace_sandbox: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if type(opts.root) ~= "string" or opts.root:sub(1, 1) ~= "/" then
    error("namespace_sandbox: root must be an absolute host directory", 2)
  end
  if opts.env ~= nil and type(opts.env) ~= "table" then
    error("namespace_sandbox: env must be a table of strings", 2)
  end
  local env = {}
  for k, v in pairs(BASE_ENV) do env[k] = v end
  for k, v in pairs(opts.env or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      error("namespace_sandbox: env must map strings to strings", 2)
    end
    env[k] = v
  end
  local st = setmetatable({
    root = opts.root,
    network = opts.network == true,
    memory = opts.memory ~= nil and M.parse_size(opts.memory, "memory") or nil,
    tmp_size = opts.tmp_size ~= nil and M.parse_size(opts.tmp_size, "tmp_size") or nil,
    pids = positive_integer(opts.pids, "pids"),
    cpu_time = positive_integer(opts.cpu_time, "cpu_time"),
    nofile = positive_integer(opts.nofile, "nofile"),
    readonly = path_list(opts.readonly, "readonly"),
    writable = path_list(opts.writable, "writable"),
    simulate_unsupported = opts.simulate_unsupported or simulated_by_env(),
    env = env,
    grace = opts.grace,
    max_output = opts.max_output,
  }, State)
  local sb, msg, code = sandbox.new{
    kind = "namespace",
    id = opts.id,
    root = opts.root,
    env = env,
    clean_env = true, -- the host's environment may hold credentials
    timeout = opts.timeout,
    max_output = opts.max_output,
    grace = opts.grace,
    enable_execute = opts.enable_execute,
    on_start = function() return st:start() end,
    on_stop = function() st:release() end,
    -- env: ours merged with the call's, never the host's
    launch = function(argv, spawn_opts, background)
      return st:launch(argv, spawn_opts, st:inside(spawn_opts.cwd), background)
    end,
    on_done = function() st:done() end,
  }
  if not sb then return nil, msg, code end
  st.real_root = sb.root
  st.root = sb.root
  rawset(sb, "capabilities", function() return capabilities(st) end)
  rawset(sb, "is_alive", function() return st.holder ~= nil and st.holder:alive() end)
  -- a sandbox dropped without stop() still releases its holder and cgroups
  rawset(sb, "_ns_guard", setmetatable({}, { __gc = function() st:release() end }))
  rawset(sb, "_ns", st)
  return sb
end

setmetatable(M, { __call = function(_, opts) return M.new(opts) end })

return M
