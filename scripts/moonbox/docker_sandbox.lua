-- moonbox.docker_sandbox: a sandbox in a Docker container, over the Engine API (no docker CLI).
--
--   moonbox.docker_sandbox{image = "python:3.12-slim", runtime =, work_dir = "/workspace",
--     socket =, volumes = {[host dir] = container dir}, network = "none", memory = bytes,
--     cpus =, pids = 512, tmpfs = {[dir] = "size=64m"}, env = {}, user =, container_name =,
--     auto_remove = true, idle_timeout = 3600, max_read_bytes = 8 MiB, timeout = 120,
--     max_output = 100000}
--
-- The socket comes from the option, else DOCKER_HOST (unix:// only), else /var/run/docker.sock.
-- Requests go through moonbox.http (libcurl on the host loop: they yield inside tasks); the exec
-- output stream and the tar codec are native (modules/docker). The container is created lazily
-- (first use or start()): `sleep infinity` under Docker's init, no-new-privileges, the limits
-- given, network "none" unless asked otherwise. container_name reuses a running container of
-- that name or starts a stopped one (and implies auto_remove = false).
--
-- Commands: exec create + start (the multiplexed stream read natively into capped captures) +
-- exec inspect for the exit code. The host enforces the timeout: it ends the stream, then kills
-- every process of that exec inside the container (found by a per-exec token in their
-- environment, so grandchildren die too) and answers exit_code 124, timed_out, and the output
-- so far — the same result as local_sandbox. Background processes (spawn, read_output, kill,
-- list, kill_all) work the same way, ids bg_1, bg_2, ...
--
-- Files go through GET/PUT /containers/{id}/archive; paths are virtual ("/" is work_dir) and
-- the text semantics (read's numbering, edit, globs, grep rules) are moonbox.backend's.
--
-- Failures: nil, msg, CODE. A daemon that is down or a missing socket: UNAVAILABLE with
-- "docker: cannot connect to <socket>: ...". Daemon errors carry its message and the HTTP
-- status: NOT_FOUND (404), CONFLICT (409), API_ERROR (other). File operations use the backend
-- codes (ENOENT, EISDIR, ENOTDIR, INVALID, BINARY, NOT_FOUND, NOT_UNIQUE, TOO_LARGE).
local http = require "moonbox.http"
local json = require "moonbox.json"
local native = require "moonbox.docker"
local bk = require "moonbox.backend"
local task = require "moonbox.task"

local M = {}

local API = "http://localhost/v1.41"
local LABEL = "moonbox.sandbox"
local TREE_MAX = 256 * 1024 * 1024

local Sandbox = {}
Sandbox.__index = Sandbox
Sandbox.__name = "moonbox.docker_sandbox.Sandbox"

local OPTIONS = {
  image = "string", runtime = "any", work_dir = "string", socket = "string", volumes = "table",
  network = "string", memory = "number", cpus = "number", pids = "any", tmpfs = "table",
  env = "table", user = "string", container_name = "string", auto_remove = "boolean",
  idle_timeout = "number", max_read_bytes = "number", timeout = "number", max_output = "number",
  id = "string",
}

local function check_options(where, opts, known, level)
  for k, v in pairs(opts) do
    local want = known[k]
    if want == nil then error(string.format("%s: unknown option '%s'", where, tostring(k)), level) end
    if want ~= "any" and type(v) ~= want then
      error(string.format("%s: %s must be a %s, not a %s", where, k, want, type(v)), level)
    end
  end
end

local function random_hex(n)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(n) or tostring(os.time() + os.clock())
  if f then f:close() end
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function resolve_socket(opt)
  local s = opt or os.getenv("DOCKER_HOST")
  if s == nil or s == "" then return "/var/run/docker.sock" end
  if s:sub(1, 7) == "unix://" then return s:sub(8) end
  if s:sub(1, 1) == "/" then return s end
  error("docker_sandbox: only unix sockets are supported (unix:///path), got '" .. s .. "'", 3)
end

-- The Engine API ---------------------------------------------------------------------------------

-- One request. Returns the response, or nil, msg, CODE (UNAVAILABLE when the daemon cannot be
-- reached; the daemon's message and status for an error status unless `ok_status` accepts it).
local function api(socket, method, path, opts)
  opts = opts or {}
  local headers = opts.headers
  if opts.json ~= nil then
    headers = { ["Content-Type"] = "application/json" }
  end
  local r, msg, code = http.request {
    url = API .. path, method = method, unix_socket = socket, headers = headers,
    body = opts.json ~= nil and json.encode(opts.json) or opts.body,
    timeout = opts.timeout or 600, connect_timeout = 10, max_body = opts.max_body,
  }
  if not r then
    local detail = msg:gsub("^http: [^ ]*: ", "")
    if code == "UNAVAILABLE" or code == "TIMEOUT" and r == nil and detail:find("onnect") then
      return nil, "docker: cannot connect to " .. socket .. ": " .. detail, "UNAVAILABLE"
    end
    return nil, "docker: " .. (opts.what or path) .. ": " .. detail, code
  end
  if r.status >= 400 and not (opts.ok_status and opts.ok_status[r.status]) then
    local m = r.body
    local decoded = json.decode(r.body)
    if type(decoded) == "table" and type(decoded.message) == "string" then m = decoded.message end
    m = m:gsub("%s+$", "")
    local c = r.status == 404 and "NOT_FOUND" or r.status == 409 and "CONFLICT" or "API_ERROR"
    return nil, string.format("docker: %s: %s (HTTP %d)", opts.what or path, m, r.status), c
  end
  return r
end

local function api_json(socket, method, path, opts)
  local r, msg, code = api(socket, method, path, opts)
  if not r then return nil, msg, code end
  if r.body == "" then return {}, r end
  local v, err = json.decode(r.body)
  if v == nil then return nil, "docker: " .. path .. ": bad JSON from the daemon: " .. tostring(err), "EIO" end
  return v, r
end

-- Images and runtimes ----------------------------------------------------------------------------

local function image_exists(socket, name)
  local r, msg, code = api(socket, "GET", "/images/" .. urlencode(name) .. "/json",
    { what = "image inspect " .. name, ok_status = { [404] = true } })
  if not r then return nil, msg, code end
  return r.status == 200
end

-- Builds the runtime's image through POST /build (the context is runtimes.build_context) unless
-- its config-hash tag exists. Returns the tag, or nil, msg, CODE.
function M.build_runtime_image(rt, opts)
  local runtimes = require "moonbox.runtimes"
  opts = opts or {}
  local socket = resolve_socket(opts.socket)
  if type(rt) == "string" then rt = runtimes.get(rt) end
  local tag = runtimes.image_tag(rt)
  local exists, msg, code = image_exists(socket, tag)
  if exists == nil then return nil, msg, code end
  if exists and rt.cache_image ~= false then return tag end
  local context
  context, msg, code = runtimes.build_context(rt)
  if not context then return nil, msg, code end
  local log = {}
  local r
  r, msg, code = api(socket, "POST", "/build?rm=1&forcerm=1&networkmode=none&t=" .. urlencode(tag), {
    body = context, headers = { ["Content-Type"] = "application/x-tar" }, what = "build " .. tag,
    timeout = opts.timeout or 3600,
  })
  if not r then return nil, msg, code end
  -- The body is a JSON stream: {"stream": ...} lines, or {"error": ...} when a step failed.
  for line in r.body:gmatch("[^\r\n]+") do
    local ev = json.decode(line)
    if type(ev) == "table" then
      if ev.error then
        return nil, "docker: building " .. tag .. " failed: " .. tostring(ev.error) .. "\n" .. table.concat(log),
          "BUILD_FAILED"
      end
      if type(ev.stream) == "string" then log[#log + 1] = ev.stream end
    end
  end
  return tag
end

-- Construction -----------------------------------------------------------------------------------

function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("docker_sandbox: expects a table of options", 2) end
  check_options("docker_sandbox", opts, OPTIONS, 3)
  local rt = opts.runtime
  if type(rt) == "string" then
    rt = require("moonbox.runtimes").get(rt)
  elseif rt ~= nil and type(rt) ~= "table" then
    error("docker_sandbox: runtime must be a runtime name or table", 2)
  end
  if rt then
    local v, msg = require("moonbox.runtimes").validate(rt)
    if not v then error("docker_sandbox: " .. msg, 2) end
    rt = v
  end
  local work_dir = opts.work_dir or (rt and rt.work_dir) or "/workspace"
  if work_dir:sub(1, 1) ~= "/" or work_dir:find("\0", 1, true) or work_dir:find("/%.%.?/")
    or work_dir:find("/%.%.?$") then
    error("docker_sandbox: work_dir must be a clean absolute path", 2)
  end
  work_dir = work_dir:gsub("/+$", "")
  if work_dir == "" then work_dir = "/" end
  local pids = opts.pids
  if pids == nil then pids = 512 end
  if pids ~= false and math.type(pids) ~= "integer" then
    error("docker_sandbox: pids must be an integer or false", 2)
  end
  local max_output = opts.max_output or 100000
  if math.type(max_output) ~= "integer" or max_output < 2 then
    error("docker_sandbox: max_output must be an integer >= 2", 2)
  end
  local env = {}
  for k, v in pairs(rt and rt.env_vars or {}) do env[k] = v end
  for k, v in pairs(opts.env or {}) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") or type(v) ~= "string" then
      error("docker_sandbox: env must map NAME to string values", 2)
    end
    env[k] = v
  end
  local self = setmetatable({
    id = opts.id or ("docker-" .. random_hex(6)),
    kind = "docker",
    work_dir = work_dir,
    idle_timeout = opts.idle_timeout or 3600,
    last_activity = task.now(),
    _socket = resolve_socket(opts.socket),
    _image = opts.image or "python:3.12-slim",
    _runtime = rt,
    _volumes = opts.volumes,
    _network = opts.network or "none",
    _memory = opts.memory,
    _cpus = opts.cpus,
    _pids = pids,
    _tmpfs = opts.tmpfs,
    _env = env,
    _user = opts.user,
    _name = opts.container_name,
    _auto_remove = opts.container_name == nil and opts.auto_remove ~= false,
    _max_read = opts.max_read_bytes or 8 * 1024 * 1024,
    _timeout = opts.timeout or 120,
    _max_output = max_output,
    _bg = {}, _bg_order = {}, _bg_next = 0,
  }, Sandbox)
  return self
end

function Sandbox:__tostring()
  return string.format("moonbox.docker_sandbox: %s (%s)", self.id, self._container or "not started")
end

function Sandbox:container_id() return self._container end

function Sandbox:_touch() self.last_activity = task.now() end

function Sandbox:_create_spec(image)
  local env = {}
  for k, v in pairs(self._env) do env[#env + 1] = k .. "=" .. v end
  table.sort(env)
  local host = {
    NetworkMode = self._network, Init = true, SecurityOpt = { "no-new-privileges:true" },
    AutoRemove = self._auto_remove,
  }
  if self._pids then host.PidsLimit = self._pids end
  if self._memory then host.Memory = math.floor(self._memory); host.MemorySwap = math.floor(self._memory) end
  if self._cpus then host.NanoCpus = math.floor(self._cpus * 1e9) end
  if self._volumes then
    local binds = {}
    for src, dst in pairs(self._volumes) do binds[#binds + 1] = src .. ":" .. dst .. ":rw" end
    table.sort(binds)
    host.Binds = binds
  end
  if self._tmpfs then
    local t = {}
    for dir, o in pairs(self._tmpfs) do
      o = tostring(o)
      if not o:find("exec") then o = o == "" and "exec" or o .. ",exec" end
      t[dir] = o
    end
    host.Tmpfs = t
  end
  local spec = {
    Image = image, Cmd = { "sleep", "infinity" }, WorkingDir = self.work_dir, Env = json.array(env),
    Labels = { [LABEL] = self.id }, HostConfig = host, AttachStdout = false, AttachStderr = false,
    NetworkDisabled = self._network == "none" or nil,
  }
  if self._user then spec.User = self._user end
  return spec
end

function Sandbox:_resolve_image()
  local rt = self._runtime
  if not rt then return self._image end
  if rt.image then return rt.image end
  if rt.base_image then return M.build_runtime_image(rt, { socket = self._socket }) end
  return self._image
end

-- Creates (or finds, with container_name) and starts the container. Concurrent callers share
-- one start: the others wait for it.
function Sandbox:start()
  if self._container then return true end
  while self._starting do task.sleep(0.005) end
  if self._container then return true end
  self._starting = true
  local ok, msg, code = self:_start()
  self._starting = false
  self:_touch()
  return ok, msg, code
end

function Sandbox:_start()
  local s = self._socket
  if self._name then
    local info, msg, code = api_json(s, "GET", "/containers/" .. urlencode(self._name) .. "/json",
      { what = "inspect " .. self._name, ok_status = { [404] = true } })
    if not info then return nil, msg, code end
    if info.Id then
      if not (info.State and info.State.Running) then
        local r, smsg, scode = api(s, "POST", "/containers/" .. info.Id .. "/start", { what = "start " .. self._name })
        if not r then return nil, smsg, scode end
      end
      self._container = info.Id
      return self:_ensure_work_dir()
    end
  end
  local image, msg, code = self:_resolve_image()
  if not image then return nil, msg, code end
  local path = "/containers/create" .. (self._name and ("?name=" .. urlencode(self._name)) or "")
  local created
  created, msg, code = api_json(s, "POST", path,
    { json = self:_create_spec(image), what = "create container from " .. image })
  if not created then return nil, msg, code end
  local r
  r, msg, code = api(s, "POST", "/containers/" .. created.Id .. "/start", { what = "start container" })
  if not r then
    api(s, "DELETE", "/containers/" .. created.Id .. "?force=1")
    return nil, msg, code
  end
  self._container = created.Id
  return true
end

-- A reused container may lack this sandbox's work_dir.
function Sandbox:_ensure_work_dir()
  local st = self:_stat(self.work_dir)
  if st and st.is_dir then return true end
  local ok, msg, code = self:_put_dirs(self.work_dir)
  if not ok then return nil, msg, code end
  return true
end

function Sandbox:is_alive()
  if not self._container then return false end
  local info = api_json(self._socket, "GET", "/containers/" .. self._container .. "/json")
  return info ~= nil and info.State ~= nil and info.State.Running == true
end

-- stop{purge = false}: stops the container (removed then when auto_remove); purge removes it.
function Sandbox:stop(opts)
  if opts ~= nil and type(opts) ~= "table" then error("stop: options must be a table", 2) end
  local purge = opts and opts.purge
  self:kill_all()
  local id = self._container
  if not id then return true end
  self._container = nil
  local s = self._socket
  if purge then
    local r, msg, code = api(s, "DELETE", "/containers/" .. id .. "?force=1&v=1",
      { what = "remove container", ok_status = { [404] = true } })
    if not r then return nil, msg, code end
    return true
  end
  local r, msg, code = api(s, "POST", "/containers/" .. id .. "/stop?t=2",
    { what = "stop container", ok_status = { [304] = true, [404] = true } })
  if not r then return nil, msg, code end
  return true
end

-- Commands ---------------------------------------------------------------------------------------

local DISABLED_CHARS = "\0"
local execute_options = { timeout = "number", env = "table", cwd = "string" }

function Sandbox:_exec_dir(cwd)
  if cwd == nil then return self.work_dir end
  -- a container path inside work_dir is taken as the virtual path below it
  if self.work_dir ~= "/" and (cwd == self.work_dir or cwd:sub(1, #self.work_dir + 1) == self.work_dir .. "/") then
    cwd = cwd:sub(#self.work_dir + 1)
  end
  local v, msg, code = bk.normalize(cwd)
  if not v then return nil, msg, code end
  return self:_cpath(v)
end

-- Creates an exec for command; returns the exec id and its kill token, or nil, msg, CODE.
function Sandbox:_exec_create(where, command, opts, background)
  if type(command) ~= "string" then error(where .. ": command must be a string, not a " .. type(command), 3) end
  if opts ~= nil and type(opts) ~= "table" then error(where .. ": options must be a table", 3) end
  opts = opts or {}
  check_options(where, opts, execute_options, 4)
  if command:find(DISABLED_CHARS, 1, true) then return nil, where .. ": the command contains a NUL byte", "INVALID" end
  local timeout = opts.timeout
  if timeout == nil and not background then timeout = self._timeout end
  if timeout ~= nil and timeout < 0 then error(where .. ": timeout must be >= 0", 3) end
  local ok, msg, code = self:start()
  if not ok then return nil, msg, code end
  local dir
  dir, msg, code = self:_exec_dir(opts.cwd)
  if not dir then return nil, where .. ": cwd: " .. msg, code end
  local token = random_hex(8)
  local env = { "MOONBOX_EXEC=" .. token }
  for k, v in pairs(opts.env or {}) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") or type(v) ~= "string" then
      error(where .. ": env must map NAME to string values", 3)
    end
    env[#env + 1] = k .. "=" .. v
  end
  local created
  created, msg, code = api_json(self._socket, "POST", "/containers/" .. self._container .. "/exec", {
    json = { AttachStdout = true, AttachStderr = true, AttachStdin = false, Tty = false,
      Cmd = { "/bin/sh", "-c", command }, Env = env, WorkingDir = dir },
    what = where,
  })
  if not created then
    if code == "NOT_FOUND" or code == "CONFLICT" then self._container = nil end
    return nil, msg, code
  end
  return created.Id, token, timeout
end

function Sandbox:_start_stream(exec_id, timeout)
  return native.stream {
    socket = self._socket, url = API .. "/exec/" .. exec_id .. "/start", body = '{"Detach":false,"Tty":false}',
    timeout = timeout, max_output = self._max_output,
  }
end

-- Kills every process inside the container carrying the exec's token (children and
-- grandchildren inherit it), a few passes so a process forking meanwhile is caught too.
local KILL_SCRIPT = [[
t="MOONBOX_EXEC=$1"; n=0
while [ $n -lt 5 ]; do
  found=0
  for d in /proc/[0-9]*; do
    if tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF "$t"; then
      kill -9 "${d#/proc/}" 2>/dev/null && found=1
    fi
  done
  [ $found = 0 ] && break
  n=$((n+1))
done
]]

function Sandbox:_kill_token(token)
  if not self._container then return end
  local created = api_json(self._socket, "POST", "/containers/" .. self._container .. "/exec", {
    json = { AttachStdout = true, AttachStderr = true, Tty = false, User = "0",
      Cmd = { "/bin/sh", "-c", KILL_SCRIPT, "moonbox-kill", token } },
  })
  if not created then return end
  local st = self:_start_stream(created.Id, 30)
  if st then
    st:wait()
    st:close()
  end
end

local function exec_exit_code(self, exec_id)
  local info, msg, code = api_json(self._socket, "GET", "/exec/" .. exec_id .. "/json", { what = "exec inspect" })
  if not info then return nil, msg, code end
  return info
end

function Sandbox:execute(command, opts)
  local t0 = task.now()
  local exec_id, token, timeout = self:_exec_create("execute", command, opts, false)
  if not exec_id then return nil, token, timeout end
  self:_touch()
  -- A task cancelled while it waits (or any early exit) leaves no command behind: a new task
  -- kills the exec's processes (the cancelled one can no longer wait for anything).
  local settled = false
  local _ <close> = setmetatable({}, { __close = function()
    if not settled then pcall(task.spawn, function() self:_kill_token(token) end) end
  end })
  local st, msg, code = self:_start_stream(exec_id, timeout)
  if not st then return nil, "execute: " .. msg, code end
  local ok
  ok, msg, code = st:wait()
  settled = ok == true
  local r = st:take()
  st:close()
  if not ok then return nil, "execute: " .. msg, code end
  r.running = nil
  if r.timed_out then
    self:_kill_token(token)
    r.exit_code = 124
  else
    local info, imsg, icode = exec_exit_code(self, exec_id)
    if not info then return nil, "execute: " .. imsg, icode end
    r.exit_code = info.ExitCode or -1
  end
  r.duration = task.now() - t0
  self:_touch()
  return r
end

function Sandbox:spawn(command, opts)
  local exec_id, token, timeout = self:_exec_create("spawn", command, opts, true)
  if not exec_id then return nil, token, timeout end
  local st, msg, code = self:_start_stream(exec_id, timeout)
  if not st then return nil, "spawn: " .. msg, code end
  self._bg_next = self._bg_next + 1
  local id = "bg_" .. self._bg_next
  self._bg[id] = { id = id, command = command, exec = exec_id, token = token, stream = st }
  self._bg_order[#self._bg_order + 1] = id
  self:_touch()
  return id
end

local function no_such(id)
  return nil, "No such background process: " .. tostring(id), "NOT_FOUND"
end

function Sandbox:_bg_finish(bg)
  if bg.exit_code ~= nil then return end
  local info = exec_exit_code(self, bg.exec)
  if info and not info.Running then bg.exit_code = bg.killed and 137 or info.ExitCode end
end

function Sandbox:read_output(id)
  local bg = self._bg[id]
  if not bg then return no_such(id) end
  local r = bg.stream:take()
  if not r.running then
    if bg.stream_timed_out == nil then bg.stream_timed_out = r.timed_out end
    if r.timed_out and not bg.killed then
      bg.killed = true
      self:_kill_token(bg.token)
      bg.exit_code = 124
    end
    self:_bg_finish(bg)
    if bg.exit_code == nil then r.running = true end
  end
  r.exit_code = not r.running and bg.exit_code or nil
  r.timed_out = nil
  r.id = id
  return r
end

function Sandbox:kill(id)
  local bg = self._bg[id]
  if not bg then return false end
  local running = bg.stream:running()
  if not running then
    self:_bg_finish(bg)
    if bg.exit_code ~= nil then return false end
  end
  bg.killed = true
  self:_kill_token(bg.token)
  if task.in_task() then bg.stream:wait() end
  self:_bg_finish(bg)
  if bg.exit_code == nil then bg.exit_code = 137 end
  return true
end

function Sandbox:list()
  local out = {}
  for _, id in ipairs(self._bg_order) do
    local bg = self._bg[id]
    if bg then
      local running = bg.stream:running()
      if not running then self:_bg_finish(bg) end
      running = bg.exit_code == nil
      out[#out + 1] = { id = id, command = bg.command, running = running, exit_code = bg.exit_code }
    end
  end
  return out
end

function Sandbox:kill_all()
  for _, id in ipairs(self._bg_order) do
    local bg = self._bg[id]
    if bg then
      if bg.stream:running() then self:_kill_token(bg.token) end
      bg.stream:close()
    end
  end
  self._bg, self._bg_order = {}, {}
  return true
end

-- Files ------------------------------------------------------------------------------------------

function Sandbox:_cpath(v)
  if v == "/" then return self.work_dir end
  if self.work_dir == "/" then return v end
  return self.work_dir .. v
end

function Sandbox:_archive_url(cpath)
  return "/containers/" .. self._container .. "/archive?path=" .. urlencode(cpath)
end

-- Stat of a container path through HEAD /archive: {is_dir, size, mtime, mode, link} or nil
-- (missing), or nil, msg, CODE.
function Sandbox:_stat(cpath)
  local r, msg, code = api(self._socket, "HEAD", self:_archive_url(cpath),
    { what = "stat " .. cpath, ok_status = { [404] = true, [400] = true } })
  if not r then return nil, msg, code end
  if r.status ~= 200 then return nil end
  local raw = r.headers["x-docker-container-path-stat"]
  local st = raw and json.decode(bk.base64_decode(raw) or "")
  if type(st) ~= "table" then return nil, "docker: stat " .. cpath .. ": no stat header from the daemon", "EIO" end
  local mode = math.tointeger(st.mode) or 0
  return {
    is_dir = (mode >> 31) & 1 == 1, is_link = (mode >> 27) & 1 == 1, size = st.size, mode = mode & 4095,
    link = st.linkTarget,
  }
end

-- The archive of a container path, decoded.
function Sandbox:_get_tar(cpath, with_data, max)
  local r, msg, code = api(self._socket, "GET", self:_archive_url(cpath),
    { what = "read " .. cpath, max_body = max })
  if not r then
    if code == "TOO_LARGE" then
      return nil, "docker: " .. cpath .. ": more than " .. max .. " bytes to fetch; use execute for trees this large",
        "TOO_LARGE"
    end
    return nil, msg, code
  end
  return native.tar_decode(r.body, with_data)
end

-- The container user's numeric uid/gid for files written through the archive API.
function Sandbox:_owner()
  local u = self._user or (self._runtime and self._runtime.run_as_uid and tostring(self._runtime.run_as_uid))
  if not u then return 0, 0 end
  local uid, gid = u:match("^(%d+):?(%d*)$")
  if not uid then return 0, 0 end
  return tonumber(uid), tonumber(gid ~= "" and gid or uid)
end

-- Creates the directories of cpath that are missing (mkdir -p); ENOTDIR when one is a file.
function Sandbox:_put_dirs(cpath)
  local missing = {}
  local dir = cpath
  while dir ~= "/" and dir ~= "" do
    local st, msg, code = self:_stat(dir)
    if msg then return nil, msg, code end
    if st then
      if not st.is_dir then return nil, dir .. " is a file, not a directory", "ENOTDIR" end
      break
    end
    table.insert(missing, 1, dir:match("[^/]+$"))
    dir = dir:match("^(.*)/[^/]*$")
    if dir == "" then dir = "/" end
  end
  if #missing == 0 then return dir end
  local uid, gid = self:_owner()
  local entries, rel = {}, nil
  for _, name in ipairs(missing) do
    rel = rel and (rel .. "/" .. name) or name
    entries[#entries + 1] = { name = rel, type = "dir", mode = 493, mtime = os.time(), uid = uid, gid = gid }
  end
  local ok, msg, code = self:_put(dir, native.tar_encode(entries))
  if not ok then return nil, msg, code end
  return cpath
end

function Sandbox:_put(dir, tar)
  local r, msg, code = api(self._socket, "PUT", self:_archive_url(dir) .. "&noOverwriteDirNonDir=1",
    { body = tar, headers = { ["Content-Type"] = "application/x-tar" }, what = "write into " .. dir })
  if not r then return nil, msg, code end
  return true
end

local function argcheck(fname, n, v, want)
  if type(v) ~= want then
    error(string.format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, want, type(v)), 3)
  end
end

-- Normalizes path and starts the container: virtual path, container path | nil, msg, CODE.
function Sandbox:_prep(path)
  local v, msg, code = bk.normalize(path)
  if not v then return nil, msg, code end
  local ok, smsg, scode = self:start()
  if not ok then return nil, smsg, scode end
  self:_touch()
  return v, self:_cpath(v)
end

-- The bytes of a regular file at virtual path v.
function Sandbox:_file_bytes(what, v, cpath)
  local st, msg, code = self:_stat(cpath)
  if msg then return nil, msg, code end
  if not st then return nil, what .. " " .. v .. ": no such file", "ENOENT" end
  if st.is_dir then return nil, what .. " " .. v .. ": is a directory", "EISDIR" end
  if st.size and st.size > self._max_read then
    return nil, string.format("%s %s: the file has %d bytes, more than max_read_bytes (%d)", what, v, st.size,
      self._max_read),
      "TOO_LARGE"
  end
  local entries
  entries, msg, code = self:_get_tar(cpath, true, self._max_read + 1024 * 1024)
  if not entries then return nil, msg, code end
  local e = entries[1]
  if not e then return nil, what .. " " .. v .. ": no such file", "ENOENT" end
  if e.type == "dir" then return nil, what .. " " .. v .. ": is a directory", "EISDIR" end
  return e.data or "", st
end

function Sandbox:read_bytes(path)
  argcheck("read_bytes", 1, path, "string")
  local v, cpath, code = self:_prep(path)
  if not v then return nil, cpath, code end
  local data, msg, dcode = self:_file_bytes("read_bytes", v, cpath)
  if not data then return nil, msg, dcode end
  return data
end

function Sandbox:read(path, offset, limit)
  argcheck("read", 1, path, "string")
  if offset ~= nil then argcheck("read", 2, offset, "number") end
  if limit ~= nil then argcheck("read", 3, limit, "number") end
  local v, cpath, code = self:_prep(path)
  if not v then return nil, cpath, code end
  local data, msg, dcode = self:_file_bytes("read", v, cpath)
  if not data then return nil, msg, dcode end
  return bk.format_read(data, offset, limit, v)
end

function Sandbox:exists(path)
  argcheck("exists", 1, path, "string")
  local v, cpath = self:_prep(path)
  if not v then return false end
  local st = self:_stat(cpath)
  return st ~= nil and not st.is_dir
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function Sandbox:_write(what, v, cpath, content, mode)
  local st, msg, code = self:_stat(cpath)
  if msg then return nil, msg, code end
  if st and st.is_dir then return nil, what .. " " .. v .. ": is a directory", "EISDIR" end
  local dir, name = cpath:match("^(.*)/([^/]+)$")
  if dir == "" then dir = "/" end
  local ok
  ok, msg, code = self:_put_dirs(dir)
  if not ok then return nil, what .. " " .. v .. ": " .. msg, code end
  local uid, gid = self:_owner()
  -- Atomic for readers inside the container too: the archive goes in under a temporary name in
  -- the same directory and rename(2) (an exec of mv) puts it in place, so nobody ever sees a
  -- half-written or missing file. (Docker's extraction itself unlinks and refills the target.)
  local tmp = string.format(".mb-%s-%06d.tmp", (name:sub(1, 40):gsub("[^%w._-]", "_")), math.random(0, 999999))
  local tar = native.tar_encode { { name = tmp, type = "file", data = content, mode = mode or (st and st.mode) or 420,
    mtime = os.time(), uid = uid, gid = gid } }
  ok, msg, code = self:_put(dir, tar)
  if not ok then return nil, msg, code end
  local tmp_path = (dir == "/" and "" or dir) .. "/" .. tmp
  local r, emsg, ecode = self:execute("mv -f -- " .. sh_quote(tmp_path) .. " " .. sh_quote(cpath), { timeout = 60 })
  if not r or r.exit_code ~= 0 then
    self:execute("rm -f -- " .. sh_quote(tmp_path), { timeout = 30 })
    return nil, string.format("%s %s: could not move the written file into place: %s", what, v,
      r and r.output or tostring(emsg)), r and "EIO" or ecode
  end
  return true
end

function Sandbox:write(path, content)
  argcheck("write", 1, path, "string")
  argcheck("write", 2, content, "string")
  local v, cpath, code = self:_prep(path)
  if not v then return nil, cpath, code end
  local ok, msg, wcode = self:_write("write", v, cpath, content)
  if not ok then return nil, msg, wcode end
  return { path = v }
end

function Sandbox:edit(path, old, new, replace_all)
  argcheck("edit", 1, path, "string")
  argcheck("edit", 2, old, "string")
  argcheck("edit", 3, new, "string")
  local v, cpath, code = self:_prep(path)
  if not v then return nil, cpath, code end
  if old == "" then return nil, "edit " .. v .. ": old string is empty", "INVALID" end
  if old == new then return nil, "edit " .. v .. ": old and new strings are the same", "INVALID" end
  local data, st, dcode = self:_file_bytes("edit", v, cpath)
  if not data then return nil, st, dcode end
  local out, n, ecode = bk.apply_edit(data, old, new, replace_all, v)
  if not out then return nil, n, ecode end
  local ok, msg, wcode = self:_write("edit", v, cpath, out, st.mode)
  if not ok then return nil, msg, wcode end
  return { path = v, occurrences = n }
end

-- The tree under virtual directory v: entries {rel, v, type, size, mtime, data?}, or the
-- single file when v is a file; nil, msg, CODE (ENOENT when missing).
function Sandbox:_tree(what, v, cpath, with_data)
  local st, msg, code = self:_stat(cpath)
  if msg then return nil, msg, code end
  if not st then return nil, what .. " " .. v .. ": no such file or directory", "ENOENT" end
  local entries
  entries, msg, code = self:_get_tar(cpath, with_data, TREE_MAX)
  if not entries then return nil, msg, code end
  local out = {}
  for _, e in ipairs(entries) do
    local name = e.name:gsub("/+$", "")
    local rel = name:match("^[^/]*/(.*)$") or ""
    e.rel = rel
    e.v = rel == "" and v or (v == "/" and "/" .. rel or v .. "/" .. rel)
    out[#out + 1] = e
  end
  return out, st
end

local function info_of(e)
  local name = e.v:match("[^/]*$")
  return { name = name, path = e.v, is_dir = e.type == "dir", size = e.type ~= "dir" and e.size or nil,
    modified_at = bk.iso8601(e.mtime) }
end

function Sandbox:ls(path)
  argcheck("ls", 1, path, "string")
  local v, cpath, code = self:_prep(path)
  if not v then return nil, cpath, code end
  local tree, st, tcode = self:_tree("ls", v, cpath, false)
  if not tree then return nil, st, tcode end
  if not st.is_dir then return { info_of(tree[1]) } end
  local out = {}
  for _, e in ipairs(tree) do
    if e.rel ~= "" and not e.rel:find("/", 1, true) then out[#out + 1] = info_of(e) end
  end
  table.sort(out, function(a, b)
    if a.is_dir ~= b.is_dir then return a.is_dir end
    return a.name < b.name
  end)
  return out
end

function Sandbox:glob(pattern, path)
  argcheck("glob", 1, pattern, "string")
  if path ~= nil then argcheck("glob", 2, path, "string") end
  local g, gmsg, gcode = bk.glob(pattern)
  if not g then return nil, gmsg, gcode end
  local v, cpath, code = self:_prep(path or "/")
  if not v then return nil, cpath, code end
  local tree, st, tcode = self:_tree("glob", v, cpath, false)
  if not tree then
    if tcode == "ENOENT" then return {} end
    return nil, st, tcode
  end
  local out = {}
  if st.is_dir then
    for _, e in ipairs(tree) do
      if e.rel ~= "" and e.type ~= "dir" and g:match(e.rel) then out[#out + 1] = e end
    end
  end
  table.sort(out, function(a, b)
    if a.mtime ~= b.mtime then return a.mtime > b.mtime end
    return a.v < b.v
  end)
  for i, e in ipairs(out) do out[i] = info_of(e) end
  g:close()
  return out
end

function Sandbox:grep(pattern, opts)
  argcheck("grep", 1, pattern, "string")
  if opts ~= nil then argcheck("grep", 2, opts, "table") end
  local o = bk.grep_opts(opts or {})
  local re, rmsg, rcode = bk.regex(pattern, { fixed = o.fixed, ignore_case = o.ignore_case })
  if not re then return nil, rmsg, rcode end
  local filter
  if o.glob then
    local g, gmsg, gcode = bk.glob(o.glob)
    if not g then return nil, gmsg, gcode end
    filter = g
  end
  local v, cpath, code = self:_prep(o.path or "/")
  if not v then return nil, cpath, code end
  local tree, st, tcode = self:_tree("grep", v, cpath, true)
  if not tree then return nil, st, tcode end
  local files = {}
  if not st.is_dir then
    files[1] = tree[1]
  else
    for _, e in ipairs(tree) do
      if e.type == "file" and e.rel ~= "" and not bk.grep_skips(e.rel, false, o.ignore_hidden)
        and (not filter or filter:filter(e.rel)) then
        files[#files + 1] = e
      end
    end
    table.sort(files, function(a, b) return a.v < b.v end)
  end
  local out, max = {}, o.max
  for _, e in ipairs(files) do
    if e.data and not bk.is_binary(e.data) then
      local left = max and max > 0 and (max - #out) or nil
      local hits = re:grep(e.data, left, e.v)
      for _, h in ipairs(hits or {}) do
        out[#out + 1] = { path = e.v, line_number = h.line_number or h[1], line = h.line or h[2] }
      end
      if max and max > 0 and #out >= max then break end
    end
  end
  re:close()
  if filter then filter:close() end
  return out
end

M.Sandbox = Sandbox

return M
