-- moonbox.composite: one backend made of several, routed by path prefix (reference §3.3).
--
--   local b = moonbox.composite_backend{
--     default = disk,                                 -- everything no route claims
--     routes = { ["/memories/"] = mem, ["/tmp/scratch/"] = scratch },
--     strip_prefix = true,                            -- mount semantics (the default)
--   }
--
-- Routing: the longest matching prefix wins; a route "/foo/" (or "/foo") takes "/foo" and
-- "/foo/x" but not "/foobar". With strip_prefix (the default) a route is a mount: its backend
-- sees the path below the prefix ("/memories/a.md" -> "/a.md") and every path it returns (write,
-- edit, ls, glob, grep) comes back with the prefix in front, so a route can be any backend,
-- including a local_backend with its own root. strip_prefix = false is the reference's
-- pass-through: the routed backend sees the full path and its results are returned as they are.
--
-- Listings: ls of a directory shows one directory entry per route mounted below it (ls "/" shows
-- /memories beside the default's root), merged with the backend's own entries, directories first
-- then by name. glob and grep span every route below their base path: the base's backend first,
-- then each route (a glob pattern, or a grep glob containing "/", is matched against the mount
-- path and only its remainder is passed on); results are sorted as the protocol says (glob:
-- newest first, then path; grep: path, then line), grep's max applies to the merged list, and
-- the first error is returned. Entries of a backend that lie under a deeper route are hidden:
-- the route shadows them. grep skips a mount whose path is hidden (or a VCS/dependency/build
-- directory) unless ignore_hidden is false, as a backend skips such directories.
--
-- Sandboxes: execute, spawn, read_output, kill, list, kill_all, start, stop, is_alive and id go
-- to the default when it has them; a composite over a plain backend has no execute.
-- Works over any backend, native userdata or Lua table. Misuse raises; failures are the
-- backends' own nil, message, CODE (a message naming a mounted path names it from outside).
local M = {}

local Composite = {}
local CompositeMT = { __index = Composite, __name = "moonbox.composite.Backend" }

local OPTIONS = { default = true, routes = true, strip_prefix = true }
local SANDBOX_METHODS = { "execute", "spawn", "read_output", "kill", "list", "kill_all", "start", "stop",
  "is_alive" }
local BACKEND_METHODS = { "exists", "ls", "read", "read_bytes", "write", "edit", "glob", "grep" }
local SKIP_DIRS = {}
for _, d in ipairs({ ".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache",
  ".pytest_cache", ".ruff_cache", ".eggs", "build", "dist" }) do
  SKIP_DIRS[d] = true
end
local MAX_BRACE_ALTERNATIVES = 256

-- Helpers -------------------------------------------------------------------------------------

local function argerror(fname, n, msg)
  error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function check_string(fname, n, v)
  if type(v) ~= "string" then argerror(fname, n, "string expected, got " .. type(v)) end
end

local function segments(path)
  local segs = {}
  for s in path:gmatch("[^/]+") do
    if s ~= "." then segs[#segs + 1] = s end
  end
  return segs
end

-- "/a//./b/" -> "/a/b"; ".." is kept, for the backend to refuse.
local function normalize(path) return "/" .. table.concat(segments(path), "/") end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Is `path` (normalized) `base` or below it?
local function under(path, base)
  if base == "/" then return true end
  return path == base or path:sub(1, #base + 1) == base .. "/"
end

-- "{a,b}c" -> { "ac", "bc" }, nested braces included; at most MAX_BRACE_ALTERNATIVES results.
local function expand_braces(pattern, out)
  out = out or {}
  local open, depth, close = nil, 0, nil
  local commas = {}
  for i = 1, #pattern do
    local c = pattern:sub(i, i)
    if c == "{" then
      if depth == 0 then open, commas = i, {} end
      depth = depth + 1
    elseif c == "}" and depth > 0 then
      depth = depth - 1
      if depth == 0 then
        if #commas > 0 then
          close = i
          break
        end
        open = nil
      end
    elseif c == "," and depth == 1 then
      commas[#commas + 1] = i
    end
  end
  if not close then
    if #out < MAX_BRACE_ALTERNATIVES then out[#out + 1] = pattern end
    return out
  end
  local head, tail = pattern:sub(1, open - 1), pattern:sub(close + 1)
  local from = open + 1
  commas[#commas + 1] = close
  for _, at in ipairs(commas) do
    expand_braces(head .. pattern:sub(from, at - 1) .. tail, out)
    from = at + 1
  end
  return out
end

-- One path segment's glob (*, ?, [...], [!...]) as an anchored Lua pattern.
local function segment_pattern(seg)
  local out, i, n = { "^" }, 1, #seg
  while i <= n do
    local c = seg:sub(i, i)
    if c == "*" then
      out[#out + 1] = ".*"
    elseif c == "?" then
      out[#out + 1] = utf8.charpattern
    elseif c == "[" then
      local j = i + 1
      if seg:sub(j, j) == "!" or seg:sub(j, j) == "^" then j = j + 1 end
      if seg:sub(j, j) == "]" then j = j + 1 end
      local close = seg:find("]", j, true)
      if close then
        local body = seg:sub(i + 1, close - 1)
        local neg = body:match("^[!^]")
        if neg then body = body:sub(2) end
        out[#out + 1] = "[" .. (neg and "^" or "") .. body:gsub("%%", "%%%%") .. "]"
        i = close
      else
        out[#out + 1] = "%["
      end
    else
      out[#out + 1] = (c:gsub("%p", "%%%0"))
    end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

-- The patterns that a backend mounted at `rel` (segments below the search base) must match for
-- its files to match `pattern` from the base. `**` may stop before, inside or past the mount.
local function residuals(pattern, rel)
  local out, seen = {}, {}
  for _, alt in ipairs(expand_braces((pattern:gsub("^/+", "")))) do
    local p = segments(alt)
    local visited = {}
    local function walk(i, j)
      local key = i .. ":" .. j
      if visited[key] then return end
      visited[key] = true
      if j > #rel then
        if i <= #p then
          local rest = table.concat(p, "/", i)
          if not seen[rest] then
            seen[rest] = true
            out[#out + 1] = rest
          end
        end
        return
      end
      local seg = p[i]
      if seg == nil then return end -- the pattern ends at a directory: no files
      if seg == "**" then
        walk(i + 1, j)
        walk(i, j + 1)
      elseif rel[j]:match(segment_pattern(seg)) then
        walk(i + 1, j + 1)
      end
    end
    walk(1, 1)
  end
  return out
end

-- A matcher for the segments of a path against a brace-free glob with **, from its start.
local function path_matcher(glob)
  local pats = {}
  for i, seg in ipairs(segments(glob)) do pats[i] = seg ~= "**" and segment_pattern(seg) or false end
  return function(segs)
    local memo = {}
    local function m(i, j)
      local key = i .. ":" .. j
      if memo[key] ~= nil then return memo[key] end
      local ok
      if i > #pats then
        ok = j > #segs
      elseif pats[i] == false then
        ok = m(i + 1, j) or (j <= #segs and m(i, j + 1))
      else
        ok = j <= #segs and segs[j]:match(pats[i]) ~= nil and m(i + 1, j + 1)
      end
      memo[key] = ok
      return ok
    end
    return m(1, 1)
  end
end

-- Routing ---------------------------------------------------------------------------------------

-- The route that owns `norm` (longest prefix), or nil for the default.
function Composite:_match(norm)
  for _, r in ipairs(self._routes) do
    if norm == r.prefix or norm:sub(1, #r.prefix + 1) == r.prefix .. "/" then return r end
  end
  return nil
end

function Composite:_backend(r) return r and r.backend or self._default end

-- The path the owning backend is given for `path` (normalized to `norm`).
function Composite:_inner(r, norm, path)
  if r == nil then return path end
  if not self._strip then return norm end
  local rest = norm:sub(#r.prefix + 1)
  return rest == "" and "/" or rest
end

-- The path the owner's root has for a search (its mount point).
function Composite:_root(r) return self._strip and "/" or r.prefix end

-- A path a routed backend returned, as seen from outside.
function Composite:_outer(r, p)
  if r == nil or not self._strip or type(p) ~= "string" then return p end
  if p == "/" or p == "" then return r.prefix end
  if p:sub(1, 1) ~= "/" then p = "/" .. p end
  return r.prefix .. p
end

-- A failure message from a mounted backend names the path as the caller wrote it.
function Composite:_message(r, inner, outer, msg)
  if r == nil or not self._strip or type(msg) ~= "string" or inner == "/" then return msg end
  local s, e = msg:find(inner, 1, true)
  if not s then return msg end
  local after = msg:sub(e + 1, e + 1)
  if after:match("[%w_%.%-/]") then return msg end
  return msg:sub(1, s - 1) .. outer .. msg:sub(e + 1)
end

-- Routes strictly below the search base `norm` (other than its owner `owner`), each with the
-- segments from the base down to its mount point.
function Composite:_below(norm, owner)
  local list = {}
  local depth = #segments(norm)
  for _, r in ipairs(self._by_name) do
    if r ~= owner and r.prefix ~= norm and under(r.prefix, norm) then
      local rel = {}
      for k = depth + 1, #r.segs do rel[#rel + 1] = r.segs[k] end
      list[#list + 1] = { route = r, rel = rel }
    end
  end
  return list
end

-- Entries of backend `r` re-prefixed; those that a deeper route shadows are dropped.
function Composite:_collect(r, list, out, key, seen)
  for _, e in ipairs(list) do
    local path = self:_outer(r, e.path)
    if type(path) ~= "string" or self:_match(normalize(path)) == r then
      local k = key(path, e)
      if not seen[k] then
        seen[k] = true
        local c = copy(e)
        c.path = path
        out[#out + 1] = c
      end
    end
  end
end

local function reprefixed(self, r, list)
  if r == nil or not self._strip then return list end
  local out = {}
  for i, e in ipairs(list) do
    local c = copy(e)
    c.path = self:_outer(r, e.path)
    out[i] = c
  end
  return out
end

-- Single-path operations ------------------------------------------------------------------------

-- Method calls written out, so a backend's own argument errors name the method and count the
-- arguments as the caller wrote them ("bad argument #2 to 'write'").
local CALL = {
  read = function(b, p, ...) return b:read(p, ...) end,
  read_bytes = function(b, p) return b:read_bytes(p) end,
  write = function(b, p, ...) return b:write(p, ...) end,
  edit = function(b, p, ...) return b:edit(p, ...) end,
}

-- Calls `method` on the owner of `path` with the inner path and the other arguments; re-prefixes
-- a result's path and a failure's message.
local function single(self, method, path, ...)
  local norm = normalize(path)
  local r = self:_match(norm)
  local inner = self:_inner(r, norm, path)
  local res, msg, code = CALL[method](self:_backend(r), inner, ...)
  if res == nil then return nil, self:_message(r, inner, norm, msg), code end
  if type(res) == "table" and r ~= nil and self._strip then
    res = copy(res)
    res.path = self:_outer(r, res.path)
  end
  return res, msg, code
end

function Composite:exists(path)
  check_string("exists", 1, path)
  local norm = normalize(path)
  local r = self:_match(norm)
  return self:_backend(r):exists(self:_inner(r, norm, path))
end

function Composite:read(path, ...)
  check_string("read", 1, path)
  return single(self, "read", path, ...)
end

function Composite:read_bytes(path)
  check_string("read_bytes", 1, path)
  return single(self, "read_bytes", path)
end

function Composite:write(path, ...)
  check_string("write", 1, path)
  return single(self, "write", path, ...)
end

function Composite:edit(path, ...)
  check_string("edit", 1, path)
  return single(self, "edit", path, ...)
end

-- ls ------------------------------------------------------------------------------------------

local function dirs_first(a, b)
  if a.is_dir ~= b.is_dir then return a.is_dir end
  return a.name < b.name
end

function Composite:ls(path)
  check_string("ls", 1, path)
  local norm = normalize(path)
  local r = self:_match(norm)
  local inner = self:_inner(r, norm, path)
  local list, msg, code = self:_backend(r):ls(inner)
  if list == nil and code == "ENOENT" and r and norm == r.prefix then list = {} end
  local below = self:_below(norm, r)
  if list == nil and not (code == "ENOENT" and #below > 0) then
    return nil, self:_message(r, inner, norm, msg), code
  end
  if #below == 0 then return reprefixed(self, r, list) end
  local out, seen = {}, {}
  self:_collect(r, list or {}, out, function(p) return p end, seen)
  local index = {}
  for i, e in ipairs(out) do index[e.path] = i end
  local base = norm == "/" and "" or norm
  for _, b in ipairs(below) do
    local name = b.rel[1]
    local p = base .. "/" .. name
    local at = index[p]
    if at then -- the mount hides whatever the backend had there
      out[at].is_dir, out[at].size = true, nil
    else
      out[#out + 1] = { name = name, path = p, is_dir = true }
      index[p] = #out
    end
  end
  table.sort(out, dirs_first)
  return out
end

-- glob ----------------------------------------------------------------------------------------

local function newest_first(a, b)
  local ma, mb = a.modified_at or "", b.modified_at or ""
  if ma ~= mb then return ma > mb end
  return a.path < b.path
end

local function by_path(p) return p end

function Composite:glob(pattern, path)
  check_string("glob", 1, pattern)
  if path ~= nil then check_string("glob", 2, path) end
  local norm = normalize(path or "/")
  local r = self:_match(norm)
  local inner = r and self:_inner(r, norm, path or "/") or path
  local res, msg, code = self:_backend(r):glob(pattern, inner)
  if res == nil and code == "ENOENT" and r and norm == r.prefix then res = {} end
  local below = self:_below(norm, r)
  if res == nil and not (code == "ENOENT" and #below > 0) then
    return nil, self:_message(r, inner, norm, msg), code
  end
  if #below == 0 then return reprefixed(self, r, res) end
  local out, seen = {}, {}
  self:_collect(r, res or {}, out, by_path, seen)
  for _, b in ipairs(below) do
    for _, q in ipairs(residuals(pattern, b.rel)) do
      local got, m, c = b.route.backend:glob(q, self:_root(b.route))
      if got == nil and c == "ENOENT" then got = {} end -- a pass-through route holding nothing yet
      if got == nil then return nil, m, c end
      self:_collect(b.route, got, out, by_path, seen)
    end
  end
  table.sort(out, newest_first)
  return out
end

-- grep ----------------------------------------------------------------------------------------

local function by_path_line(a, b)
  if a.path ~= b.path then return a.path < b.path end
  return (a.line_number or 0) < (b.line_number or 0)
end

local function grep_key(p, e) return p .. "\0" .. tostring(e.line_number) end

local function skipped_mount(rel, ignore_hidden)
  for _, seg in ipairs(rel) do
    if SKIP_DIRS[seg] or (ignore_hidden and seg:sub(1, 1) == ".") then return true end
  end
  return false
end

function Composite:grep(pattern, opts)
  check_string("grep", 1, pattern)
  if opts ~= nil and type(opts) ~= "table" then argerror("grep", 2, "table expected, got " .. type(opts)) end
  opts = opts or {}
  if opts.path ~= nil and type(opts.path) ~= "string" then
    argerror("grep", 2, "option 'path' must be a string, got " .. type(opts.path))
  end
  local norm = normalize(opts.path or "/")
  local r = self:_match(norm)
  local o = copy(opts)
  if r then o.path = self:_inner(r, norm, opts.path) end
  local res, msg, code = self:_backend(r):grep(pattern, o)
  if res == nil and code == "ENOENT" and r and norm == r.prefix then res = {} end
  local below = self:_below(norm, r)
  if res == nil and not (code == "ENOENT" and #below > 0) then
    return nil, self:_message(r, o.path, norm, msg), code
  end
  if #below == 0 then return reprefixed(self, r, res) end
  local out, seen = {}, {}
  self:_collect(r, res or {}, out, grep_key, seen)
  -- A grep glob with "/" is anchored at the search base: below a mount only its remainder can
  -- match, and the backend is given no glob (a remainder without "/" would mean "any depth").
  local glob = opts.glob
  local anchored = type(glob) == "string" and glob:find("/", 1, true) ~= nil
  for _, b in ipairs(below) do
    local matchers = {}
    if anchored then
      for i, q in ipairs(residuals(glob, b.rel)) do matchers[i] = path_matcher(q) end
    end
    if not skipped_mount(b.rel, opts.ignore_hidden ~= false) and (not anchored or #matchers > 0) then
      local o2 = copy(opts)
      o2.path = self:_root(b.route)
      if anchored then o2.glob, o2.max = nil, nil end
      local got, m, c = b.route.backend:grep(pattern, o2)
      if got == nil and c == "ENOENT" then got = {} end -- a pass-through route holding nothing yet
      if got == nil then return nil, m, c end
      if anchored then
        local depth = self._strip and 0 or #b.route.segs
        local kept = {}
        for _, hit in ipairs(got) do
          local segs = segments(hit.path or "")
          local rel = {}
          for k = depth + 1, #segs do rel[#rel + 1] = segs[k] end
          for _, ok in ipairs(matchers) do
            if ok(rel) then
              kept[#kept + 1] = hit
              break
            end
          end
        end
        got = kept
      end
      self:_collect(b.route, got, out, grep_key, seen)
    end
  end
  table.sort(out, by_path_line)
  local max = opts.max
  if type(max) == "number" and #out > max then
    for i = #out, math.max(math.floor(max), 0) + 1, -1 do out[i] = nil end
  end
  return out
end

-- Introspection ---------------------------------------------------------------------------------

--- The backend that owns `path`, the path it is given, and the route prefix ("/" for the default).
function Composite:resolve(path)
  check_string("resolve", 1, path)
  local norm = normalize(path)
  local r = self:_match(norm)
  return self:_backend(r), self:_inner(r, norm, path), r and (r.prefix .. "/") or "/"
end

--- The route prefixes, longest first (each with a trailing "/").
function Composite:routes()
  local out = {}
  for i, r in ipairs(self._routes) do out[i] = r.prefix .. "/" end
  return out
end

-- Construction ----------------------------------------------------------------------------------

local function is_backend(v)
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return false end
  for _, m in ipairs(BACKEND_METHODS) do
    local ok, f = pcall(function() return v[m] end)
    if not ok or f == nil then return false, m end
  end
  return true
end

local function check_backend(v, where)
  local ok, missing = is_backend(v)
  if not ok then
    error(string.format("composite_backend: %s is not a backend (%s)", where,
      missing and ("it has no " .. missing .. " method") or ("a " .. type(v))), 3)
  end
end

function M.composite_backend(opts)
  if type(opts) ~= "table" then error("composite_backend: expected a table of options", 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      error(string.format("composite_backend: unknown option '%s' (known: default, routes, strip_prefix)",
        tostring(k)), 2)
    end
  end
  check_backend(opts.default, "default")
  local routes = opts.routes or {}
  if type(routes) ~= "table" then error("composite_backend: routes must be a table of prefix = backend", 2) end
  local strip = opts.strip_prefix
  if strip == nil then strip = true end
  if type(strip) ~= "boolean" then error("composite_backend: strip_prefix must be a boolean", 2) end
  local self = setmetatable({ _default = opts.default, _strip = strip, _routes = {}, _by_name = {} }, CompositeMT)
  local taken = {}
  for prefix, backend in pairs(routes) do
    if type(prefix) ~= "string" then error("composite_backend: a route prefix must be a string", 2) end
    local segs = segments(prefix)
    for _, s in ipairs(segs) do
      if s == ".." then error(string.format("composite_backend: route '%s' contains '..'", prefix), 2) end
    end
    if #segs == 0 then
      error(string.format("composite_backend: route '%s' would take every path; make that backend "
        .. "the default instead", prefix), 2)
    end
    local norm = "/" .. table.concat(segs, "/")
    if taken[norm] then
      error(string.format("composite_backend: routes '%s' and '%s' are the same prefix", taken[norm], prefix), 2)
    end
    taken[norm] = prefix
    check_backend(backend, "route '" .. prefix .. "'")
    local r = { prefix = norm, segs = segs, backend = backend }
    self._routes[#self._routes + 1] = r
    self._by_name[#self._by_name + 1] = r
  end
  table.sort(self._routes, function(a, b)
    if #a.prefix ~= #b.prefix then return #a.prefix > #b.prefix end
    return a.prefix < b.prefix
  end)
  table.sort(self._by_name, function(a, b) return a.prefix < b.prefix end)
  -- A sandbox default lends the composite its commands and lifecycle.
  local default = opts.default
  for _, m in ipairs(SANDBOX_METHODS) do
    local ok, f = pcall(function() return default[m] end)
    if ok and f ~= nil then
      self[m] = function(_, ...) return default[m](default, ...) end
    end
  end
  local ok, id = pcall(function() return default.id end)
  if ok and id ~= nil then self.id = id end
  return self
end

M._residuals = residuals
M._expand_braces = expand_braces

return M
