-- moonbox.daytona_sandbox: a sandbox hosted by Daytona (reference §4.4, DaytonaSandbox), over
-- Daytona's REST API with moonbox.http.
--
--   local sb, err, code = moonbox.daytona_sandbox{ api_key = (DAYTONA_API_KEY),
--     api_url = (DAYTONA_API_URL or "https://app.daytona.io/api"), sandbox_id = (attach to an
--     existing sandbox instead of creating one), work_dir = "/home/daytona", startup_timeout = 180,
--     timeout = 1800, max_output = 100000, params = { <extra fields of the create request> },
--     poll_interval = 2 }
--
-- As in the reference, the constructor creates the sandbox (POST /sandbox) and then runs
-- `echo ready` every poll_interval seconds until it answers; if that does not happen within
-- startup_timeout the sandbox is deleted and the constructor fails with "Daytona sandbox failed
-- to start within N seconds" (TIMEOUT). Without a key it fails with "Daytona API key is
-- required. Pass api_key= or set DAYTONA_API_KEY." (CONFIG). start() is a no-op.
--
-- Endpoints (Authorization: Bearer <key>):
--   POST /sandbox, GET /sandbox/{id} (info), DELETE /sandbox/{id} (stop)
--   POST /toolbox/{id}/toolbox/process/execute {command, cwd, timeout} -> {exitCode, result}
--   GET  /toolbox/{id}/toolbox/files/download?path=   (read_bytes, read, edit)
--   POST /toolbox/{id}/toolbox/files/upload?path=     (write, edit: multipart field "file")
--   GET  /toolbox/{id}/toolbox/files/info?path=       (exists)
-- execute returns {output, stdout = output, stderr = "", exit_code, truncated, timed_out,
-- duration}; Daytona merges the streams. A command runs as `sh -c <command>` in work_dir; exit
-- code 124 (or an HTTP 408 from the toolbox) means it timed out. ls, glob, grep, the file
-- checks and background processes go through commands (moonbox.remote_files).
--
-- Fail codes: CONFIG, AUTH (401/403), NOT_FOUND, HTTP (other statuses), TIMEOUT, EIO, and
-- moonbox.http's.
local json = require "moonbox.json"
local http = require "moonbox.http"
local task = require "moonbox.task"
local remote_files = require "moonbox.remote_files"

local M = {}

local KEY_REQUIRED = "Daytona API key is required. Pass api_key= or set DAYTONA_API_KEY."
local MAX_OUTPUT = 100000

local function urlencode(s)
  return (s:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- A path segment: "/" escaped too, so an id cannot reach another endpoint.
local function segment(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function random_hex(n)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(n) or tostring(os.time()) .. tostring(os.clock())
  if f then f:close() end
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local Sandbox = {}

-- One API call: the response (status < 400) or nil, msg, CODE.
function Sandbox:_call(method, path, what, body, headers, timeout)
  local h = { Authorization = "Bearer " .. self._key, Accept = "application/json" }
  for k, v in pairs(headers or {}) do h[k] = v end
  if type(body) == "table" then
    body = json.encode(body)
    h["Content-Type"] = "application/json"
  end
  local r, msg, code = http.request {
    url = self.api_url .. path, method = method, headers = h, body = body, timeout = timeout or 60,
  }
  if not r then return nil, "daytona: " .. what .. ": " .. msg, code end
  if r.status >= 400 then
    local detail = r.body or ""
    local ok, v = pcall(json.decode, detail)
    if ok and type(v) == "table" and v.message then detail = tostring(v.message) end
    local c = (r.status == 401 or r.status == 403) and "AUTH" or r.status == 404 and "NOT_FOUND"
      or r.status == 408 and "TIMEOUT" or "HTTP"
    return nil, string.format("daytona: %s: HTTP %d: %s", what, r.status, detail:sub(1, 300)), c
  end
  return r
end

function Sandbox:_json(method, path, what, body)
  local r, msg, code = self:_call(method, path, what, body)
  if not r then return nil, msg, code end
  local ok, v = pcall(json.decode, r.body)
  if not ok or type(v) ~= "table" then return nil, "daytona: " .. what .. ": the answer is not a JSON object", "EIO" end
  return v
end

function Sandbox:_toolbox(rest) return "/toolbox/" .. segment(self.id) .. "/toolbox" .. rest end

-- Runs `sh -c command` in dir; { output, exit_code, timed_out } | nil, msg, CODE.
function Sandbox:_process(command, timeout, cwd)
  local t = math.max(1, math.ceil(timeout))
  local v, msg, code = self:_json("POST", self:_toolbox("/process/execute"), "process execute",
    { command = "sh -c " .. remote_files.quote(command), cwd = cwd or self.work_dir, timeout = t })
  if not v then
    if code == "TIMEOUT" then return { output = "", exit_code = 124, timed_out = true } end
    return nil, msg, code
  end
  local ec = math.tointeger(v.exitCode) or 1
  self.last_activity = task.now()
  return { output = type(v.result) == "string" and v.result or "", exit_code = ec, timed_out = ec == 124 }
end

function Sandbox.start(_) return true end

function Sandbox:info()
  return self:_json("GET", "/sandbox/" .. segment(self.id), "sandbox info")
end

function Sandbox:is_alive()
  if self._stopped then return false end
  local r = self:_process("echo ok", 10)
  return r ~= nil and r.exit_code == 0
end

function Sandbox:stop()
  if self._stopped then return true end
  self._bg:kill_all()
  self._stopped = true
  local ok, msg, code = self:_call("DELETE", "/sandbox/" .. segment(self.id), "delete sandbox")
  if not ok and code ~= "NOT_FOUND" then return nil, msg, code end
  return true
end

local execute_options = { timeout = "number", cwd = "string" }

local function check_exec_args(where, command, opts)
  return remote_files.check_exec_args(where, command, opts, execute_options, 4)
end

function Sandbox:_cwd(cwd)
  if cwd == nil then return self.work_dir end
  if cwd:sub(1, 1) == "/" then return cwd end
  return self.work_dir .. "/" .. cwd
end

-- execute(command [, {timeout = 1800, cwd}]) --> {output, stdout, stderr, exit_code, truncated,
-- timed_out, duration} | nil, msg, CODE
function Sandbox:execute(command, opts)
  local ok, msg, code = check_exec_args("execute", command, opts)
  if not ok then return nil, msg, code end
  opts = opts or {}
  local timeout = opts.timeout or self._timeout
  if timeout < 0 then error("execute: timeout must be >= 0", 2) end
  local t0 = task.now()
  local r
  r, msg, code = self:_process(command, timeout, self:_cwd(opts.cwd))
  if not r then return nil, "execute: " .. msg, code end
  local out, truncated = r.output, false
  if #out > self._max_output then out, truncated = out:sub(1, self._max_output), true end
  return { output = out, stdout = out, stderr = "", exit_code = r.exit_code, truncated = truncated,
    timed_out = r.timed_out, duration = task.now() - t0 }
end

function Sandbox:spawn(command, opts)
  local ok, msg, code = check_exec_args("spawn", command, opts)
  if not ok then return nil, msg, code end
  local pre = ""
  if opts and opts.cwd then pre = "cd " .. remote_files.quote(self:_cwd(opts.cwd)) .. " || exit 1; " end
  return self._bg:spawn(pre .. command)
end

function Sandbox:read_output(id) return self._bg:read_output(id) end
function Sandbox:kill(id) return self._bg:kill(id) end
function Sandbox:list() return self._bg:list() end
function Sandbox:kill_all() return self._bg:kill_all() end

-- exists through the file-info endpoint (a regular file, not a directory), as the reference.
function Sandbox:exists(path)
  if type(path) ~= "string" then error("bad argument #1 to 'exists' (string expected, got " .. type(path) .. ")", 2) end
  local p = require("moonbox.backend").normalize(path)
  if not p then return false end
  local v = self:_json("GET", self:_toolbox("/files/info?path=" .. urlencode(self._files:_remote(p))), "file info")
  return v ~= nil and v.isDir == false
end

M._meta = {
  __name = "moonbox.daytona.Sandbox",
  __index = function(self, key)
    local m = Sandbox[key]
    if m ~= nil then return m end
    if type(key) ~= "string" or key:sub(1, 1) == "_" then return nil end
    local f = remote_files.Files[key]
    if type(f) ~= "function" then return nil end
    local bound = function(s, ...) return f(s._files, ...) end
    rawset(self, key, bound)
    return bound
  end,
  __tostring = function(self) return "moonbox.daytona.Sandbox: " .. self.id end,
}

local options = {
  api_key = "string", api_url = "string", sandbox_id = "string", work_dir = "string", startup_timeout = "number",
  timeout = "number", max_output = "number", params = "table", poll_interval = "number",
}

function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("daytona_sandbox: expects a table of options", 2) end
  for k, v in pairs(opts) do
    local want = options[k]
    if not want then error("daytona_sandbox: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= want then
      error(string.format("daytona_sandbox: %s must be a %s, not a %s", k, want, type(v)), 2)
    end
  end
  local key = opts.api_key or os.getenv("DAYTONA_API_KEY")
  if not key or key == "" then return nil, KEY_REQUIRED, "CONFIG" end
  local self = setmetatable({
    kind = "daytona",
    api_url = (opts.api_url or os.getenv("DAYTONA_API_URL") or "https://app.daytona.io/api"):gsub("/+$", ""),
    work_dir = (opts.work_dir or "/home/daytona"):gsub("(.)/+$", "%1"),
    _key = key,
    _timeout = opts.timeout or 1800,
    _max_output = math.tointeger(opts.max_output or MAX_OUTPUT),
    last_activity = task.now(), -- task.now() seconds, as the session manager reads it
  }, M._meta)
  self.root = self.work_dir
  local startup = opts.startup_timeout or 180
  if opts.sandbox_id then
    self.id = opts.sandbox_id
    local info, msg, code = self:info()
    if not info then return nil, msg, code end
  else
    local created, msg, code = self:_json("POST", "/sandbox", "create sandbox", opts.params or {})
    if not created then return nil, msg, code end
    if type(created.id) ~= "string" then return nil, "daytona: create sandbox: the answer has no id", "EIO" end
    self.id = created.id
  end
  local function run(script, timeout)
    local r, msg, code = self:_process(script, timeout)
    if not r then return nil, msg, code end
    return r.output, r.exit_code
  end
  self._files = remote_files.new {
    root = self.work_dir, run = run,
    read_raw = function(remote)
      local r, msg, code = self:_call("GET", self:_toolbox("/files/download?path=" .. urlencode(remote)), "download")
      if not r then return nil, msg, code end
      return r.body
    end,
    write_raw = function(remote, content)
      local boundary = "moonbox-" .. random_hex(12)
      local body = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\""
        .. (remote:match("[^/]*$"):gsub('["\r\n]', "_")) .. "\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        .. content .. "\r\n--" .. boundary .. "--\r\n"
      return self:_call("POST", self:_toolbox("/files/upload?path=" .. urlencode(remote)), "upload", body,
        { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary })
    end,
  }
  self._bg = remote_files.background { run = run, cwd = self.work_dir, tag = "dt" .. random_hex(4) }
  -- wait until the sandbox answers a command
  local deadline = task.now() + startup
  local interval = opts.poll_interval or 2
  while true do
    local r = self:_process("echo ready", 5)
    if r and r.exit_code == 0 and r.output:find("ready", 1, true) then break end
    if task.now() + interval > deadline then
      self:_call("DELETE", "/sandbox/" .. segment(self.id), "delete sandbox")
      return nil, string.format("Daytona sandbox failed to start within %s seconds", startup), "TIMEOUT"
    end
    task.sleep(interval)
  end
  return self
end

M.Sandbox = Sandbox
M.daytona_sandbox = M.new

return M
