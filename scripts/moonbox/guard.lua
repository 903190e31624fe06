-- moonbox.guard: any backend or sandbox, with a permission ruleset enforced (reference §3.5, §8.5).
--
--   local g = moonbox.guard(backend, moonbox.permissions.presets.DEFAULT, {
--     ask = function(op, target, reason) return true end,  -- optional; may yield in a task
--     ask_fallback = "error",   -- or "deny": what an "ask" does with no callback
--     cwd = "/",                -- where a command's relative paths resolve (backend paths)
--     root = "/srv/ws",         -- host directory behind "/" (default: the backend's root
--                               -- field or root() method): command paths under it are
--                               -- checked as backend paths too
--     home = os.getenv("HOME"), -- what ~ expands to in command paths
--   })
--
-- read, read_bytes, write, edit: checked first; a refusal is nil, message, "DENIED" (or "ASK"
-- with ask_fallback "error") and the backend is not called. ls and glob drop entries denied for
-- ls / glob (an "ask" stays visible), and a denied base path lists nothing. grep drops matches in
-- files denied for grep or read, and refuses a search path denied for grep. execute and spawn
-- check the command's rules (every simple command, see moonbox.permissions), then every word of
-- the command (and the value of --flag=value or A=value) as a path against the read and write
-- deny rules; that second check is defence in depth, not a boundary. files() (state_backend's
-- export) drops files denied for read. exists is not filtered.
-- Every other field or method is the backend's own, called on the backend.
-- moonbox.guarding(backend, ruleset, opts) wraps only what is not guarded already.
local perms = require "moonbox.permissions"
local shellsplit = require "moonbox.shellsplit"

local M = {}

local Guard = {}
local GUARD_OPTIONS = { ask = true, ask_fallback = true, cwd = true, root = true, home = true }

local function fail(fmt, ...)
  error("guard: " .. string.format(fmt, ...), 3)
end

-- "/a//b/./c/../d" -> "/a/b/d" (lexical; ".." at the top stays at "/").
local function normalize(path)
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      if #parts > 0 then parts[#parts] = nil end
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  return "/" .. table.concat(parts, "/")
end
M._normalize = normalize

-- The path forms a command word may stand for, in the order they are checked.
local function path_forms(self, word, out, seen)
  local function add(p)
    if p ~= "" and not seen[p] then
      seen[p] = true
      out[#out + 1] = p
    end
  end
  local values = { word }
  local eq = word:find("=", 1, true)
  if eq then values[2] = word:sub(eq + 1) end
  for _, v in ipairs(values) do
    if v ~= "" then
      add(v)
      local expanded = v
      if self._home and (v == "~" or v:sub(1, 2) == "~/") then expanded = self._home .. v:sub(2) end
      local abs = expanded
      if expanded:sub(1, 1) ~= "/" then
        abs = (self._cwd == "/" and "" or self._cwd) .. "/" .. expanded
      end
      add(abs)
      local norm = normalize(abs)
      add(norm)
      local root = self._root
      if root then
        for _, p in ipairs({ abs, norm }) do
          if p == root then
            add("/")
          elseif p:sub(1, #root + 1) == root .. "/" then
            add(normalize(p:sub(#root + 1)))
          end
        end
      end
    end
  end
end

-- nil, message, "DENIED" when a word of the command names a path denied for read or write.
function Guard:_command_paths(command)
  local split = shellsplit.analyze(command)
  local forms, seen = {}, {}
  for _, w in ipairs(split.words) do path_forms(self, w, forms, seen) end
  local checker = self._checker
  for _, p in ipairs(forms) do
    for _, op in ipairs({ "read", "write" }) do
      if checker:check(op, p) == "deny" then
        return nil, string.format("Permission denied: command references '%s', which is denied for %s",
          p, op), "DENIED"
      end
    end
  end
  return true
end

function Guard:_authorize_command(command)
  if type(command) ~= "string" then
    fail("execute: command must be a string, got %s", type(command))
  end
  local checker = self._checker
  local action, rule = checker:check("execute", command)
  if action == "deny" then return perms._denied("execute", command, rule and rule.description) end
  local ok, msg, code = self:_command_paths(command)
  if not ok then return nil, msg, code end
  return checker:_decide("execute", command, action, rule)
end

local function path_arg(method, path)
  if type(path) ~= "string" then fail("%s: path must be a string, got %s", method, type(path)) end
  return path
end

local function call(self, method, ...)
  local b = self._backend
  local fn = b[method]
  if fn == nil then fail("the wrapped backend has no %s method", method) end
  return fn(b, ...)
end

local function gated(op, method)
  return function(self, path, ...)
    local ok, msg, code = self._checker:authorize(op, path_arg(method, path))
    if not ok then return nil, msg, code end
    return call(self, method, path, ...)
  end
end

Guard.read = gated("read", "read")
Guard.read_bytes = gated("read", "read_bytes")
Guard.write = gated("write", "write")
Guard.edit = gated("edit", "edit")

function Guard:exists(...)
  return call(self, "exists", ...)
end

local function filter(self, op, list, also)
  if type(list) ~= "table" then return list end
  local out, checker = {}, self._checker
  for _, item in ipairs(list) do
    local p = type(item) == "table" and item.path
    local hidden = type(p) == "string" and (checker:check(op, p) == "deny" or
      (also and checker:check(also, p) == "deny"))
    if not hidden then out[#out + 1] = item end
  end
  return out
end

function Guard:ls(path, ...)
  if path ~= nil and self._checker:check("ls", path_arg("ls", path)) == "deny" then return {} end
  local list, msg, code = call(self, "ls", path, ...)
  if list == nil then return nil, msg, code end
  return filter(self, "ls", list)
end

function Guard:glob(pattern, path, ...)
  if path ~= nil and self._checker:check("glob", path_arg("glob", path)) == "deny" then return {} end
  local list, msg, code = call(self, "glob", pattern, path, ...)
  if list == nil then return nil, msg, code end
  return filter(self, "glob", list)
end

function Guard:grep(pattern, opts, ...)
  local base = type(opts) == "table" and opts.path
  if type(base) == "string" then
    local action, rule = self._checker:check("grep", base)
    if action == "deny" then return perms._denied("grep", base, rule and rule.description) end
  end
  local list, msg, code = call(self, "grep", pattern, opts, ...)
  if list == nil then return nil, msg, code end
  return filter(self, "grep", list, "read")
end

local function gated_command(method)
  return function(self, command, ...)
    local ok, msg, code = self:_authorize_command(command)
    if not ok then return nil, msg, code end
    return call(self, method, command, ...)
  end
end

-- state_backend:files() exports every file with its content: drop what read rules deny.
local function guarded_files(self, ...)
  local all, msg, code = call(self, "files", ...)
  if type(all) ~= "table" then return all, msg, code end
  local out, checker = {}, self._checker
  for path, entry in pairs(all) do
    if type(path) ~= "string" or checker:check("read", path) ~= "deny" then out[path] = entry end
  end
  return out
end

local COMMAND_METHODS = {
  execute = gated_command("execute"), spawn = gated_command("spawn"), files = guarded_files,
}

local MT = { __name = "moonbox.guard.Guard" }

function MT.__index(self, key)
  local own = Guard[key]
  if own then return own end
  local b = rawget(self, "_backend")
  local ok, value = pcall(function() return b[key] end)
  if not ok or value == nil then return nil end
  if COMMAND_METHODS[key] then return COMMAND_METHODS[key] end
  if type(value) == "function" then
    local bound = function(_, ...) return value(b, ...) end
    rawset(self, key, bound)
    return bound
  end
  return value
end

function MT.__tostring(self)
  return "moonbox.guard.Guard(" .. tostring(rawget(self, "_backend")) .. ")"
end

-- moonbox.guard(backend, ruleset, opts) --> a backend with the ruleset enforced.
function M.guard(backend, ruleset, opts)
  local bt = type(backend)
  if bt ~= "table" and bt ~= "userdata" then
    fail("backend must be a table or userdata, got %s", bt)
  end
  if ruleset == nil then fail("a ruleset is required (e.g. moonbox.permissions.presets.DEFAULT)") end
  opts = opts or {}
  if type(opts) ~= "table" then fail("options must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if not GUARD_OPTIONS[k] then
      fail("unknown option '%s' (expected ask, ask_fallback, cwd, root, home)", tostring(k))
    end
  end
  for _, k in ipairs({ "cwd", "root", "home" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      fail("%s must be a string, got %s", k, type(opts[k]))
    end
  end
  local checker = perms.checker(ruleset, { ask = opts.ask, ask_fallback = opts.ask_fallback })
  local root = opts.root
  if root == nil then -- a sandbox's root field, a local backend's root() method
    local ok, r = pcall(function()
      local v = backend.root
      if type(v) == "function" then v = v(backend) end
      return v
    end)
    if ok and type(r) == "string" and r:sub(1, 1) == "/" then root = r end
  end
  root = root and normalize(root)
  if root == "/" then root = nil end
  local self = {
    _backend = backend,
    _checker = checker,
    _cwd = normalize(opts.cwd or "/"),
    _root = root,
    _home = opts.home or os.getenv("HOME"),
    permissions = checker.ruleset,
    checker = checker,
    backend = backend,
  }
  return setmetatable(self, MT)
end

-- The reference's guarding(): the backend unchanged when there is no ruleset or it already
-- enforces one (it has a `permissions` field, as a guard or a guarded local_backend does), so a
-- caller never wraps twice and asks twice; else moonbox.guard(backend, ruleset, opts).
function M.guarding(backend, ruleset, opts)
  if ruleset == nil then return backend end
  local ok, existing = pcall(function() return backend.permissions end)
  if ok and existing ~= nil then return backend end
  return M.guard(backend, ruleset, opts)
end

local LOCAL_GUARD_OPTIONS = { permissions = true, ask = true, ask_fallback = true }

-- moonbox.local_backend{root =, ..., permissions = ruleset, ask = fn, ask_fallback = "error"}:
-- the native local backend, guarded when permissions are given (paths in commands that name
-- the host root are checked as the backend's own paths).
function M.local_backend(opts)
  local localfs = require "moonbox.localfs"
  if type(opts) ~= "table" or opts.permissions == nil then
    if type(opts) == "table" and (opts.ask ~= nil or opts.ask_fallback ~= nil) then
      error("local_backend: ask and ask_fallback need permissions (a ruleset)", 2)
    end
    return localfs.local_backend(opts)
  end
  local inner = {}
  for k, v in pairs(opts) do
    if not LOCAL_GUARD_OPTIONS[k] then inner[k] = v end
  end
  local backend, msg, code = localfs.local_backend(inner)
  if not backend then return nil, msg, code end
  return M.guard(backend, opts.permissions, {
    ask = opts.ask, ask_fallback = opts.ask_fallback, root = backend:root(),
  })
end

return M
