-- Temporary directories and plain file and shell helpers for specs that need a real file tree.
-- make() returns the directory's absolute path and a function that removes it with everything
-- inside; read(path) a file's bytes or nil; write(path, s) replaces a file's bytes; run(cmd)
-- runs a shell command and fails the test unless it succeeds; capture(cmd) returns a command's
-- stdout and stderr together and its exit status.
local M = {}

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function M.make()
  local p = assert(io.popen("mktemp -d /tmp/moonbox-spec.XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir:match("^/tmp/moonbox%-spec%."), "mktemp -d failed")
  return dir, function()
    os.execute("chmod -R u+rwx " .. sh_quote(dir) .. " 2>/dev/null; rm -rf " .. sh_quote(dir))
  end
end

M.sh_quote = sh_quote

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

function M.run(cmd)
  local ok = os.execute(cmd)
  assert(ok == true or ok == 0, cmd)
end

function M.capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  local body, rc = out:match("^(.-)rc=(%d+)\n$")
  return body, tonumber(rc)
end

return M
