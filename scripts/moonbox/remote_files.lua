-- moonbox.remote_files: the backend protocol and background processes for a sandbox whose
-- files live on another machine and are reachable only through shell commands (a Kubernetes
-- pod over the exec API, a Daytona sandbox over its toolbox API).
--
--   local rf = require "moonbox.remote_files"
--   local files = rf.new{ root = "/workspace", run = function(script, timeout) ... end,
--                         read_raw = fn(remote_path)?, write_raw = fn(remote_path, bytes)? }
--
-- `run(script, timeout)` runs `sh -c script` remotely and returns stdout (bytes; stderr may be
-- mixed in on transports that merge the streams — every script here sends its stderr to
-- /dev/null and wraps its payload in base64, so the answer survives a text-only transport),
-- exit_code | nil, msg, CODE. read_raw/write_raw replace the shell transfer of file contents when
-- the remote side has a file API (Daytona's upload/download).
--
-- Paths are the protocol's virtual paths ("/" is `root`), normalized and confined by
-- moonbox.backend.normalize; every remote path is single-quoted, so a hostile name stays one
-- argument. Text semantics (read numbering, edit matching and its error help, globs, grep's
-- walk rules and regexes) are moonbox.backend's, the same as the native backends'. Listings
-- need GNU find (-printf) in the remote image (Debian/Ubuntu/Fedora images, not busybox).
--
-- Fail codes: the backend's (INVALID, ENOENT, EISDIR, ENOTDIR, BINARY, NOT_FOUND, NOT_UNIQUE)
-- plus EIO (the remote answer could not be understood) and the transport's own codes.
local backend = require "moonbox.backend"

local M = {}

local FILE_OP_TIMEOUT = 30
local SEARCH_TIMEOUT = 120
-- Commands stay small: the Kubernetes exec API carries them in the URL, and servers cap the
-- request line (node's default is 16 KiB; Go's 1 MiB).
local CHUNK = 9000 -- raw bytes per write command (12,000 base64 characters)
local FETCH_BYTES = 8000 -- quoted path bytes per grep fetch command

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
M.quote = q

local function fail(code, fmt, ...) return nil, string.format(fmt, ...), code end

local function check_string(fname, n, v)
  if type(v) ~= "string" then
    error(string.format("bad argument #%d to '%s' (string expected, got %s)", n, fname, type(v)), 3)
  end
end

local function b64decode(s)
  local clean = s:gsub("[^A-Za-z0-9+/=]", "")
  return backend.base64_decode(clean)
end

local Files = {}
Files.__index = Files

-- Runs a script whose stdout is `| base64`-wrapped; returns the decoded bytes.
function Files:_run64(where, body, timeout)
  local out, code_or_msg, code = self._run("{ " .. body .. "\n} 2>/dev/null | base64", timeout)
  if out == nil then return nil, where .. ": " .. tostring(code_or_msg), code end
  local data = b64decode(out)
  if data == nil then return nil, where .. ": the sandbox's answer is not base64", "EIO" end
  return data
end

function Files:_remote(p)
  if p == "/" then return self.root end
  return self.root .. p
end

local FIND_FMT = [['%Y\t%s\t%T@\t%P\0']]

-- Parses find -printf records below the virtual path `base`: { {type, size, mtime, path} ... }
-- ("f" or "d" only; the path is the virtual one, as %P is relative to the starting point).
local function parse_records(data, from, base)
  local out = {}
  for rec in data:sub(from):gmatch("([^%z]*)%z") do
    local t, size, mtime, rel = rec:match("^(%a)\t(%d+)\t([%d%.]+)\t(.*)$")
    if t == "f" or t == "d" then
      local p = rel == "" and base or (base == "/" and "/" .. rel or base .. "/" .. rel)
      out[#out + 1] = { type = t, size = tonumber(size), mtime = tonumber(mtime), path = p }
    end
  end
  return out
end

function Files._info(_, rec)
  local p = rec.path
  local sec = math.floor(rec.mtime)
  local info = {
    name = p:match("[^/]*$"), path = p, is_dir = rec.type == "d",
    modified_at = backend.iso8601(sec, math.floor((rec.mtime - sec) * 1e9)),
  }
  if rec.type == "f" then info.size = rec.size end
  return info
end

-- Kind of a remote path: "F" file, "D" directory, "N" neither; and the listing below it.
function Files:_list(where, p, depth, timeout)
  local remote = self:_remote(p)
  local depth_opt = depth and ("-maxdepth " .. depth .. " ") or ""
  local body = "f=" .. q(remote) .. "\n"
    .. "if [ -f \"$f\" ]; then printf 'F\\0'; find \"$f\" -maxdepth 0 -printf " .. FIND_FMT .. ";\n"
    .. "elif [ -d \"$f\" ]; then printf 'D\\0'; find \"$f\" -mindepth 1 " .. depth_opt .. "-printf "
    .. FIND_FMT .. ";\n"
    .. "else printf 'N\\0'; fi"
  local data, msg, code = self:_run64(where, body, timeout or FILE_OP_TIMEOUT)
  if not data then return nil, msg, code end
  local kind = data:sub(1, 1)
  if data:sub(2, 2) ~= "\0" or not kind:match("^[FDN]$") then
    return nil, where .. ": unexpected answer from the sandbox", "EIO"
  end
  return kind, parse_records(data, 3, p)
end

function Files:exists(path)
  check_string("exists", 1, path)
  local p = backend.normalize(path)
  if not p then return false end
  local data = self:_run64("exists", "if [ -f " .. q(self:_remote(p)) .. " ]; then printf Y; else printf N; fi", 5)
  return data == "Y"
end

function Files:ls(path)
  check_string("ls", 1, path)
  local p, msg, code = backend.normalize(path)
  if not p then return nil, msg, code end
  local kind, recs, lcode = self:_list("ls " .. p, p, 1)
  if not kind then return nil, recs, lcode end
  if kind == "N" then return fail("ENOENT", "ls %s: no such file or directory", p) end
  local out = {}
  for _, r in ipairs(recs) do out[#out + 1] = self:_info(r) end
  if kind == "F" then
    return out
  end
  table.sort(out, function(a, b)
    if a.is_dir ~= b.is_dir then return a.is_dir end
    return a.name < b.name
  end)
  return out
end

-- Bytes of a regular file, or the failure for `what`.
function Files:_fetch(what, p)
  local remote = self:_remote(p)
  if self._read_raw then
    local data = self:_run64(what, "f=" .. q(remote) .. "\nif [ -d \"$f\" ]; then printf D; "
      .. "elif [ -f \"$f\" ]; then printf F; else printf N; fi", FILE_OP_TIMEOUT)
    if data == "D" then return fail("EISDIR", "%s %s: is a directory", what, p) end
    if data ~= "F" then return fail("ENOENT", "%s %s: no such file", what, p) end
    local bytes, msg, code = self._read_raw(remote)
    if bytes == nil then return nil, what .. " " .. p .. ": " .. tostring(msg), code end
    return bytes
  end
  local data, msg, code = self:_run64(what, "f=" .. q(remote) .. "\nif [ -d \"$f\" ]; then printf D; "
    .. "elif [ -f \"$f\" ]; then printf F; cat \"$f\"; else printf N; fi", FILE_OP_TIMEOUT)
  if not data then return nil, msg, code end
  local kind = data:sub(1, 1)
  if kind == "D" then return fail("EISDIR", "%s %s: is a directory", what, p) end
  if kind ~= "F" then return fail("ENOENT", "%s %s: no such file", what, p) end
  return data:sub(2)
end

function Files:read_bytes(path)
  check_string("read_bytes", 1, path)
  local p, msg, code = backend.normalize(path)
  if not p then return nil, msg, code end
  return self:_fetch("read_bytes", p)
end

function Files:read(path, offset, limit)
  check_string("read", 1, path)
  local p, msg, code = backend.normalize(path)
  if not p then return nil, msg, code end
  if offset ~= nil and math.type(offset) == nil then error("bad argument #2 to 'read' (number expected)", 2) end
  if limit ~= nil and math.type(limit) == nil then error("bad argument #3 to 'read' (number expected)", 2) end
  if (offset or 0) < 0 then return fail("INVALID", "read %s: offset must be 0 or more, got %d", p, offset) end
  if limit ~= nil and limit < 1 then return fail("INVALID", "read %s: limit must be 1 or more, got %d", p, limit) end
  local data
  data, msg, code = self:_fetch("read", p)
  if not data then return nil, msg, code end
  return backend.format_read(data, offset, limit, p)
end

function Files:_store(what, p, content)
  local remote = self:_remote(p)
  local parent = remote:match("^(.*)/[^/]*$")
  if parent == "" then parent = "/" end
  local head = "f=" .. q(remote) .. "\nif [ -d \"$f\" ]; then printf D; exit 0; fi\n"
    .. "mkdir -p " .. q(parent) .. " || { printf T; exit 0; }\n"
  local function check(data, msg, code)
    if not data then return nil, msg, code end
    if data == "D" then return fail("EISDIR", "%s %s: is a directory", what, p) end
    if data == "T" then return fail("ENOTDIR", "%s %s: a parent of %s is a file, not a directory", what, p, p) end
    if data == "E" then return fail("EIO", "%s %s: the sandbox could not write the file", what, p) end
    if data ~= "O" then return fail("EIO", "%s %s: unexpected answer from the sandbox", what, p) end
    return true
  end
  -- Atomic: the bytes go to a temporary file beside the target, then rename(2) puts it in place
  -- (keeping an existing file's mode), so no reader sees a half-written or missing file.
  local tmp = remote .. string.format(".mb-%06d.tmp", math.random(0, 999999))
  local function finish()
    return check(self:_run64(what, "f=" .. q(remote) .. "\nt=" .. q(tmp) .. "\n"
      .. "if [ -f \"$f\" ]; then chmod \"$(stat -c %a \"$f\" 2>/dev/null || echo 644)\" \"$t\" 2>/dev/null; fi\n"
      .. "mv -f \"$t\" \"$f\" && printf O || { rm -f \"$t\"; printf E; }", FILE_OP_TIMEOUT))
  end
  local function discard() self:_run64(what, "rm -f " .. q(tmp) .. "; printf O", FILE_OP_TIMEOUT) end
  if self._write_raw then
    local ok, msg, code = check(self:_run64(what, head .. "printf O", FILE_OP_TIMEOUT))
    if not ok then return nil, msg, code end
    local done, wmsg, wcode = self._write_raw(tmp, content)
    if not done then
      discard()
      return nil, what .. " " .. p .. ": " .. tostring(wmsg), wcode
    end
    return finish()
  end
  local first = true
  local pos = 1
  repeat
    local piece = content:sub(pos, pos + CHUNK - 1)
    pos = pos + CHUNK
    local body = (first and head or "f=" .. q(remote) .. "\n") .. "t=" .. q(tmp) .. "\n"
      .. "printf %s " .. q(backend.base64_encode(piece)) .. " | base64 -d " .. (first and ">" or ">>")
      .. " \"$t\" && printf O || printf E"
    local ok, msg, code = check(self:_run64(what, body, FILE_OP_TIMEOUT))
    if not ok then
      if not first then discard() end
      return nil, msg, code
    end
    first = false
  until pos > #content
  return finish()
end

function Files:write(path, content)
  check_string("write", 1, path)
  check_string("write", 2, content)
  local p, msg, code = backend.normalize(path)
  if not p then return nil, msg, code end
  if p == "/" then return fail("EISDIR", "write %s: is a directory", p) end
  local ok
  ok, msg, code = self:_store("write", p, content)
  if not ok then return nil, msg, code end
  return { path = p }
end

function Files:edit(path, old, new, replace_all)
  check_string("edit", 1, path)
  check_string("edit", 2, old)
  check_string("edit", 3, new)
  local p, msg, code = backend.normalize(path)
  if not p then return nil, msg, code end
  if old == "" then return fail("INVALID", "edit %s: old string is empty", p) end
  if old == new then return fail("INVALID", "edit %s: old and new strings are the same", p) end
  local data
  data, msg, code = self:_fetch("edit", p)
  if not data then return nil, msg, code end
  local result, n, ecode = backend.apply_edit(data, old, new, replace_all, p)
  if not result then return nil, n, ecode end
  local ok, wmsg, wcode = self:_store("edit", p, result)
  if not ok then return nil, wmsg, wcode end
  return { path = p, occurrences = n }
end

function Files:glob(pattern, path)
  check_string("glob", 1, pattern)
  if path ~= nil then check_string("glob", 2, path) end
  local root, msg, code = backend.normalize(path or "/")
  if not root then return nil, msg, code end
  local g, gmsg, gcode = backend.glob(pattern)
  if not g then return nil, gmsg, gcode end
  local kind, recs, lcode = self:_list("glob", root, nil, SEARCH_TIMEOUT)
  if not kind then return nil, recs, lcode end
  local out = {}
  if kind == "D" then
    for _, r in ipairs(recs) do
      if r.type == "f" then
        local info = self:_info(r)
        local rel = backend.under(root, info.path)
        if rel and g:match(rel) then out[#out + 1] = { info = info, mtime = r.mtime } end
      end
    end
  end
  g:close()
  table.sort(out, function(a, b)
    if a.mtime ~= b.mtime then return a.mtime > b.mtime end
    return a.info.path < b.info.path
  end)
  for i, e in ipairs(out) do out[i] = e.info end
  return out
end

function Files:grep(pattern, opts)
  check_string("grep", 1, pattern)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'grep' (table expected, got " .. type(opts) .. ")", 2)
  end
  local okopts, o = pcall(backend.grep_opts, opts)
  if not okopts then
    error((tostring(o):gsub("^[^:]*:%d+: ", ""):gsub("#1 to '[^']*'", "#2 to 'grep'")), 2)
  end
  local root, msg, code = backend.normalize(o.path or "/")
  if not root then return nil, msg, code end
  local re, rmsg, rcode = backend.regex(pattern, { fixed = o.fixed, ignore_case = o.ignore_case })
  if not re then return nil, rmsg, rcode end
  local kind, recs, lcode = self:_list("grep", root, nil, SEARCH_TIMEOUT)
  if not kind then return nil, recs, lcode end
  if kind == "N" then return fail("ENOENT", "grep %s: no such file or directory", root) end
  local files = {}
  if kind == "F" then
    files[1] = root
  else
    local g
    if o.glob then
      g, msg, code = backend.glob(o.glob)
      if not g then return nil, msg, code end
    end
    for _, r in ipairs(recs) do
      if r.type == "f" then
        local p = r.path
        local rel = backend.under(root, p)
        if rel and not backend.grep_skips(rel, false, o.ignore_hidden) and (not g or g:filter(rel)) then
          files[#files + 1] = p
        end
      end
    end
    if g then g:close() end
    table.sort(files)
  end
  local out = {}
  local max = (o.max and o.max > 0) and o.max or nil
  local first = 1
  while first <= #files do
    local names, len = {}, 0
    while files[first + #names] and (#names == 0 or len < FETCH_BYTES) do
      local n = q(self:_remote(files[first + #names]))
      names[#names + 1] = n
      len = len + #n + 1
    end
    local script = "for f in " .. table.concat(names, " ")
      .. "; do printf '%s\\n' \"$(base64 < \"$f\" 2>/dev/null | tr -d '\\n')\"; done"
    local text, fmsg, fcode = self._run(script, SEARCH_TIMEOUT)
    if text == nil then return nil, "grep: " .. tostring(fmsg), fcode end
    local i = first
    first = first + #names
    for line in text:gmatch("([^\n]*)\n") do
      local p = files[i]
      if not p or i >= first then break end
      i = i + 1
      local content = b64decode(line) or ""
      local hits = re:grep(content, max and (max - #out) or nil, p)
      for _, h in ipairs(hits or {}) do
        out[#out + 1] = { path = p, line_number = h.line_number or h[1], line = h.line or h[2] }
      end
      if max and #out >= max then
        re:close()
        return out
      end
    end
  end
  re:close()
  return out
end

-- Background processes over the same commands -------------------------------------------------

local BG_DIR = "/tmp/moonbox-bg"
M.BG_DIR = BG_DIR

local Bg = {}
Bg.__index = Bg

-- rf.background{ run = fn(script, timeout), cwd = "/workspace", tag = "<unique per sandbox>" }
function M.background(opts)
  return setmetatable({ _run = opts.run, _cwd = opts.cwd, _tag = opts.tag, _list = {}, _by_id = {}, _next = 0 },
    Bg)
end

function Bg:_file(id, ext) return BG_DIR .. "/" .. self._tag .. "-" .. id .. ext end

function Bg:spawn(command)
  self._next = self._next + 1
  local id = "bg_" .. self._next
  local base = BG_DIR .. "/" .. self._tag .. "-" .. id
  local script = "mkdir -p " .. q(BG_DIR) .. " && cd " .. q(self._cwd) .. " || exit 1\n"
    .. "S=; command -v setsid >/dev/null 2>&1 && S=setsid\n"
    .. "$S sh -c 'sh -c \"$1\" > \"$2.out\" 2>&1 < /dev/null; echo $? > \"$2.rc\"' sh " .. q(command) .. " "
    .. q(base) .. " > /dev/null 2>&1 < /dev/null &\n"
    .. "echo $! > " .. q(base .. ".pid") .. "\nprintf 'OK'"
  local out, msg, code = self._run(script, FILE_OP_TIMEOUT)
  if out == nil then return nil, "spawn: " .. tostring(msg), code end
  if not out:find("OK", 1, true) then return nil, "spawn: the sandbox did not start the command", "EIO" end
  local bg = { id = id, command = command, offset = 0 }
  self._by_id[id] = bg
  self._list[#self._list + 1] = bg
  return id
end

-- { id, output, running, exit_code } with the output since the previous read.
function Bg:read_output(id)
  local bg = self._by_id[id]
  if not bg then return nil, "No such background process: " .. tostring(id), "NOT_FOUND" end
  if bg.killed then return { id = id, output = "", stdout = "", stderr = "", running = false, exit_code = 137 } end
  local script = "{ if [ -f " .. q(self:_file(id, ".rc")) .. " ]; then printf 'X%s\\n' \"$(cat "
    .. q(self:_file(id, ".rc")) .. ")\"; else printf 'R\\n'; fi; tail -c +" .. (bg.offset + 1) .. " "
    .. q(self:_file(id, ".out")) .. "; } 2>/dev/null | base64"
  local out, msg, code = self._run(script, FILE_OP_TIMEOUT)
  if out == nil then return nil, "read_output: " .. tostring(msg), code end
  local data = b64decode(out) or ""
  local head, rest = data:match("^([^\n]*)\n(.*)$")
  if not head then return nil, "read_output: unexpected answer from the sandbox", "EIO" end
  bg.offset = bg.offset + #rest
  local r = { id = id, output = rest, stdout = rest, stderr = "", running = head == "R" }
  if head ~= "R" then
    r.exit_code = tonumber(head:match("^X(%d+)")) or 1
    bg.exit_code = r.exit_code
  end
  return r
end

function Bg:kill(id)
  local bg = self._by_id[id]
  if not bg or bg.killed or bg.exit_code then return false end
  local pid = q(self:_file(id, ".pid"))
  local script = "if [ -f " .. q(self:_file(id, ".rc")) .. " ]; then printf DONE; exit 0; fi\n"
    .. "p=$(cat " .. pid .. ")\nkill -KILL -- -\"$p\" 2>/dev/null || kill -KILL \"$p\" 2>/dev/null\nprintf KILLED"
  local out = self._run(script, FILE_OP_TIMEOUT)
  if out and out:find("KILLED", 1, true) then
    bg.killed = true
    return true
  end
  return false
end

function Bg:list()
  local out = {}
  for _, bg in ipairs(self._list) do
    local running, code = false, bg.exit_code
    if bg.killed then
      code = 137
    elseif code == nil then
      local data = self._run("if [ -f " .. q(self:_file(bg.id, ".rc")) .. " ]; then cat " .. q(self:_file(bg.id, ".rc"))
        .. "; else printf R; fi", FILE_OP_TIMEOUT)
      if data == "R" then running = true else code = tonumber((data or ""):match("%d+")) end
    end
    local info = { id = bg.id, command = bg.command, running = running }
    if not running then info.exit_code = code end
    out[#out + 1] = info
  end
  return out
end

function Bg:kill_all()
  for _, bg in ipairs(self._list) do self:kill(bg.id) end
  self._list, self._by_id = {}, {}
  return true
end

--- Checks execute/spawn arguments for a remote sandbox: a string command, an options table with
--- only the `allowed` keys ({name = "type"}); misuse raises at `level`; a NUL byte in the command
--- is an expected failure (nil, msg, "INVALID").
function M.check_exec_args(where, command, opts, allowed, level)
  level = level or 3
  if type(command) ~= "string" then error(where .. ": command must be a string, not a " .. type(command), level) end
  if opts ~= nil and type(opts) ~= "table" then error(where .. ": options must be a table", level) end
  for k, v in pairs(opts or {}) do
    local want = allowed[k]
    if not want then error(where .. ": unknown option '" .. tostring(k) .. "'", level) end
    if type(v) ~= want then error(where .. ": " .. k .. " must be a " .. want, level) end
  end
  if command:find("\0", 1, true) then return nil, where .. ": the command contains a NUL byte", "INVALID" end
  return true
end

function M.new(opts)
  return setmetatable({ root = opts.root, _run = opts.run, _read_raw = opts.read_raw, _write_raw = opts.write_raw },
    Files)
end

M.Files = Files

-- The protocol's method names, for sandboxes that delegate them.
M.METHODS = { "exists", "ls", "read", "read_bytes", "write", "edit", "glob", "grep" }

return M
