-- A backend written in plain Lua: the protocol's second implementation.
--
-- It exists to prove that the conformance suite (spec/support/conformance/backend.lua) defines
-- the protocol rather than one implementation's quirks: a Lua table with these methods must be
-- interchangeable with the native state and local backends everywhere (DESIGN.md). Files live in
-- a table keyed by normalized virtual path; directories are implied by their files.
--
--   local lua_backend = require "spec.support.lua_backend"
--   local b = lua_backend.new{ files = { ["/notes.md"] = "hello\n" } }
--
-- grep takes a PCRE subset (spec/support/regex.lua: no lookbehind), so its capabilities say
-- pcre = false; with `regex = "native"` it uses PCRE2 through moonbox.backend instead.
-- Expected failures return nil, "<context>: <detail>", CODE; misuse raises.
local regex = require "spec.support.regex"

local M = {}

local Backend = {}
Backend.__index = Backend

local READ_LIMIT = 2000
local LINE_CUT = 2000
local BINARY_PROBE = 8192
local NAME_MAX = 255
local PATH_MAX = 4095
local SKIP_DIRS = {}
for _, d in ipairs({ ".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache",
  ".pytest_cache", ".ruff_cache", ".eggs", "build", "dist" }) do
  SKIP_DIRS[d] = true
end
local GREP_OPTIONS = { path = "string", glob = "string", ignore_hidden = "boolean", ignore_case = "boolean",
  fixed = "boolean", max = "number" }

-- Argument checks (misuse raises, like luaL_check*) ------------------------------------------

local function argerror(fname, n, msg) error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), 3) end

local function check_string(fname, n, v)
  if type(v) ~= "string" then argerror(fname, n, "string expected, got " .. (v == nil and "nil" or type(v))) end
  return v
end

local function opt_integer(fname, n, v, default)
  if v == nil then return default end
  if type(v) ~= "number" then argerror(fname, n, "number expected, got " .. type(v)) end
  local i = math.tointeger(v)
  if not i then argerror(fname, n, "number has no integer representation") end
  return i
end

-- Paths --------------------------------------------------------------------------------------

local function fail(code, fmt, ...) return nil, string.format(fmt, ...), code end

-- "/a//b/./c/" -> "/a/b/c"; "", ".", "./", "/." -> "/". Refuses NUL, "..", a leading "~" and
-- names or paths longer than the usual NAME_MAX/PATH_MAX, all with INVALID.
local function normalize(path)
  if path:find("\0", 1, true) then return fail("INVALID", "%q: path contains a NUL byte", path:gsub("%z", "\\0")) end
  if path:sub(1, 1) == "~" then return fail("INVALID", "%s: path cannot start with '~'", path) end
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      return fail("INVALID", "%s: path cannot contain '..' (paths are confined to the backend)", path)
    end
    if #seg > NAME_MAX then
      return fail("INVALID", "%s...: a path component is longer than %d bytes", path:sub(1, 40), NAME_MAX)
    end
    if seg ~= "." then parts[#parts + 1] = seg end
  end
  local norm = "/" .. table.concat(parts, "/")
  if #norm > PATH_MAX then return fail("INVALID", "%s...: path longer than %d bytes", path:sub(1, 40), PATH_MAX) end
  return norm
end

local function basename(path) return path:match("[^/]*$") end

local function parent(path) return path:match("^(.*)/[^/]*$") end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function is_binary(data) return data:sub(1, BINARY_PROBE):find("\0", 1, true) ~= nil or not utf8.len(data) end

-- Storage helpers ----------------------------------------------------------------------------

function Backend:_is_dir(path)
  if path == "/" then return true end
  local prefix = path .. "/"
  for p in pairs(self._files) do
    if p:sub(1, #prefix) == prefix then return true end
  end
  return false
end

-- The file at a normalized path, or nil + the failure for read-like operations.
function Backend:_file(path, what)
  local f = self._files[path]
  if f then return f end
  if self:_is_dir(path) then return fail("EISDIR", "%s %s: is a directory", what, path) end
  return fail("ENOENT", "%s %s: no such file", what, path)
end

function Backend:_sorted_paths()
  local list = {}
  for p in pairs(self._files) do list[#list + 1] = p end
  table.sort(list)
  return list
end

function Backend:_info(path)
  local f = self._files[path]
  if f then
    return { name = basename(path), path = path, is_dir = false, size = #f.data, modified_at = iso(f.mtime) }
  end
  return { name = basename(path), path = path, is_dir = true }
end

-- Lines: split on "\n"; a final newline does not start another line; a "\r" before the "\n"
-- belongs to the line ending, not to the text.
local function split_lines(data)
  local lines = {}
  if data == "" then return lines end
  for line in (data:sub(-1) == "\n" and data or data .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line:gsub("\r$", "")
  end
  return lines
end

local function cut(line)
  local chars = utf8.len(line)
  if not chars or chars <= LINE_CUT then return line end
  local stop = utf8.offset(line, LINE_CUT + 1)
  return line:sub(1, stop - 1) .. string.format(" [... line cut: %d more characters]", chars - LINE_CUT)
end

-- Globs ----------------------------------------------------------------------------------------

-- "{a,b}" alternatives, expanded (nested braces too).
local function expand_braces(pat)
  local open = pat:find("{", 1, true)
  if not open then return { pat } end
  local depth, close, commas = 0, nil, {}
  for i = open, #pat do
    local c = pat:sub(i, i)
    if c == "{" then
      depth = depth + 1
    elseif c == "}" then
      depth = depth - 1
      if depth == 0 then
        close = i
        break
      end
    elseif c == "," and depth == 1 then
      commas[#commas + 1] = i
    end
  end
  if not close or #commas == 0 then
    -- no alternatives: a literal brace; expand what follows it
    local out = {}
    for _, rest in ipairs(expand_braces(pat:sub(open + 1))) do out[#out + 1] = pat:sub(1, open) .. rest end
    return out
  end
  local out, from = {}, open + 1
  commas[#commas + 1] = close
  for _, stop in ipairs(commas) do
    for _, e in ipairs(expand_braces(pat:sub(1, open - 1) .. pat:sub(from, stop - 1) .. pat:sub(close + 1))) do
      out[#out + 1] = e
    end
    from = stop + 1
  end
  return out
end

-- One path segment's glob as an anchored Lua pattern.
local function segment_pattern(seg)
  local out, i = { "^" }, 1
  while i <= #seg do
    local c = seg:sub(i, i)
    if c == "*" then
      out[#out + 1] = ".*"
      while seg:sub(i + 1, i + 1) == "*" do i = i + 1 end
    elseif c == "?" then
      out[#out + 1] = "[\0-\x7F\xC2-\xFD][\x80-\xBF]*"
    elseif c == "[" and seg:find("]", i + 2, true) then
      local close = seg:find("]", i + 2, true)
      local body = seg:sub(i + 1, close - 1)
      local neg = body:match("^[!^]")
      if neg then body = body:sub(2) end
      body = body:gsub("[%%%]%[%^]", "%%%0")
      out[#out + 1] = "[" .. (neg and "^" or "") .. body .. "]"
      i = close
    else
      out[#out + 1] = c:gsub("%W", "%%%0")
    end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

local function split(path)
  local parts = {}
  for seg in path:gmatch("[^/]+") do parts[#parts + 1] = seg end
  return parts
end

-- A matcher for relative paths ("a/b/c.py") from a glob.
local function glob_matcher(glob)
  local alternatives = {}
  for _, alt in ipairs(expand_braces(glob)) do
    local segs = {}
    for n, seg in ipairs(split(alt)) do segs[n] = seg == "**" and "**" or segment_pattern(seg) end
    alternatives[#alternatives + 1] = segs
  end
  local function match(segs, i, parts, j)
    if i > #segs then return j > #parts end
    if segs[i] == "**" then
      for k = j, #parts + 1 do
        if match(segs, i + 1, parts, k) then return true end
      end
      return false
    end
    return j <= #parts and parts[j]:match(segs[i]) ~= nil and match(segs, i + 1, parts, j + 1)
  end
  return function(rel)
    local parts = split(rel)
    for _, segs in ipairs(alternatives) do
      if match(segs, 1, parts, 1) then return true end
    end
    return false
  end
end

local function relative(root, path)
  if root == "/" then return path:sub(2) end
  return path:sub(#root + 2)
end

-- The protocol ---------------------------------------------------------------------------------

function Backend:exists(path)
  check_string("exists", 1, path)
  local p = normalize(path)
  return p ~= nil and self._files[p] ~= nil
end

function Backend:ls(path)
  check_string("ls", 1, path)
  local p, msg, code = normalize(path)
  if not p then return nil, msg, code end
  if self._files[p] then return { self:_info(p) } end
  if not self:_is_dir(p) then return fail("ENOENT", "ls %s: no such file or directory", p) end
  local seen, entries = {}, {}
  local prefix = p == "/" and "/" or p .. "/"
  for f in pairs(self._files) do
    if f:sub(1, #prefix) == prefix then
      local child = prefix .. f:sub(#prefix + 1):match("^[^/]+")
      if not seen[child] then
        seen[child] = true
        entries[#entries + 1] = self:_info(child)
      end
    end
  end
  table.sort(entries, function(a, b)
    if a.is_dir ~= b.is_dir then return a.is_dir end
    return a.name < b.name
  end)
  return entries
end

function Backend:read_bytes(path)
  check_string("read_bytes", 1, path)
  local p, msg, code = normalize(path)
  if not p then return nil, msg, code end
  local f
  f, msg, code = self:_file(p, "read_bytes")
  if not f then return nil, msg, code end
  return f.data
end

function Backend:read(path, offset, limit)
  check_string("read", 1, path)
  offset = opt_integer("read", 2, offset, 0)
  limit = opt_integer("read", 3, limit, READ_LIMIT)
  local p, msg, code = normalize(path)
  if not p then return nil, msg, code end
  if offset < 0 then return fail("INVALID", "read %s: offset must be 0 or more, got %d", p, offset) end
  if limit < 1 then return fail("INVALID", "read %s: limit must be 1 or more, got %d", p, limit) end
  local f
  f, msg, code = self:_file(p, "read")
  if not f then return nil, msg, code end
  if is_binary(f.data) then
    return fail("BINARY", "read %s: binary file (NUL bytes or invalid UTF-8); use read_bytes to get its bytes", p)
  end
  local lines = split_lines(f.data)
  if offset > 0 and offset >= #lines then
    return fail("INVALID", "read %s: Offset %d exceeds file length (%d lines)", p, offset, #lines)
  end
  local out = {}
  local last = math.min(#lines, offset + limit)
  for i = offset + 1, last do out[#out + 1] = string.format("%6d\t%s", i, cut(lines[i])) end
  local text = table.concat(out, "\n")
  if last < #lines then text = text .. string.format("\n\n... (%d more lines)", #lines - last) end
  return text
end

function Backend:write(path, content)
  check_string("write", 1, path)
  check_string("write", 2, content)
  local p, msg, code = normalize(path)
  if not p then return nil, msg, code end
  if self:_is_dir(p) then return fail("EISDIR", "write %s: is a directory", p) end
  local up = parent(p)
  while up and up ~= "" do
    if self._files[up] then return fail("ENOTDIR", "write %s: %s is a file, not a directory", p, up) end
    up = parent(up)
  end
  self._files[p] = { data = content, mtime = os.time() }
  return { path = p }
end

-- Why `old` is not in `data`: the nearest lines and how they differ.
local function bigrams(s)
  local set, n = {}, 0
  for i = 1, #s - 1 do
    local g = s:sub(i, i + 1)
    if not set[g] then
      set[g] = true
      n = n + 1
    end
  end
  return set, n
end

local function similarity(a, b)
  if a == b then return 1, nil end
  local ta, tb = a:gsub("%s+$", ""), b:gsub("%s+$", "")
  if ta == tb then return 0.95, "trailing" end
  local la, lb = a:match("^%s*"), b:match("^%s*")
  if ta:sub(#la + 1) == tb:sub(#lb + 1) then return 0.9, "indent" end
  local sa, na = bigrams(a)
  local sb, nb = bigrams(b)
  if na + nb == 0 then return 0, nil end
  local common = 0
  for g in pairs(sa) do
    if sb[g] then common = common + 1 end
  end
  return 0.8 * (2 * common / (na + nb)), "text"
end

local function describe_indent(ws)
  local tabs, spaces = select(2, ws:gsub("\t", "")), select(2, ws:gsub(" ", ""))
  local parts = {}
  if tabs > 0 then parts[#parts + 1] = tabs .. (tabs == 1 and " tab" or " tabs") end
  if spaces > 0 or tabs == 0 then parts[#parts + 1] = spaces .. (spaces == 1 and " space" or " spaces") end
  return table.concat(parts, " and ")
end

local function not_found_help(p, data, old)
  local head = string.format("edit %s: old string not found", p)
  if data == "" then return head .. " (the file is empty)" end
  local raw = {}
  for line in (data:sub(-1) == "\n" and data or data .. "\n"):gmatch("([^\n]*)\n") do raw[#raw + 1] = line end
  local olines = {}
  for line in (old:sub(-1) == "\n" and old or old .. "\n"):gmatch("([^\n]*)\n") do olines[#olines + 1] = line end
  if #olines == 0 then olines[1] = "" end
  -- the file's line ending, when old would match with it
  if data:find("\r\n", 1, true) and not old:find("\r", 1, true) and old:find("\n", 1, true) then
    local crlf = old:gsub("\n", "\r\n")
    local at = data:find(crlf, 1, true)
    if at then
      local line = select(2, data:sub(1, at):gsub("\n", "")) + 1
      return string.format("%s. It matches at line %d if its line endings are CRLF (\\r\\n): the file uses CRLF, "
        .. "old_string uses LF (\\n). Send old_string with \\r\\n line endings.", head, line)
    end
  end
  local best, best_at, best_kind, best_line = -1, 1, nil, 1
  local k = #olines
  for i = 1, math.max(1, #raw - k + 1) do
    local score, kind, kline = 0, nil, nil
    for j = 1, k do
      local fl = raw[i + j - 1] or ""
      local s, why = similarity(fl, olines[j])
      if fl:sub(-1) == "\r" and fl:sub(1, -2) == olines[j] then s, why = 0.99, "crlf" end
      score = score + s
      if why and not kind then kind, kline = why, i + j - 1 end
    end
    if score > best then best, best_at, best_kind, best_line = score, i, kind, kline end
  end
  local shown = {}
  for i = best_at, math.min(#raw, best_at + k - 1) do
    shown[#shown + 1] = string.format("%6d\t%s", i, raw[i]:gsub("\r$", ""))
  end
  local why
  local fl, ol = raw[best_line] or "", olines[best_line - best_at + 1] or ""
  if best_kind == "crlf" then
    why = string.format("line %d ends with CRLF (\\r\\n); old_string uses LF (\\n)", best_line)
  elseif best_kind == "trailing" then
    why = string.format("line %d differs in trailing spaces: the file has %q, old_string has %q", best_line,
      fl:match("%s*$"), ol:match("%s*$"))
  elseif best_kind == "indent" then
    local fw, ow = fl:match("^%s*"), ol:match("^%s*")
    if (fw:find("\t") ~= nil) ~= (ow:find("\t") ~= nil) then
      why = string.format("line %d: tabs vs spaces in the indentation: the file has %s, old_string has %s",
        best_line, describe_indent(fw), describe_indent(ow))
    else
      why = string.format("line %d: indentation differs: the file has %s, old_string has %s", best_line,
        describe_indent(fw), describe_indent(ow))
    end
  else
    why = string.format("line %d is the closest text; compare it character by character", best_line)
  end
  return string.format("%s. Closest match (line %d):\n%s\n%s. Re-read the file and copy the text exactly.", head,
    best_line, table.concat(shown, "\n"), why)
end

function Backend:edit(path, old, new, replace_all)
  check_string("edit", 1, path)
  check_string("edit", 2, old)
  check_string("edit", 3, new)
  local p, msg, code = normalize(path)
  if not p then return nil, msg, code end
  if old == "" then return fail("INVALID", "edit %s: old string is empty", p) end
  if old == new then return fail("INVALID", "edit %s: old and new strings are the same", p) end
  local f
  f, msg, code = self:_file(p, "edit")
  if not f then return nil, msg, code end
  local data = f.data
  if is_binary(data) then return fail("BINARY", "edit %s: binary file; it cannot be edited as text", p) end
  local pieces, count, from = {}, 0, 1
  while true do
    local s, e = data:find(old, from, true)
    if not s then break end
    count = count + 1
    pieces[#pieces + 1] = data:sub(from, s - 1)
    from = e + 1
  end
  pieces[#pieces + 1] = data:sub(from)
  if count == 0 then return nil, not_found_help(p, data, old), "NOT_FOUND" end
  if count > 1 and not replace_all then
    return fail("NOT_UNIQUE", "edit %s: old string found %d times; pass replace_all or add context to make it unique",
      p, count)
  end
  local result
  if replace_all then
    result = table.concat(pieces, new)
  else
    result = pieces[1] .. new .. table.concat(pieces, old, 2)
  end
  self._files[p] = { data = result, mtime = os.time() }
  return { path = p, occurrences = count }
end

function Backend:glob(pattern, path)
  check_string("glob", 1, pattern)
  if path ~= nil then check_string("glob", 2, path) end
  local root, msg, code = normalize(path or "/")
  if not root then return nil, msg, code end
  local match = glob_matcher(pattern)
  local prefix = root == "/" and "/" or root .. "/"
  local out = {}
  for p, f in pairs(self._files) do
    if p:sub(1, #prefix) == prefix and match(relative(root, p)) then
      out[#out + 1] = { info = self:_info(p), mtime = f.mtime }
    end
  end
  table.sort(out, function(a, b)
    if a.mtime ~= b.mtime then return a.mtime > b.mtime end
    return a.info.path < b.info.path
  end)
  for i, e in ipairs(out) do out[i] = e.info end
  return out
end

function Backend:grep(pattern, opts)
  check_string("grep", 1, pattern)
  if opts ~= nil and type(opts) ~= "table" then argerror("grep", 2, "table expected, got " .. type(opts)) end
  opts = opts or {}
  for k, v in pairs(opts) do
    local want = GREP_OPTIONS[k]
    if not want then argerror("grep", 2, "unknown option '" .. tostring(k) .. "'") end
    if type(v) ~= want then argerror("grep", 2, "option '" .. k .. "' must be a " .. want .. ", got " .. type(v)) end
  end
  local max = opts.max and math.tointeger(opts.max)
  if opts.max and not max then argerror("grep", 2, "option 'max' must be an integer") end
  local root, msg, code = normalize(opts.path or "/")
  if not root then return nil, msg, code end
  local test
  if opts.fixed then
    local needle = opts.ignore_case and pattern:lower() or pattern
    test = function(line)
      return (opts.ignore_case and line:lower() or line):find(needle, 1, true) ~= nil
    end
  elseif self._native_regex then
    local re, err = self._native_regex.regex(pattern, { ignore_case = opts.ignore_case or false })
    if not re then return fail("INVALID", "grep: invalid regex %q: %s", pattern, err) end
    test = function(line) return re:test(line) end
  else
    local re, err = regex.compile(pattern, { ignore_case = opts.ignore_case })
    if not re then return fail("INVALID", "grep: invalid regex %q: %s", pattern, err) end
    test = function(line) return re:find(line) ~= nil end
  end
  local files
  if self._files[root] then
    files = { root }
  elseif self:_is_dir(root) then
    files = {}
    local filter = opts.glob and glob_matcher(opts.glob)
    local by_base = opts.glob and not opts.glob:find("/", 1, true)
    local hidden_ok = opts.ignore_hidden == false
    for _, p in ipairs(self:_sorted_paths()) do
      if root == "/" or p:sub(1, #root + 1) == root .. "/" then
        local rel = relative(root, p)
        local keep = true
        local segs = {}
        for seg in rel:gmatch("[^/]+") do segs[#segs + 1] = seg end
        for i, seg in ipairs(segs) do
          -- the skip list names directories: every segment but the last (the file itself)
          if SKIP_DIRS[seg] and i < #segs or (not hidden_ok and seg:sub(1, 1) == ".") then keep = false end
        end
        if keep and filter then keep = filter(by_base and basename(p) or rel) end
        if keep then files[#files + 1] = p end
      end
    end
  else
    return fail("ENOENT", "grep %s: no such file or directory", root)
  end
  local out = {}
  for _, p in ipairs(files) do
    local data = self._files[p].data
    if not is_binary(data) then
      for n, line in ipairs(split_lines(data)) do
        if test(line) then
          out[#out + 1] = { path = p, line_number = n, line = line }
          if max and #out >= max then return out end
        end
      end
    end
  end
  return out
end

-- opts.files: { [path] = content } to start with.
-- opts.regex: "lua" (spec/support/regex.lua, the default) or "native" (PCRE2 through
-- moonbox.backend's regex binding, when that module is built).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2) end
  local self = setmetatable({ _files = {} }, Backend)
  if opts.regex == "native" then
    self._native_regex = require "moonbox.backend"
  elseif opts.regex ~= nil and opts.regex ~= "lua" then
    error("bad argument #1 to 'new' (regex must be \"lua\" or \"native\")", 2)
  end
  for path, content in pairs(opts.files or {}) do
    local r, msg = self:write(path, content)
    if not r then error(msg, 2) end
  end
  return self
end

return M
